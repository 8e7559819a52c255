//! The statistics the reports print next to their numbers: mean and standard deviation, the
//! Wilson interval of an accuracy measured on `n` rows, and the t interval of a mean over a
//! few seeds. Every interval is 95%.

/// The standard normal quantile of 0.975.
const Z_975: f64 = 1.959_963_984_540_054;

/// Quantiles of Student's t at 0.975 for 1 to 30 degrees of freedom.
const T_975: [f64; 30] = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
    2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
    2.052, 2.048, 2.045, 2.042,
];

/// A closed interval `[lo, hi]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    /// Lower end.
    pub lo: f64,
    /// Upper end.
    pub hi: f64,
}

impl Interval {
    /// Whether `x` lies inside.
    pub fn contains(&self, x: f64) -> bool {
        self.lo <= x && x <= self.hi
    }

    /// The ends multiplied by `scale` (e.g. 100 for percent).
    pub fn scaled(&self, scale: f64) -> Interval {
        Interval {
            lo: self.lo * scale,
            hi: self.hi * scale,
        }
    }
}

/// Mean and sample standard deviation (0 for one value, NaN for none).
pub fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let mean = v.iter().sum::<f64>() / n;
    let var = if v.len() > 1 {
        v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (mean, var.sqrt())
}

/// The 95% Wilson score interval of an accuracy measured on `n` rows (`None` when `n = 0`).
/// Unlike `p ± 1.96·sqrt(p(1-p)/n)` it stays inside [0, 1] and is not empty at 0% or 100%.
pub fn wilson(accuracy: f64, n: usize) -> Option<Interval> {
    if n == 0 {
        return None;
    }
    let n = n as f64;
    let p = accuracy.clamp(0.0, 1.0);
    let z2 = Z_975 * Z_975;
    let denom = 1.0 + z2 / n;
    let center = (p + z2 / (2.0 * n)) / denom;
    let half = Z_975 / denom * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    Some(Interval {
        lo: (center - half).max(0.0),
        hi: (center + half).min(1.0),
    })
}

/// The 0.975 quantile of Student's t with `df` degrees of freedom (`df ≥ 1`): a table up to
/// 30, then the Cornish-Fisher expansion around the normal quantile (within 0.001 there).
pub fn t_975(df: usize) -> f64 {
    match df {
        0 => f64::NAN,
        1..=30 => T_975[df - 1],
        _ => {
            let (z, d) = (Z_975, df as f64);
            z + (z.powi(3) + z) / (4.0 * d)
                + (5.0 * z.powi(5) + 16.0 * z.powi(3) + 3.0 * z) / (96.0 * d * d)
        }
    }
}

/// The mean of `v` and its 95% t interval (`n - 1` degrees of freedom); `None` for fewer than
/// two values, which give no estimate of the spread.
pub fn mean_interval(v: &[f64]) -> Option<(f64, Interval)> {
    if v.len() < 2 {
        return None;
    }
    let (mean, sd) = mean_std(v);
    let half = t_975(v.len() - 1) * sd / (v.len() as f64).sqrt();
    Some((
        mean,
        Interval {
            lo: mean - half,
            hi: mean + half,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_matches_hand_values() {
        // 50 of 60: centre (p + z²/2n)/(1 + z²/n), checked against the closed form.
        let i = wilson(50.0 / 60.0, 60).unwrap();
        assert!(
            (i.lo - 0.7198).abs() < 5e-4 && (i.hi - 0.9070).abs() < 5e-4,
            "{i:?}"
        );
        // Never empty or outside [0, 1] at the ends.
        let all = wilson(1.0, 10).unwrap();
        assert!(
            (all.hi - 1.0).abs() < 1e-12 && all.lo > 0.6 && all.lo < 0.75,
            "{all:?}"
        );
        let none = wilson(0.0, 10).unwrap();
        assert!(none.lo.abs() < 1e-12 && none.hi > 0.25, "{none:?}");
        assert!(wilson(0.5, 0).is_none());
    }

    #[test]
    fn t_quantiles_join_the_normal() {
        assert_eq!(t_975(1), 12.706);
        assert!((t_975(31) - 2.040).abs() < 1e-3, "{}", t_975(31));
        assert!((t_975(120) - 1.980).abs() < 1e-3, "{}", t_975(120));
        assert!(t_975(100_000) - Z_975 < 1e-4);
    }

    #[test]
    fn mean_interval_of_paired_differences() {
        assert!(mean_interval(&[0.1]).is_none());
        let (m, i) = mean_interval(&[0.01, 0.03, 0.02]).unwrap();
        assert!((m - 0.02).abs() < 1e-12);
        // sd 0.01, t(2) = 4.303: half-width 0.01 · 4.303 / sqrt(3).
        assert!((i.hi - m - 0.01 * 4.303 / 3f64.sqrt()).abs() < 1e-9);
        // Three seeds that all gain do not yet exclude 0 with this spread...
        assert!(i.contains(0.0));
        // ... with less spread they do.
        let (_, i) = mean_interval(&[0.02, 0.03, 0.025]).unwrap();
        assert!(!i.contains(0.0), "{i:?}");
        assert_eq!(mean_std(&[2.0]), (2.0, 0.0));
    }
}
