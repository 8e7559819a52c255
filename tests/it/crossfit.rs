//! Cross-fitted teachers: a `train` stage with `folds` writes fold models that each never saw
//! one fold of the row families, and a `teacher` given that folder labels every training row
//! and its copies with the model of its fold, and any other row with the mean of all.

use std::collections::BTreeMap;
use std::path::Path;

use arrow::array::{Array, FixedSizeListArray, Float32Array, StringArray};

use crate::common::*;

/// id → (parent id, teacher logits) of every row of an output folder.
fn logits_by_id(dir: &Path) -> BTreeMap<String, (Option<String>, Vec<f32>)> {
    let mut out = BTreeMap::new();
    for b in read_batches(dir) {
        let strings = |n: &str| {
            b.column_by_name(n)
                .unwrap()
                .as_any()
                .downcast_ref::<StringArray>()
                .unwrap()
                .clone()
        };
        let (ids, parents) = (strings("id"), strings("parent_id"));
        let list = b
            .column_by_name("teacher_logits")
            .unwrap()
            .as_any()
            .downcast_ref::<FixedSizeListArray>()
            .unwrap()
            .clone();
        for i in 0..b.num_rows() {
            let v = list.value(i);
            let v = v.as_any().downcast_ref::<Float32Array>().unwrap();
            let parent = parents.is_valid(i).then(|| parents.value(i).to_string());
            out.insert(ids.value(i).to_string(), (parent, v.values().to_vec()));
        }
    }
    out
}

fn softmax(l: &[f32]) -> Vec<f64> {
    let m = l.iter().fold(f32::MIN, |a, &b| a.max(b)) as f64;
    let e: Vec<f64> = l.iter().map(|&x| (x as f64 - m).exp()).collect();
    let z: f64 = e.iter().sum();
    e.into_iter().map(|x| x / z).collect()
}

/// `retort stage teacher` with `model` over `input` into `out`.
fn label(input: &str, out: &Path, model: &Path) -> BTreeMap<String, (Option<String>, Vec<f32>)> {
    let args = stage_args(
        "teacher",
        input,
        out,
        &[&format!("model=\"{}\"", model.display())],
    );
    ok_owned(&args);
    logits_by_id(out)
}

#[test]
fn a_crossfit_teacher_labels_each_family_with_the_model_that_never_saw_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("teacher");
    let pipeline = tmp.path().join("crossfit.toml");
    std::fs::write(
        &pipeline,
        format!(
            r#"[pipeline]
name = "crossfit"
seed = 3

[stages.corpus]
kind = "parquet_source"
path = "{}"

[stages.eda]
kind = "eda"
inputs = ["corpus"]
copies = 2
alpha = 0.1

[stages.train]
kind = "train"
inputs = ["eda"]
path = "{}"
folds = 3
epochs = 1
vocab_size = 1000
embed_dim = 16
"#,
            root().join("fixtures/reviews_train.parquet").display(),
            dir.display()
        ),
    )
    .unwrap();
    ok(&["run", pipeline.to_str().unwrap(), "--quiet"]);
    let crossfit = dir.join("crossfit");
    let folds: serde_json::Value =
        serde_json::from_slice(&std::fs::read(crossfit.join("folds.json")).unwrap()).unwrap();
    assert_eq!(folds["k"], 3);
    let family_fold: BTreeMap<String, usize> = folds["families"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap() as usize))
        .collect();
    // Each fold holds about a third of the fixture's families.
    for f in 0..3 {
        let n = family_fold.values().filter(|&&x| x == f).count();
        assert!(n * 4 > family_fold.len(), "fold {f} holds {n} families");
    }

    let rows = dir.join("rows").display().to_string();
    let crossfitted = label(&rows, &tmp.path().join("soft"), &crossfit);
    let each: Vec<_> = (0..3)
        .map(|f| {
            let model = crossfit.join(format!("fold-{f}/final"));
            label(&rows, &tmp.path().join(format!("fold-{f}")), &model)
        })
        .collect();
    assert!(
        crossfitted.len() > family_fold.len(),
        "the copies are labelled too"
    );
    for (id, (parent, logits)) in &crossfitted {
        let family = parent.as_deref().unwrap_or(id);
        let fold = family_fold[family];
        assert_eq!(
            logits, &each[fold][id].1,
            "row {id} (family {family}) must be labelled by fold {fold}'s model alone"
        );
    }

    // Rows outside the training rows get the log of the mean of the fold models' probabilities.
    let test = root().join("fixtures/reviews_test.parquet");
    let test = test.to_str().unwrap();
    let outside = label(test, &tmp.path().join("test-soft"), &crossfit);
    let test_each: Vec<_> = (0..3)
        .map(|f| {
            let model = crossfit.join(format!("fold-{f}/final"));
            label(test, &tmp.path().join(format!("test-{f}")), &model)
        })
        .collect();
    for (id, (_, logits)) in &outside {
        assert!(!family_fold.contains_key(id), "{id} is a training row");
        let mean: Vec<f64> = (0..2)
            .map(|c| test_each.iter().map(|e| softmax(&e[id].1)[c]).sum::<f64>() / 3.0)
            .collect();
        for (got, want) in logits.iter().zip(&mean) {
            assert!(
                (*got as f64 - want.ln()).abs() < 1e-5,
                "{id}: {logits:?} vs {mean:?}"
            );
        }
    }
}
