//! The dev split: original training rows held out, with their augmented copies, so that every
//! choice an experiment makes (the epoch a student stops at, which setting `full` recommends)
//! reads rows no student trained on and never the test set.
//!
//! The split is stratified and seeded: within each class the labelled original rows are ordered
//! by a seeded hash of their id and the first `fraction` of them (at least one where a class has
//! two or more) are held out. A row whose text is also a test row's (after trimming, case
//! folding and collapsing spaces) is never held out, so the dev split holds no test row even
//! where the two files overlap.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde::{Deserialize, Serialize};

use crate::distill::crossfit::family_of;
use crate::distill::data::{Dataset, Example};
use crate::error::{Error, Result};

/// Families (original row ids) held out as the dev split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DevSplit {
    /// The fraction of each class asked for.
    pub fraction: f64,
    /// Seed of the split.
    pub seed: u64,
    /// Ids of the held-out original rows.
    pub families: BTreeSet<String>,
}

/// A text as compared with the test set: trimmed, lower-cased, runs of spaces made one.
pub fn normalized(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

impl DevSplit {
    /// Holds out `fraction` of the labelled original rows of `rows` (those without a
    /// `parent_id`), class by class, skipping any whose normalized text is in `test_texts`.
    pub fn carve(
        rows: &[Example],
        fraction: f64,
        seed: u64,
        test_texts: &HashSet<String>,
    ) -> Result<DevSplit> {
        if !(0.0..0.5).contains(&fraction) || fraction == 0.0 {
            return Err(Error::user(format!(
                "`--dev-fraction {fraction}`: the dev split must be more than 0 and less than 0.5 of the rows"
            ))
            .with_hint("0.15 is the default"));
        }
        let mut by_class: BTreeMap<usize, Vec<(u64, &str)>> = BTreeMap::new();
        for e in rows.iter().filter(|e| e.parent_id.is_none()) {
            let Some(label) = e.label else { continue };
            if test_texts.contains(&normalized(&e.text)) {
                continue;
            }
            let h = xxhash_rust::xxh3::xxh3_64_with_seed(e.id.as_bytes(), seed);
            by_class.entry(label).or_default().push((h, &e.id));
        }
        let mut families = BTreeSet::new();
        for members in by_class.values_mut() {
            members.sort();
            let n = members.len();
            let take = ((n as f64 * fraction).round() as usize).max(usize::from(n >= 2));
            families.extend(members.iter().take(take).map(|(_, id)| id.to_string()));
        }
        if families.is_empty() {
            return Err(
                Error::user("no labelled training row can be held out as a dev split").with_hint(
                    "the training rows need gold labels, and texts that are not test rows",
                ),
            );
        }
        Ok(DevSplit {
            fraction,
            seed,
            families,
        })
    }

    /// Whether `e` (an original or a copy of one) belongs to the dev split.
    pub fn holds(&self, e: &Example) -> bool {
        self.families
            .contains(family_of(&e.id, e.parent_id.as_deref()))
    }

    /// The rows of `data` a student may train on: all but the dev families.
    pub fn train_part(&self, data: &Dataset) -> Dataset {
        Dataset {
            examples: data
                .examples
                .iter()
                .filter(|e| !self.holds(e))
                .cloned()
                .collect(),
            label_names: data.label_names.clone(),
        }
    }

    /// The dev rows: the held-out originals of `data`, with their gold labels.
    pub fn dev_rows(&self, data: &Dataset) -> Dataset {
        Dataset {
            examples: data
                .examples
                .iter()
                .filter(|e| e.parent_id.is_none() && e.label.is_some() && self.holds(e))
                .map(|e| Example {
                    teacher: None,
                    ..e.clone()
                })
                .collect(),
            label_names: data.label_names.clone(),
        }
    }

    /// A short hash of the held-out families, for fingerprints.
    pub fn fingerprint(&self) -> String {
        let joined: Vec<&str> = self.families.iter().map(String::as_str).collect();
        format!(
            "{:016x}",
            xxhash_rust::xxh3::xxh3_64(joined.join("\n").as_bytes())
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> Vec<Example> {
        let mut rows = Vec::new();
        for i in 0..100 {
            let id = format!("r{i}");
            rows.push(Example {
                id: id.clone(),
                parent_id: None,
                text: format!("Row  number {i}"),
                label: Some(usize::from(i % 5 == 0)),
                teacher: None,
            });
            rows.push(Example {
                id: format!("{id}-aug"),
                parent_id: Some(id),
                text: format!("row no. {i}"),
                label: Some(usize::from(i % 5 == 0)),
                teacher: None,
            });
        }
        rows
    }

    #[test]
    fn holds_out_each_class_in_proportion_with_its_copies() {
        let rows = rows();
        let split = DevSplit::carve(&rows, 0.2, 7, &HashSet::new()).unwrap();
        let dev: Vec<&Example> = rows
            .iter()
            .filter(|e| e.parent_id.is_none() && split.holds(e))
            .collect();
        // 80 of class 0, 20 of class 1: 16 and 4 held out.
        assert_eq!(dev.len(), 20);
        assert_eq!(dev.iter().filter(|e| e.label == Some(1)).count(), 4);
        let data = Dataset {
            examples: rows.clone(),
            label_names: vec!["a".into(), "b".into()],
        };
        let train = split.train_part(&data);
        assert_eq!(train.examples.len(), 160);
        assert!(train.examples.iter().all(|e| !split.holds(e)));
        assert_eq!(split.dev_rows(&data).examples.len(), 20);
        // Same seed, same split; another seed, another.
        assert_eq!(
            split,
            DevSplit::carve(&rows, 0.2, 7, &HashSet::new()).unwrap()
        );
        assert_ne!(
            split.families,
            DevSplit::carve(&rows, 0.2, 8, &HashSet::new())
                .unwrap()
                .families
        );
    }

    #[test]
    fn never_holds_out_a_test_row() {
        let rows = rows();
        // Every even row's text is also in the test set (spelled with other spaces and case).
        let test: HashSet<String> = (0..100)
            .step_by(2)
            .map(|i| normalized(&format!(" ROW number   {i} ")))
            .collect();
        for seed in 0..20 {
            let split = DevSplit::carve(&rows, 0.3, seed, &test).unwrap();
            for e in rows
                .iter()
                .filter(|e| split.holds(e) && e.parent_id.is_none())
            {
                assert!(!test.contains(&normalized(&e.text)), "{}", e.text);
            }
        }
    }

    #[test]
    fn refuses_fractions_that_leave_nothing_to_train_on() {
        for bad in [0.0, 0.5, 0.9, -0.1] {
            let err = DevSplit::carve(&rows(), bad, 0, &HashSet::new()).unwrap_err();
            assert!(err.render().contains("--dev-fraction"), "{}", err.render());
        }
    }
}
