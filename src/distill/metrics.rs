//! Evaluation metrics: accuracy, macro-F1, negative log-likelihood, expected calibration error.

use serde::{Deserialize, Serialize};

/// Metrics of a classifier on a labelled set.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Rows evaluated.
    pub rows: usize,
    /// Fraction of rows whose arg-max class is the gold label.
    pub accuracy: f64,
    /// Mean over classes of F1 (classes absent from both gold and predictions are skipped).
    pub macro_f1: f64,
    /// Mean negative log-likelihood of the gold label (natural log).
    pub nll: f64,
    /// Expected calibration error with 15 equal-width confidence bins.
    pub ece: f64,
}

impl Metrics {
    /// Whether these metrics beat `other` for choosing a model: higher accuracy, and at equal
    /// accuracy a lower negative log-likelihood.
    pub fn better_than(&self, other: &Metrics) -> bool {
        self.accuracy > other.accuracy || (self.accuracy == other.accuracy && self.nll < other.nll)
    }
}

/// Softmax of one row of logits, computed stably in f64.
pub fn softmax(logits: &[f32]) -> Vec<f64> {
    let m = logits.iter().fold(f32::MIN, |a, &b| a.max(b)) as f64;
    let e: Vec<f64> = logits.iter().map(|&v| (v as f64 - m).exp()).collect();
    let z: f64 = e.iter().sum();
    e.into_iter().map(|v| v / z).collect()
}

/// Computes the metrics from logits and gold labels. Panics if the lengths differ.
pub fn compute(logits: &[Vec<f32>], gold: &[usize], classes: usize) -> Metrics {
    assert_eq!(logits.len(), gold.len());
    let n = gold.len();
    let bins = 15;
    let mut tp = vec![0usize; classes];
    let mut fp = vec![0usize; classes];
    let mut fneg = vec![0usize; classes];
    let mut correct = 0usize;
    let mut nll = 0.0;
    let mut bin_n = vec![0usize; bins];
    let mut bin_conf = vec![0.0f64; bins];
    let mut bin_acc = vec![0.0f64; bins];
    for (l, &g) in logits.iter().zip(gold) {
        let p = softmax(l);
        let (pred, conf) =
            p.iter().enumerate().fold(
                (0, f64::MIN),
                |best, (i, &v)| if v > best.1 { (i, v) } else { best },
            );
        let hit = pred == g;
        if hit {
            correct += 1;
            tp[g] += 1;
        } else {
            fp[pred] += 1;
            if g < classes {
                fneg[g] += 1;
            }
        }
        nll -= p.get(g).copied().unwrap_or(0.0).max(1e-12).ln();
        let b = ((conf * bins as f64) as usize).min(bins - 1);
        bin_n[b] += 1;
        bin_conf[b] += conf;
        bin_acc[b] += f64::from(u8::from(hit));
    }
    let mut f1s = Vec::new();
    for c in 0..classes {
        if tp[c] + fp[c] + fneg[c] == 0 {
            continue;
        }
        let denom = (2 * tp[c] + fp[c] + fneg[c]) as f64;
        f1s.push(2.0 * tp[c] as f64 / denom);
    }
    let ece = (0..bins)
        .filter(|&b| bin_n[b] > 0)
        .map(|b| (bin_acc[b] - bin_conf[b]).abs() / n.max(1) as f64)
        .sum();
    Metrics {
        rows: n,
        accuracy: correct as f64 / n.max(1) as f64,
        macro_f1: if f1s.is_empty() {
            0.0
        } else {
            f1s.iter().sum::<f64>() / f1s.len() as f64
        },
        nll: nll / n.max(1) as f64,
        ece,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_and_hand_checked_values() {
        let logits = vec![
            vec![5.0, 0.0],
            vec![0.0, 5.0],
            vec![5.0, 0.0],
            vec![0.0, 5.0],
        ];
        let m = compute(&logits, &[0, 1, 0, 1], 2);
        assert_eq!(m.accuracy, 1.0);
        assert_eq!(m.macro_f1, 1.0);
        let p = 1.0 / (1.0 + (-5.0f64).exp());
        assert!((m.nll - (-p.ln())).abs() < 1e-9);
        assert!((m.ece - (1.0 - p)).abs() < 1e-9);

        // One of three wrong: class 0 F1 = 2/3 (tp 1, fn 1), class 1 F1 = 2/3·... by hand.
        let logits = vec![vec![1.0, 0.0], vec![1.0, 0.0], vec![0.0, 1.0]];
        let m = compute(&logits, &[0, 1, 1], 2);
        assert!((m.accuracy - 2.0 / 3.0).abs() < 1e-12);
        // class 0: tp 1, fp 1, fn 0 -> 2/3; class 1: tp 1, fp 0, fn 1 -> 2/3.
        assert!((m.macro_f1 - 2.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn ece_of_uniform_predictions() {
        // Confidence 0.5 everywhere, accuracy 0.5: perfectly calibrated.
        let logits = vec![vec![0.0, 0.0]; 4];
        let m = compute(&logits, &[0, 1, 0, 1], 2);
        assert!(m.ece < 1e-12);
    }
}
