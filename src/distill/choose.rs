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

/// The candidate with the best dev metrics ([`Metrics::better_than`]); of equals, the first,
/// so a simpler recipe listed earlier wins a tie.
pub fn best(candidates: &[(String, Option<Metrics>, usize)]) -> Result<(usize, Vec<Candidate>)> {
    let mut chosen: Option<(usize, Metrics)> = None;
    let mut seen = Vec::with_capacity(candidates.len());
    for (i, (name, dev, epoch)) in candidates.iter().enumerate() {
        let dev = dev.ok_or_else(|| {
            Error::runtime(format!(
                "`{name}` was trained without dev metrics, so nothing can be chosen by it"
            ))
        })?;
        if chosen.is_none_or(|(_, b)| dev.better_than(&b)) {
            chosen = Some((i, dev));
        }
        seen.push(Candidate {
            name: name.clone(),
            dev_accuracy: dev.accuracy,
            dev_nll: dev.nll,
            epoch: *epoch,
        });
    }
    let (i, _) = chosen.ok_or_else(|| Error::runtime("there is no candidate to choose from"))?;
    Ok((i, seen))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(accuracy: f64, nll: f64) -> Option<Metrics> {
        Some(Metrics {
            rows: 10,
            accuracy,
            macro_f1: accuracy,
            nll,
            ece: 0.0,
        })
    }

    #[test]
    fn picks_the_best_dev_accuracy_then_the_lower_nll_then_the_first() {
        let c = |v: Vec<(&str, Option<Metrics>)>| {
            let v: Vec<_> = v.into_iter().map(|(n, d)| (n.to_string(), d, 1)).collect();
            best(&v).unwrap().0
        };
        assert_eq!(c(vec![("a", m(0.7, 0.5)), ("b", m(0.8, 0.9))]), 1);
        assert_eq!(c(vec![("a", m(0.8, 0.5)), ("b", m(0.8, 0.4))]), 1);
        assert_eq!(c(vec![("a", m(0.8, 0.4)), ("b", m(0.8, 0.4))]), 0);
        let err = best(&[("a".into(), None, 1)]).unwrap_err();
        assert!(err.render().contains("without dev metrics"));
    }
}
