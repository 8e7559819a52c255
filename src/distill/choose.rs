//! Choices read from the dev split alone: which trained student the `full` setting recommends,
//! and which teacher the `semi` setting learns from. A choice never reads a test metric, so
//! the test set can be read once, at the end, without having steered anything.

use serde::{Deserialize, Serialize};

use crate::distill::metrics::Metrics;
use crate::error::{Error, Result};

/// One candidate as the dev split saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// `gold`, `augmented`, `self-distill gen K`, `ensemble` or `distill`.
    pub name: String,
    /// Dev accuracy of the candidate's chosen epoch.
    pub dev_accuracy: f64,
    /// Dev negative log-likelihood of that epoch.
    pub dev_nll: f64,
    /// The epoch the dev split chose for it.
    pub epoch: usize,
}

/// What the dev split chose for one seed (`choices.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    /// The seed index.
    pub seed: usize,
    /// Rows in the dev split.
    pub dev_rows: usize,
    /// The candidate `full` recommends.
    pub full: String,
    /// The temperature that calibrates `full`'s student on the dev split (saved in its
    /// `retort.json`).
    #[serde(default)]
    pub full_temperature: Option<f64>,
    /// The teacher of `semi`, when it ran.
    #[serde(default)]
    pub semi_teacher: Option<String>,
    /// The temperature that calibrates the BERT teacher on the dev split (its logits are
    /// divided by it before the distillation temperature), when there is one.
    #[serde(default)]
    pub teacher_temperature: Option<f64>,
    /// The learning rate the dev split chose for the BERT teacher, when there is one.
    #[serde(default)]
    pub teacher_learning_rate: Option<f64>,
    /// Every candidate, in the order they were considered.
    pub candidates: Vec<Candidate>,
}

/// Moves the candidate named `name`, when there is one, to the front of `candidates` (the
/// others keep their order).
pub fn put_first<T>(candidates: &mut Vec<(String, T)>, name: &str) {
    if let Some(i) = candidates.iter().position(|(n, _)| n == name) {
        let c = candidates.remove(i);
        candidates.insert(0, c);
    }
}

/// The candidate `full` takes: the first as listed (the recommended recipe, then the simplest
/// first) whose dev accuracy is within one
/// standard error of the best one's (the one-standard-error rule, Hastie, Tibshirani & Friedman,
/// *Elements of Statistical Learning* §7.10). On a dev split of a few dozen rows one standard
/// error is several points, and the best of many near-equal candidates is mostly the luckiest
/// (the winner's curse), so a candidate listed later is taken only when the dev split sees it
/// clearly ahead. The best is by [`Metrics::better_than`]; the standard error is
/// `sqrt(p(1 − p)/rows)` at its accuracy `p`.
pub fn best(candidates: &[(String, Option<Metrics>, usize)]) -> Result<(usize, Vec<Candidate>)> {
    let mut devs = Vec::with_capacity(candidates.len());
    let mut seen = Vec::with_capacity(candidates.len());
    for (name, dev, epoch) in candidates {
        let dev = dev.ok_or_else(|| {
            Error::runtime(format!(
                "`{name}` was trained without dev metrics, so nothing can be chosen by it"
            ))
        })?;
        devs.push(dev);
        seen.push(Candidate {
            name: name.clone(),
            dev_accuracy: dev.accuracy,
            dev_nll: dev.nll,
            epoch: *epoch,
        });
    }
    let top = devs
        .iter()
        .copied()
        .reduce(|b, d| if d.better_than(&b) { d } else { b })
        .ok_or_else(|| Error::runtime("there is no candidate to choose from"))?;
    let p = top.accuracy;
    let se = (p * (1.0 - p) / top.rows.max(1) as f64).sqrt();
    let i = devs
        .iter()
        .position(|d| d.accuracy >= p - se - 1e-12)
        .unwrap_or(0);
    Ok((i, seen))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(accuracy: f64, nll: f64) -> Option<Metrics> {
        Some(Metrics {
            rows: 100,
            accuracy,
            macro_f1: accuracy,
            nll,
            ece: 0.0,
        })
    }

    #[test]
    fn put_first_moves_one_candidate_and_keeps_the_others_in_order() {
        let mut v: Vec<(String, u8)> = ["a", "b", "c"].iter().map(|n| (n.to_string(), 0)).collect();
        put_first(&mut v, "c");
        let names: Vec<&str> = v.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["c", "a", "b"]);
        put_first(&mut v, "absent");
        assert_eq!(v.len(), 3);
    }

    #[test]
    fn takes_the_simplest_candidate_within_one_standard_error_of_the_best() {
        let c = |v: Vec<(&str, Option<Metrics>)>| {
            let v: Vec<_> = v.into_iter().map(|(n, d)| (n.to_string(), d, 1)).collect();
            best(&v).unwrap().0
        };
        // 100 dev rows at 80%: one standard error is 4 points.
        assert_eq!(c(vec![("a", m(0.70, 0.5)), ("b", m(0.80, 0.9))]), 1);
        assert_eq!(c(vec![("a", m(0.77, 0.5)), ("b", m(0.80, 0.9))]), 0);
        assert_eq!(
            c(vec![
                ("a", m(0.70, 0.5)),
                ("b", m(0.77, 0.5)),
                ("c", m(0.80, 0.4))
            ]),
            1
        );
        // Equal accuracy: the first.
        assert_eq!(c(vec![("a", m(0.8, 0.4)), ("b", m(0.8, 0.3))]), 0);
        let err = best(&[("a".into(), None, 1)]).unwrap_err();
        assert!(err.render().contains("without dev metrics"));
    }
}
