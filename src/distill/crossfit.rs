//! Cross-fitted teachers: k models, each trained without one fold of row families, so that
//! every training row, and every augmented copy of it, is labelled by a model that never saw
//! that row's family. A teacher that saw every row gives near one-hot soft labels (it has
//! memorised them); a cross-fitted one gives the honest, uncertain ones that make
//! self-distillation teach something.
//!
//! A cross-fit folder holds `folds.json` (the family → fold assignment and the fold models'
//! folders) and one model folder per fold. The `teacher` stage recognises it: a row whose family
//! (its `parent_id`, or its own `id` for an original) is in the assignment is labelled by the
//! model of its fold alone; any other row (unlabeled pools, pseudo-data) by the mean of the k
//! models' probabilities.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::distill::data::{Dataset, Example};
use crate::distill::train::{self, TrainConfig};
use crate::error::{Error, Result};

/// Name of the assignment file in a cross-fit folder.
pub const FOLDS_FILE: &str = "folds.json";

/// The family of a row: the original row it was made from, or itself.
pub fn family_of<'a>(id: &'a str, parent_id: Option<&'a str>) -> &'a str {
    parent_id.unwrap_or(id)
}

/// Which fold each family of the training rows belongs to, and where the fold models are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FoldAssignment {
    /// Number of folds.
    pub k: usize,
    /// Seed of the assignment.
    pub seed: u64,
    /// Family id → fold.
    pub families: BTreeMap<String, usize>,
    /// The model folder of each fold, relative to the cross-fit folder.
    pub models: Vec<PathBuf>,
}

impl FoldAssignment {
    /// Deals the families of `examples` into `k` folds, stratified by the gold label of each
    /// family's first labelled row: within a class, families are ordered by a seeded hash and
    /// dealt in turn, continuing the turn from class to class, so fold sizes differ by at most
    /// one family and every fold holds every class in proportion.
    pub fn assign(examples: &[Example], k: usize, seed: u64) -> Result<FoldAssignment> {
        if k < 2 {
            return Err(Error::user("cross-fitting needs at least 2 folds"));
        }
        let mut label_of: BTreeMap<&str, Option<usize>> = BTreeMap::new();
        for e in examples {
            let slot = label_of
                .entry(family_of(&e.id, e.parent_id.as_deref()))
                .or_default();
            if slot.is_none() {
                *slot = e.label;
            }
        }
        if label_of.len() < k {
            return Err(Error::user(format!(
                "cross-fitting with {k} folds needs at least {k} row families, the corpus has {}",
                label_of.len()
            ))
            .with_hint("use fewer folds"));
        }
        let mut by_class: BTreeMap<Option<usize>, Vec<(u64, &str)>> = BTreeMap::new();
        for (family, label) in label_of {
            let h = xxhash_rust::xxh3::xxh3_64_with_seed(family.as_bytes(), seed);
            by_class.entry(label).or_default().push((h, family));
        }
        let mut families = BTreeMap::new();
        let mut turn = 0usize;
        for members in by_class.values_mut() {
            members.sort();
            for (_, family) in members.iter() {
                families.insert(family.to_string(), turn % k);
                turn += 1;
            }
        }
        Ok(FoldAssignment {
            k,
            seed,
            families,
            models: (0..k)
                .map(|i| PathBuf::from(format!("fold-{i}/final")))
                .collect(),
        })
    }

    /// The fold of a row's family, when the family was in the training rows.
    pub fn fold_of(&self, id: &str, parent_id: Option<&str>) -> Option<usize> {
        self.families.get(family_of(id, parent_id)).copied()
    }

    /// The rows of `data` outside fold `fold`: what that fold's model trains on.
    pub fn without_fold(&self, data: &Dataset, fold: usize) -> Dataset {
        Dataset {
            examples: data
                .examples
                .iter()
                .filter(|e| self.fold_of(&e.id, e.parent_id.as_deref()) != Some(fold))
                .cloned()
                .collect(),
            label_names: data.label_names.clone(),
        }
    }

    /// Reads `DIR/folds.json`; `None` when `dir` is not a cross-fit folder.
    pub fn read(dir: &Path) -> Result<Option<FoldAssignment>> {
        let path = dir.join(FOLDS_FILE);
        if !path.is_file() {
            return Ok(None);
        }
        let a: FoldAssignment = crate::io::manifest::read_json(&path)
            .map_err(|e| e.context(format!("cross-fit folder `{}`", dir.display())))?;
        if a.models.len() != a.k || a.families.values().any(|&f| f >= a.k) {
            return Err(Error::user(format!(
                "`{}` is inconsistent: {} folds, {} models",
                path.display(),
                a.k,
                a.models.len()
            ))
            .with_hint("train the cross-fit folder again"));
        }
        Ok(Some(a))
    }

    /// The fold models' folders under `dir`.
    pub fn model_dirs(&self, dir: &Path) -> Vec<PathBuf> {
        self.models.iter().map(|m| dir.join(m)).collect()
    }
}

/// Trains `k` fold models on `data` into `dir` (`fold-I/` each, then `folds.json` last, so a
/// folder with `folds.json` is complete). Fold `i` trains with seed `cfg.seed + 1000·(i+1)`.
pub fn train_folds(
    cfg: &TrainConfig,
    data: &Dataset,
    k: usize,
    dir: &Path,
    progress: bool,
) -> Result<FoldAssignment> {
    let assignment = FoldAssignment::assign(&data.examples, k, cfg.seed)?;
    let device = cfg.placement.open()?.device;
    for fold in 0..k {
        if progress {
            eprintln!("cross-fit: fold {}/{k}", fold + 1);
        }
        let rows = assignment.without_fold(data, fold);
        let mut fc = cfg.clone();
        fc.seed = cfg.seed + 1000 * (fold as u64 + 1);
        let mut student = train::new_student(&fc, &rows, &device)?;
        train::train(
            &fc,
            &mut student,
            &rows,
            None,
            &dir.join(format!("fold-{fold}")),
            progress,
        )
        .map_err(|e| e.context(format!("cross-fit fold {fold}")))?;
    }
    crate::io::manifest::write_json_atomic(&dir.join(FOLDS_FILE), &assignment)?;
    Ok(assignment)
}

/// Mean entropy (nats) of the soft labels of `data` with the logits divided by `temperature`
/// (the teacher's own, 1 for most), over rows that have them; `ln(classes)` is the most
/// uncertain, 0 one-hot.
pub fn soft_label_entropy(data: &Dataset, temperature: f64) -> Option<f64> {
    let mut total = 0.0;
    let mut rows = 0usize;
    for l in data.examples.iter().filter_map(|e| e.teacher.as_ref()) {
        let scaled: Vec<f32> = l
            .iter()
            .map(|&v| (f64::from(v) / temperature) as f32)
            .collect();
        let p = crate::distill::metrics::softmax(&scaled);
        total -= p
            .iter()
            .filter(|&&x| x > 0.0)
            .map(|x| x * x.ln())
            .sum::<f64>();
        rows += 1;
    }
    (rows > 0).then(|| total / rows as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus() -> Vec<Example> {
        let mut rows = Vec::new();
        for i in 0..40 {
            let id = format!("r{i}");
            let label = Some(usize::from(i % 4 == 0));
            rows.push(Example {
                id: id.clone(),
                parent_id: None,
                text: format!("row {i}"),
                label,
                teacher: None,
            });
            for c in 0..3 {
                rows.push(Example {
                    id: format!("{id}-{c}"),
                    parent_id: Some(id.clone()),
                    text: format!("copy {c} of row {i}"),
                    label,
                    teacher: None,
                });
            }
        }
        rows
    }

    #[test]
    fn a_family_stays_in_one_fold_and_folds_are_stratified() {
        let rows = corpus();
        let a = FoldAssignment::assign(&rows, 5, 7).unwrap();
        assert_eq!(a.families.len(), 40);
        for e in &rows {
            let root = e.parent_id.as_deref().unwrap_or(&e.id);
            assert_eq!(
                a.fold_of(&e.id, e.parent_id.as_deref()),
                a.families.get(root).copied()
            );
        }
        for fold in 0..5 {
            let members: Vec<&Example> = rows
                .iter()
                .filter(|e| e.parent_id.is_none() && a.fold_of(&e.id, None) == Some(fold))
                .collect();
            assert_eq!(members.len(), 8, "fold {fold}");
            let positive = members.iter().filter(|e| e.label == Some(1)).count();
            assert_eq!(positive, 2, "fold {fold} holds its share of the rare class");
        }
        // Another seed deals differently; the same seed the same way.
        assert_ne!(
            a.families,
            FoldAssignment::assign(&rows, 5, 8).unwrap().families
        );
        assert_eq!(a, FoldAssignment::assign(&rows, 5, 7).unwrap());
    }

    #[test]
    fn a_fold_model_trains_on_no_row_of_its_fold() {
        let rows = corpus();
        let a = FoldAssignment::assign(&rows, 4, 1).unwrap();
        let data = Dataset {
            examples: rows,
            label_names: vec!["a".into(), "b".into()],
        };
        let mut seen = 0;
        for fold in 0..4 {
            let train = a.without_fold(&data, fold);
            assert!(train
                .examples
                .iter()
                .all(|e| a.fold_of(&e.id, e.parent_id.as_deref()) != Some(fold)));
            seen += data.examples.len() - train.examples.len();
        }
        assert_eq!(
            seen,
            data.examples.len(),
            "each row is held out exactly once"
        );
    }

    #[test]
    fn too_few_families_or_folds_are_refused() {
        let rows = corpus();
        assert!(FoldAssignment::assign(&rows, 1, 0).is_err());
        let e = FoldAssignment::assign(&rows[..8], 5, 0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("at least 5 row families"), "{e}");
    }

    #[test]
    fn entropy_is_zero_for_one_hot_and_ln_c_for_uniform() {
        let ex = |t: Vec<f32>| Example {
            id: "x".into(),
            parent_id: None,
            text: "x".into(),
            label: None,
            teacher: Some(t),
        };
        let d = |t| Dataset {
            examples: vec![ex(t)],
            label_names: vec!["a".into(), "b".into()],
        };
        assert!((soft_label_entropy(&d(vec![0.0, 0.0]), 1.0).unwrap() - 2f64.ln()).abs() < 1e-9);
        assert!(soft_label_entropy(&d(vec![0.0, -80.0]), 1.0).unwrap() < 1e-9);
    }
}
