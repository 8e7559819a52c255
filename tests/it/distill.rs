//! Training, evaluation and the teacher stage on the fixture corpus.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, FixedSizeListArray, Float32Array, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field};

use crate::common::*;

/// Splits the fixture corpus: the first 180 rows to train, the last 60 to test.
fn split(dir: &Path) -> (String, String) {
    let rows = fixture_tsv();
    let write = |path: &Path, part: &[(String, String, String)]| {
        let ids: ArrayRef = Arc::new(StringArray::from_iter_values(
            part.iter().map(|r| r.0.as_str()),
        ));
        let text: ArrayRef = Arc::new(StringArray::from_iter_values(
            part.iter().map(|r| r.1.as_str()),
        ));
        let label: ArrayRef = Arc::new(Int64Array::from_iter_values(
            part.iter().map(|r| i64::from(r.2 == "positive")),
        ));
        write_parquet(
            path,
            vec![("id", ids), ("text", text), ("label", label)],
            1000,
        );
    };
    let train = dir.join("train.parquet");
    let test = dir.join("test.parquet");
    write(&train, &rows[..180]);
    write(&test, &rows[180..]);
    (train.display().to_string(), test.display().to_string())
}

fn train(data: &str, out: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "train",
        "--data",
        data,
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ];
    for e in extra {
        args.extend(["--set", e]);
    }
    ok(&args);
    serde_json::from_str(&std::fs::read_to_string(out.join("train_log.json")).unwrap()).unwrap()
}

#[test]
fn a_student_learns_the_fixtures_deterministically() {
    let tmp = tempfile::tempdir().unwrap();
    let (train_path, test_path) = split(tmp.path());
    let settings = [
        "epochs=10",
        "batch_size=16",
        "learning_rate=0.003",
        "seed=3",
        "vocab_size=2000",
        "embed_dim=64",
    ];
    let a = train(&train_path, &tmp.path().join("a"), &settings);
    let losses: Vec<f64> = a["epochs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["loss"].as_f64().unwrap())
        .collect();
    assert!(
        losses.last().unwrap() < &(losses[0] * 0.7),
        "loss did not decrease: {losses:?}"
    );
    for epoch in 1..=10 {
        assert!(tmp
            .path()
            .join(format!("a/epoch-{epoch:02}/model.safetensors"))
            .exists());
    }
    // Beats the majority class (50%) on held-out rows.
    let metrics = ok(&[
        "eval",
        tmp.path().join("a/final").to_str().unwrap(),
        "--data",
        &test_path,
    ]);
    let m: serde_json::Value = serde_json::from_str(&metrics).unwrap();
    assert!(m["accuracy"].as_f64().unwrap() > 0.65, "{m}");
    for k in ["macro_f1", "nll", "ece"] {
        assert!(m[k].as_f64().is_some(), "{m}");
    }
    // Same seed, same weights.
    train(&train_path, &tmp.path().join("b"), &settings);
    let wa = std::fs::read(tmp.path().join("a/final/model.safetensors")).unwrap();
    let wb = std::fs::read(tmp.path().join("b/final/model.safetensors")).unwrap();
    assert!(wa == wb, "training is not deterministic for a seed");
}

#[test]
fn teacher_stage_labels_every_row_and_ensembles_average_probabilities() {
    if !wordnet() {
        eprintln!("skipped: WordNet is not installed");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (train_path, _) = split(tmp.path());
    train(
        &train_path,
        &tmp.path().join("t1"),
        &["epochs=2", "seed=1", "vocab_size=1500", "embed_dim=32"],
    );
    train(
        &train_path,
        &tmp.path().join("t2"),
        &["epochs=2", "seed=2", "vocab_size=1500", "embed_dim=32"],
    );
    let m1 = tmp.path().join("t1/final");
    let m2 = tmp.path().join("t2/final");
    let p = tmp.path().join("soft.toml");
    std::fs::write(
        &p,
        format!(
            "[pipeline]\nseed = 4\n[stages.c]\nkind = \"parquet_source\"\npath = \"{train_path}\"\n\
             [stages.aug]\nkind = \"eda\"\ninputs = [\"c\"]\ncopies = 2\nkeep_original = true\n\
             [stages.one]\nkind = \"teacher\"\ninputs = [\"aug\"]\nmodel = \"{}\"\n\
             [stages.out1]\nkind = \"parquet_sink\"\ninputs = [\"one\"]\npath = \"{}\"\n\
             [stages.ens]\nkind = \"teacher\"\ninputs = [\"aug\"]\nmodel = [\"{}\", \"{}\"]\n\
             [stages.out2]\nkind = \"parquet_sink\"\ninputs = [\"ens\"]\npath = \"{}\"\n",
            m1.display(),
            tmp.path().join("soft1").display(),
            m1.display(),
            m2.display(),
            tmp.path().join("soft2").display()
        ),
    )
    .unwrap();
    ok(&["run", p.to_str().unwrap(), "--quiet"]);
    let single = read_logits(&tmp.path().join("soft1"));
    let ensemble = read_logits(&tmp.path().join("soft2"));
    assert_eq!(
        single.len(),
        180 * 3,
        "every original and augmented row is labelled"
    );
    // The ensemble equals the log of the mean of the members' probabilities.
    let t2 = retort::models::folder::Model::load(&m2, &candle_core::Device::Cpu).unwrap();
    let texts: Vec<&str> = single.iter().take(20).map(|(t, _)| t.as_str()).collect();
    let l2 = t2.logits(&texts).unwrap();
    for (i, (text, l1)) in single.iter().take(20).enumerate() {
        let (_, le) = ensemble.iter().find(|(t, _)| t == text).unwrap();
        let p1 = retort::distill::metrics::softmax(l1);
        let p2 = retort::distill::metrics::softmax(&l2[i]);
        for c in 0..2 {
            let want = ((p1[c] + p2[c]) / 2.0).ln();
            assert!(
                (le[c] as f64 - want).abs() < 1e-4,
                "row {i}: {le:?} vs {want}"
            );
        }
    }
    // The shards say which teacher made them.
    let file = std::fs::read_dir(tmp.path().join("soft2"))
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().ends_with(".parquet"))
        .unwrap()
        .path();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        std::fs::File::open(file).unwrap(),
    )
    .unwrap();
    let meta = reader.schema().metadata().clone();
    let teacher: serde_json::Value = serde_json::from_str(&meta["retort.teacher"]).unwrap();
    assert_eq!(teacher["members"].as_array().unwrap().len(), 2);
    assert_eq!(teacher["members"][0]["sha256"].as_str().unwrap().len(), 64);
    assert!(meta["label_names"].contains("positive") || meta["label_names"].contains('1'));

    // A student trains on the soft labels (KL term) plus gold labels.
    let log = train(
        &tmp.path().join("soft2").display().to_string(),
        &tmp.path().join("s"),
        &[
            "epochs=1",
            "vocab_size=1500",
            "embed_dim=32",
            "mixup=0.4",
            "consistency=0.5",
            "ema=0.9",
        ],
    );
    assert_eq!(log["soft_labelled"], 540);
}

/// (text, teacher_logits) of every row of an output folder.
fn read_logits(dir: &Path) -> Vec<(String, Vec<f32>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".parquet") || name.starts_with('_') {
            continue;
        }
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            std::fs::File::open(e.path()).unwrap(),
        )
        .unwrap()
        .build()
        .unwrap();
        for b in reader {
            let b = b.unwrap();
            let text = b
                .column_by_name("text")
                .unwrap()
                .as_any()
                .downcast_ref::<StringArray>()
                .unwrap()
                .clone();
            let list = b
                .column_by_name("teacher_logits")
                .unwrap()
                .as_any()
                .downcast_ref::<FixedSizeListArray>()
                .unwrap()
                .clone();
            assert_eq!(list.value_length(), 2);
            for i in 0..b.num_rows() {
                let v = list.value(i);
                let v = v.as_any().downcast_ref::<Float32Array>().unwrap();
                out.push((text.value(i).to_string(), v.values().to_vec()));
            }
        }
    }
    out
}

#[test]
fn soft_labels_of_another_class_count_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("bad.parquet");
    let logits = FixedSizeListArray::try_new(
        Arc::new(Field::new("item", DataType::Float32, false)),
        2,
        Arc::new(Float32Array::from(vec![0.1f32, 0.2, 0.3, 0.4, 0.5, 0.6])),
        None,
    )
    .unwrap();
    write_parquet(
        &f,
        vec![
            ("text", texts([Some("good"), Some("bad"), Some("fine")])),
            (
                "label",
                Arc::new(Int64Array::from(vec![0, 1, 2])) as ArrayRef,
            ),
            ("teacher_logits", Arc::new(logits) as ArrayRef),
        ],
        10,
    );
    let err = fails(
        &[
            "train",
            "--data",
            f.to_str().unwrap(),
            "--out",
            tmp.path().join("o").to_str().unwrap(),
        ],
        1,
    );
    assert!(err.contains("teacher logits have 2 classes"), "{err}");
    assert!(err.contains("3"), "{err}");
}

#[test]
fn self_distillation_runs_generations_with_ensembles() {
    if !wordnet() {
        eprintln!("skipped: WordNet is not installed");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (train_path, test_path) = split(tmp.path());
    let out = tmp.path().join("sd");
    let table = ok(&[
        "selfdistill",
        "--data",
        &train_path,
        "--eval",
        &test_path,
        "--out",
        out.to_str().unwrap(),
        "--generations",
        "2",
        "--ensemble",
        "all",
        "--copies",
        "1",
        "--quiet",
        "--set",
        "epochs=3",
        "--set",
        "batch_size=16",
        "--set",
        "learning_rate=0.003",
        "--set",
        "vocab_size=1500",
        "--set",
        "embed_dim=32",
    ]);
    let gens: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("generations.json")).unwrap())
            .unwrap();
    let gens = gens.as_array().unwrap();
    assert_eq!(gens.len(), 3, "{table}");
    assert_eq!(gens[0]["teachers"].as_array().unwrap().len(), 0);
    assert_eq!(gens[1]["teachers"].as_array().unwrap().len(), 1);
    assert_eq!(
        gens[2]["teachers"].as_array().unwrap().len(),
        2,
        "`all` ensembles every earlier generation"
    );
    for g in gens {
        assert!(g["metrics"]["accuracy"].as_f64().unwrap() > 0.5, "{g}");
    }
    // Generation 1 was taught on soft labels of every augmented row.
    let soft = read_logits(&out.join("gen-1/soft"));
    assert_eq!(soft.len(), 180 * 2);
}
