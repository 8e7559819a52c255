//! Temperature scaling (Guo et al. 2017): the one temperature that makes a model's
//! probabilities on held-out rows most likely. A teacher fine-tuned for a few hundred steps is
//! often right but under-confident (its soft labels near uniform); dividing its logits by the
//! fitted temperature (below 1 then) gives soft labels that mean what they say before the
//! distillation temperature is applied.

use std::path::Path;

use crate::distill::data::Dataset;
use crate::distill::metrics::{self, softmax, Metrics};
use crate::error::{Error, Result};
use crate::models::folder::Model;

/// What calibrating a model did: the temperature and the held-out metrics before and after.
#[derive(Debug, Clone, Copy)]
pub struct Calibration {
    /// The fitted temperature, now in the model's `retort.json`.
    pub temperature: f64,
    /// Metrics on the held-out rows at temperature 1.
    pub before: Metrics,
    /// Metrics on the held-out rows at the fitted temperature.
    pub after: Metrics,
}

/// Fits the temperature of `model` on the labelled rows of `held_out` (any temperature the
/// model already had is replaced, not compounded) and saves the model with it into `out`
/// (which may be the folder it came from).
pub fn calibrate_model(mut model: Model, held_out: &Dataset, out: &Path) -> Result<Calibration> {
    if model.info.label_names != held_out.label_names {
        return Err(Error::user(format!(
            "the held-out rows have classes {:?}, the model {:?}",
            held_out.label_names, model.info.label_names
        )));
    }
    let labelled: Vec<_> = held_out
        .examples
        .iter()
        .filter(|e| e.label.is_some())
        .collect();
    if labelled.is_empty() {
        return Err(Error::user("the held-out rows have no gold labels")
            .with_hint("calibration needs labelled rows the model did not train on"));
    }
    model.check_finite()?;
    model.info.temperature = None;
    let texts: Vec<&str> = labelled.iter().map(|e| e.text.as_str()).collect();
    let gold: Vec<usize> = labelled.iter().filter_map(|e| e.label).collect();
    let logits = model.logits(&texts)?;
    let temperature = fit_temperature(&logits, &gold);
    let classes = model.info.label_names.len();
    let before = metrics::compute(&logits, &gold, classes);
    model.info.temperature = Some(temperature);
    let mut scaled = logits;
    model.info.calibrate(&mut scaled);
    let after = metrics::compute(&scaled, &gold, classes);
    model.save(out)?;
    Ok(Calibration {
        temperature,
        before,
        after,
    })
}

/// The temperature in [0.05, 20] (a log-spaced grid of 241 points) that minimises the mean
/// negative log-likelihood of `gold` under `softmax(logits / T)`; 1 without rows, and 1 when
/// the minimum lies at an end of the grid: then the rows do not determine a temperature (a dev
/// split the model classifies without error has its likelihood rise as T falls towards 0, and
/// sharpening a teacher that far would erase its soft labels).
pub fn fit_temperature(logits: &[Vec<f32>], gold: &[usize]) -> f64 {
    if logits.is_empty() {
        return 1.0;
    }
    let nll = |t: f64| -> f64 {
        logits
            .iter()
            .zip(gold)
            .map(|(l, &g)| {
                let scaled: Vec<f32> = l.iter().map(|&v| (f64::from(v) / t) as f32).collect();
                -softmax(&scaled)[g].max(1e-12).ln()
            })
            .sum::<f64>()
            / logits.len() as f64
    };
    const STEPS: u32 = 240;
    let (lo, hi) = (0.05f64.ln(), 20f64.ln());
    let (_, best, at) = (0..=STEPS)
        .map(|i| (lo + (hi - lo) * f64::from(i) / f64::from(STEPS)).exp())
        .enumerate()
        .map(|(i, t)| (nll(t), t, i))
        .fold(
            (f64::INFINITY, 1.0, 0),
            |best, x| {
                if x.0 < best.0 {
                    x
                } else {
                    best
                }
            },
        );
    if at == 0 || at == STEPS as usize {
        1.0
    } else {
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn recovers_the_temperature_that_made_logits_over_or_under_confident() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for k in [0.25f64, 1.0, 4.0] {
            // Labels drawn from softmax(z): z is calibrated, z·k is not (by a factor k).
            let (mut logits, mut gold) = (Vec::new(), Vec::new());
            for _ in 0..4000 {
                let z: Vec<f32> = (0..3).map(|_| rng.random_range(-2.0..2.0)).collect();
                let p = softmax(&z);
                let u: f64 = rng.random();
                let g = if u < p[0] {
                    0
                } else if u < p[0] + p[1] {
                    1
                } else {
                    2
                };
                logits.push(z.iter().map(|&v| (f64::from(v) * k) as f32).collect());
                gold.push(g);
            }
            let t = fit_temperature(&logits, &gold);
            assert!((t / k - 1.0).abs() < 0.15, "made with {k}, fitted {t}");
        }
        assert_eq!(fit_temperature(&[], &[]), 1.0);
    }

    #[test]
    fn rows_classified_without_error_leave_the_temperature_at_one() {
        // Every row right: the likelihood keeps rising as T falls, so no T is determined.
        let logits = vec![vec![2.0f32, -1.0], vec![-0.5, 1.5], vec![3.0, 0.0]];
        assert_eq!(fit_temperature(&logits, &[0, 1, 0]), 1.0);
        // One error makes the minimum interior again.
        let t = fit_temperature(&logits, &[0, 1, 1]);
        assert!(t != 1.0 && t > 0.05 && t < 20.0, "{t}");
    }
}
