//! The recommended recipe as a user runs it (`make recommended-chain`): `retort split`,
//! `retort transfer-set` and `pipelines/recommended.toml`, end to end on the fixture split (a
//! small CNN teacher stands in for time, not for realism: the pipeline takes any model folder).

use std::collections::HashSet;
use std::path::Path;

use retort::testing::{available, Dep};

use crate::common::*;

fn normalized(t: &str) -> String {
    t.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

fn texts_of(path: &Path) -> Vec<(String, Option<i64>)> {
    let data = retort::distill::data::load(path.to_str().unwrap(), "text", "label", None).unwrap();
    data.examples
        .into_iter()
        .map(|e| (e.text, e.label.map(|l| l as i64)))
        .collect()
}

#[test]
fn the_recommended_chain_trains_a_student_on_gold_and_new_inputs() {
    if !available(Dep::WordNet) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let train = root().join("fixtures/reviews_train.parquet");
    let test = root().join("fixtures/reviews_test.parquet");
    let (train, test) = (train.to_str().unwrap(), test.to_str().unwrap());
    let split = tmp.path().join("split");
    ok(&[
        "split",
        "--data",
        train,
        "--exclude",
        test,
        "--out",
        split.to_str().unwrap(),
    ]);
    let (train_rows, dev_rows) = (
        texts_of(&split.join("train.parquet")),
        texts_of(&split.join("dev.parquet")),
    );
    assert_eq!(
        train_rows.len() + dev_rows.len(),
        180,
        "every row lands in one file"
    );
    assert!(
        (20..=34).contains(&dev_rows.len()),
        "15% of 180: {}",
        dev_rows.len()
    );
    assert!(train_rows.iter().chain(&dev_rows).all(|(_, l)| l.is_some()));
    let dev_classes: HashSet<i64> = dev_rows.iter().filter_map(|r| r.1).collect();
    assert_eq!(
        dev_classes.len(),
        2,
        "stratified: both classes in the dev split"
    );
    // The same split again: same files, byte for byte.
    let before = std::fs::read(split.join("dev.parquet")).unwrap();
    ok(&[
        "split",
        "--data",
        train,
        "--exclude",
        test,
        "--out",
        split.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read(split.join("dev.parquet")).unwrap(), before);

    let new_inputs = tmp.path().join("new-inputs.parquet");
    let split_train = split.join("train.parquet");
    ok(&[
        "transfer-set",
        "--train",
        split_train.to_str().unwrap(),
        "--exclude",
        test,
        "--wordnet-sentences",
        "50",
        "--replacement-copies",
        "2",
        "--out",
        new_inputs.to_str().unwrap(),
    ]);
    let new_rows = texts_of(&new_inputs);
    assert!(new_rows.len() > 50 + 150, "{} new inputs", new_rows.len());
    assert!(new_rows.iter().all(|(_, l)| l.is_none()), "no gold label");
    let test_texts: HashSet<String> = texts_of(Path::new(test))
        .iter()
        .map(|r| normalized(&r.0))
        .collect();
    let dev_texts: HashSet<String> = dev_rows.iter().map(|r| normalized(&r.0)).collect();
    assert!(new_rows
        .iter()
        .all(|r| !test_texts.contains(&normalized(&r.0))));
    assert!(new_rows
        .iter()
        .all(|r| !dev_texts.contains(&normalized(&r.0))));

    let teacher = train_tiny_teacher(&tmp.path().join("teacher"));
    let dev = split.join("dev.parquet");
    ok(&["calibrate", &teacher, "--data", dev.to_str().unwrap()]);
    let student = tmp.path().join("student");
    let var = |k: &str, v: &Path| format!("{k}={}", v.display());
    let run = [
        "run".to_string(),
        root()
            .join("pipelines/recommended.toml")
            .display()
            .to_string(),
        "--var".into(),
        var("input", &split_train),
        "--var".into(),
        var("dev", &dev),
        "--var".into(),
        var("new_inputs", &new_inputs),
        "--var".into(),
        var("teacher", Path::new(&teacher)),
        "--var".into(),
        var("output", &student),
        "--var".into(),
        "copies=2".into(),
        "--var".into(),
        "epochs=1".into(),
        "--quiet".into(),
    ];
    ok_owned(&run);
    assert!(student.join("best").join("retort.json").is_file());
    assert!(student.join("_TRAINED.json").is_file());
    // The student saw the gold rows with their labels and the new inputs (and their EDA
    // copies) without one, every row soft-labelled.
    let rows = read_rows(&student.join("rows"));
    let unlabelled = rows.iter().filter(|r| r.label.is_none()).count();
    let labelled = rows.iter().filter(|r| r.label.is_some()).count();
    assert!(
        unlabelled >= 2 * new_rows.len() - 10,
        "{unlabelled} unlabelled rows"
    );
    assert!(labelled >= 2 * train_rows.len(), "{labelled} labelled rows");
    let batches = read_batches(&student.join("rows"));
    assert!(batches
        .iter()
        .all(|b| b.column_by_name("teacher_logits").is_some()));
    let metrics = ok(&[
        "eval",
        student.join("best").to_str().unwrap(),
        "--data",
        test,
    ]);
    assert!(metrics.contains("accuracy"), "{metrics}");
}
