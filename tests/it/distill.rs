//! Training, evaluation and the teacher stage on the fixture corpus.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, FixedSizeListArray, Float32Array, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field};

use crate::common::*;
use retort::distill::results::SETTINGS;

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

/// `id`, `text` and `label` columns of fixture rows (`label` 1 for positive; `flip` inverts it).
fn fixture_columns(
    part: &[&(String, String, String)],
    flip: bool,
) -> Vec<(&'static str, ArrayRef)> {
    vec![
        (
            "id",
            Arc::new(StringArray::from_iter_values(
                part.iter().map(|r| r.0.as_str()),
            )),
        ),
        (
            "text",
            Arc::new(StringArray::from_iter_values(
                part.iter().map(|r| r.1.as_str()),
            )),
        ),
        (
            "label",
            Arc::new(Int64Array::from_iter_values(
                part.iter().map(|r| i64::from((r.2 == "positive") != flip)),
            )),
        ),
    ]
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
    // Calibration on held-out rows: a temperature in the new folder's retort.json, a lower
    // NLL, the same predictions; `eval` reads the temperature.
    let calibrated = tmp.path().join("calibrated");
    let report = ok(&[
        "calibrate",
        tmp.path().join("a/final").to_str().unwrap(),
        "--data",
        &test_path,
        "--out",
        calibrated.to_str().unwrap(),
    ]);
    let c: serde_json::Value = serde_json::from_str(&report).unwrap();
    let t = c["temperature"].as_f64().unwrap();
    assert!(t > 0.0 && (t - 1.0).abs() > 0.01, "{c}");
    let nll = |v: &serde_json::Value| v["nll"].as_f64().unwrap();
    assert!(nll(&c["after"]) < nll(&c["before"]), "{c}");
    assert!((nll(&c["before"]) - nll(&m)).abs() < 1e-6, "{c} {m}");
    let info = std::fs::read_to_string(calibrated.join("retort.json")).unwrap();
    let info: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_eq!(info["temperature"].as_f64(), Some(t));
    let original = std::fs::read_to_string(tmp.path().join("a/final/retort.json")).unwrap();
    let original: serde_json::Value = serde_json::from_str(&original).unwrap();
    assert!(original["temperature"].is_null(), "{original}");
    let again = ok(&["eval", calibrated.to_str().unwrap(), "--data", &test_path]);
    let again: serde_json::Value = serde_json::from_str(&again).unwrap();
    assert_eq!(again["accuracy"], m["accuracy"]);
    assert!((nll(&again) - nll(&c["after"])).abs() < 1e-6, "{again} {c}");
    // Same seed, same weights.
    train(&train_path, &tmp.path().join("b"), &settings);
    let wa = std::fs::read(tmp.path().join("a/final/model.safetensors")).unwrap();
    let wb = std::fs::read(tmp.path().join("b/final/model.safetensors")).unwrap();
    assert!(wa == wb, "training is not deterministic for a seed");
}

#[test]
fn teacher_stage_labels_every_row_and_ensembles_average_probabilities() {
    if !available(Dep::WordNet) {
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

    // The Python example reads the shards as they are.
    python_reader_reads(&tmp.path().join("soft2"), 540);

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

/// Runs `examples/python/read_soft_labels.py` on a shard folder (skipped without python3 +
/// pyarrow + numpy; CI installs them).
fn python_reader_reads(dir: &Path, rows: usize) {
    if !available_for(Dep::PyArrow, "the Python reader") {
        return;
    }
    let out = std::process::Command::new("python3")
        .arg(root().join("examples/python/read_soft_labels.py"))
        .arg(dir)
        .args(["--batch-size", "64"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(&format!("rows {rows}\n")), "{stdout}");
    assert!(stdout.contains("classes 2"), "{stdout}");
    assert!(
        stdout.contains(&format!("with teacher logits {rows}\n")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("batches of 64 {}\n", rows.div_ceil(64))),
        "{stdout}"
    );
    assert!(stdout.contains("teacher members 2"), "{stdout}");
}

/// (text, teacher_logits) of every row of an output folder.
fn read_logits(dir: &Path) -> Vec<(String, Vec<f32>)> {
    let mut out = Vec::new();
    for b in read_batches(dir) {
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
    if !available(Dep::WordNet) {
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
    // A rerun with the same settings reuses every finished generation.
    let before = std::fs::read_to_string(out.join("gen-2/generation.json")).unwrap();
    let stamp = std::fs::metadata(out.join("gen-2/student/final/model.safetensors"))
        .unwrap()
        .modified()
        .unwrap();
    let again = ok(&[
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
    assert_eq!(again, table);
    assert_eq!(
        std::fs::read_to_string(out.join("gen-2/generation.json")).unwrap(),
        before
    );
    assert_eq!(
        std::fs::metadata(out.join("gen-2/student/final/model.safetensors"))
            .unwrap()
            .modified()
            .unwrap(),
        stamp,
        "a finished generation is not retrained"
    );
}

#[test]
fn experiment_compares_every_setting_over_seeds() {
    if !available(Dep::WordNet) {
        return;
    }
    let Some(teacher) = minilm() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("exp");
    // An unlabeled pool: the test rows' texts under other ids, with labels that must be
    // ignored (all "positive").
    let pool = tmp.path().join("pool.parquet");
    let rows = fixture_tsv();
    write_parquet(
        &pool,
        vec![
            (
                "id",
                Arc::new(StringArray::from_iter_values(
                    (0..60).map(|i| format!("pool-{i}")),
                )),
            ),
            (
                "text",
                Arc::new(StringArray::from_iter_values(
                    rows[180..].iter().map(|r| r.1.as_str()),
                )),
            ),
            ("label", Arc::new(Int64Array::from(vec![1i64; 60]))),
        ],
        1000,
    );
    let args = |seeds: &'static str| {
        vec![
            "experiment".to_string(),
            "--train".into(),
            root()
                .join("fixtures/reviews_train.parquet")
                .display()
                .to_string(),
            "--test".into(),
            root()
                .join("fixtures/reviews_test.parquet")
                .display()
                .to_string(),
            "--out".into(),
            out.display().to_string(),
            "--seeds".into(),
            seeds.into(),
            "--copies".into(),
            "1".into(),
            "--generations".into(),
            "2".into(),
            "--epochs".into(),
            "1".into(),
            "--crossfit".into(),
            "2".into(),
            "--teacher".into(),
            teacher.display().to_string(),
            "--teacher-epochs".into(),
            "1".into(),
            "--unlabeled".into(),
            pool.display().to_string(),
            "--wordnet-sentences".into(),
            "40".into(),
            "--replacement-copies".into(),
            "1".into(),
            "--quiet".into(),
            "--set".into(),
            "vocab_size=1000".into(),
            "--set".into(),
            "embed_dim=16".into(),
        ]
    };
    let run = |a: Vec<String>| ok(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let table = run(args("2"));
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    let results = results.as_array().unwrap();
    assert_eq!(results.len(), 22, "11 settings × 2 seeds");
    for setting in SETTINGS {
        for seed in 0..2 {
            let r = results
                .iter()
                .find(|r| r["setting"] == setting && r["seed"] == seed)
                .unwrap_or_else(|| panic!("no {setting}/{seed}"));
            for key in ["accuracy", "macro_f1", "nll", "ece"] {
                let v = r[key].as_f64().unwrap();
                assert!(v.is_finite() && v >= 0.0, "{setting} {key} {v}");
            }
            assert!(r["accuracy"].as_f64().unwrap() <= 1.0);
        }
    }
    // Seeds differ (another augmentation and initialisation).
    let acc = |seed: u64| {
        results
            .iter()
            .filter(|r| r["seed"] == seed)
            .map(|r| r["nll"].as_f64().unwrap())
            .collect::<Vec<_>>()
    };
    assert_ne!(acc(0), acc(1));
    let md = std::fs::read_to_string(out.join("results.md")).unwrap();
    assert!(md.contains("| self-distill |") && md.contains("± "), "{md}");
    assert!(table.contains("| ensemble |"), "{table}");
    let svg = std::fs::read_to_string(out.join("results.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("test accuracy by setting"));
    // The last generation of `ensemble` was taught by both earlier generations.
    let ens: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("seed-0/self-distill/gen-2-ensemble/generation.json"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(ens["generation"]["teachers"].as_array().unwrap().len(), 2);
    // Teaching generations are cross-fitted; the last one is not.
    let sd = out.join("seed-0/self-distill");
    for g in 0..2 {
        let folds = sd.join(format!("gen-{g}/crossfit/folds.json"));
        assert!(folds.is_file(), "{}", folds.display());
    }
    assert!(!sd.join("gen-2/crossfit").exists());
    // Generations after 0 also learnt the new inputs (WordNet sentences and replaced rows,
    // each with an EDA copy) from their teachers; generation 0 knows only the gold labels.
    let mixed = read_batches(&out.join("seed-0/distill/mixed"))
        .iter()
        .map(|b| b.num_rows())
        .sum::<usize>();
    assert!(mixed > 40, "{mixed} new inputs");
    for g in ["gen-1", "gen-2", "gen-2-ensemble"] {
        let taught = read_logits(&sd.join(g).join("soft-pool")).len();
        assert!(taught > mixed, "{g}: {taught} pool rows labelled");
    }
    assert!(!sd.join("gen-0/soft-pool").exists());
    let curves: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("curves.json")).unwrap()).unwrap();
    let entropy = curves
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["setting"] == "self-distill" && c["generation"] == 1)
        .unwrap()["soft_label_entropy"]
        .as_f64()
        .unwrap();
    assert!(entropy > 0.0 && entropy < 2f64.ln() + 1e-9, "{entropy}");
    // distill: the MiniLM teacher labelled the augmented corpus.
    let distilled: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("seed-0/distill/student/generation.json")).unwrap(),
    )
    .unwrap();
    let taught_by = distilled["generation"]["teachers"][0].as_str().unwrap();
    assert!(taught_by.contains("distill/teacher"), "{taught_by}");
    // distill-wordnet: the teacher labelled 40 WordNet example sentences and a copy of each,
    // besides the augmented corpus, and the student learnt from both.
    let wordnet = out.join("seed-0/distill/wordnet");
    let sentences: Vec<String> = read_batches(&wordnet)
        .iter()
        .flat_map(|b| {
            let texts = b.column_by_name("text").unwrap().as_string::<i32>();
            texts
                .iter()
                .map(|t| t.unwrap().to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(sentences.len(), 40);
    let labelled = read_logits(&wordnet.join("student/soft-pool"));
    assert!((41..=80).contains(&labelled.len()), "{}", labelled.len());
    for text in &sentences {
        assert!(labelled.iter().any(|(t, _)| t == text), "{text} unlabelled");
    }
    let log: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(wordnet.join("student/student/train_log.json")).unwrap(),
    )
    .unwrap();
    assert!(log["soft_labelled"].as_u64().unwrap() > 80, "{log}");
    // semi: the pool (60 rows and a copy each) was labelled by the teacher; its labels were
    // ignored, so only the corpus' 360 rows count as labelled.
    let semi = out.join("seed-0/semi/student");
    assert_eq!(read_logits(&semi.join("soft-pool")).len(), 120);
    let semi_gen: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(semi.join("generation.json")).unwrap())
            .unwrap();
    let semi_teacher = semi_gen["generation"]["teachers"][0].as_str().unwrap();
    let choices: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("choices.json")).unwrap()).unwrap();
    let choice = &choices[0];
    if choice["semi_teacher"] == "distill teacher" {
        assert_eq!(semi_teacher, taught_by);
    } else {
        assert!(!semi_teacher.contains("distill/teacher"), "{semi_teacher}");
    }
    // The dev split: held out of training, none of it a test row, and `full` is the
    // candidate with the best dev accuracy, scored on the test set like that candidate.
    let split: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("seed-0/dev-split.json")).unwrap())
            .unwrap();
    let dev = split["families"].as_array().unwrap().len();
    assert!((20..=34).contains(&dev), "15% of 180 rows: {dev}");
    assert_eq!(choice["dev_rows"], dev);
    let log: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(semi.join("student/train_log.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(log["labelled"], 360 - 2 * dev, "{log}");
    assert_eq!(log["soft_labelled"], 480 - 2 * dev, "{log}");
    let candidates = choice["candidates"].as_array().unwrap();
    let names: Vec<&str> = candidates
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "distill-mixed",
            "distill-wordnet",
            "distill-replace",
            "gold",
            "augmented",
            "self-distill gen 1",
            "self-distill gen 2",
            "ensemble",
            "distill",
        ]
    );
    // `full` is the first candidate within one standard error of the best dev accuracy.
    let accuracy: Vec<f64> = candidates
        .iter()
        .map(|c| c["dev_accuracy"].as_f64().unwrap())
        .collect();
    let best = accuracy.iter().copied().fold(0.0, f64::max);
    let se = (best * (1.0 - best) / dev as f64).sqrt();
    let first = accuracy
        .iter()
        .position(|&a| a >= best - se - 1e-12)
        .unwrap();
    assert_eq!(choice["full"], names[first]);
    let test_of = |setting: &str| {
        results
            .iter()
            .find(|r| r["setting"] == setting && r["seed"] == 0)
            .unwrap()["accuracy"]
            .as_f64()
            .unwrap()
    };
    let full_as = match choice["full"].as_str().unwrap() {
        "self-distill gen 2" => "self-distill",
        "self-distill gen 1" => "self-distill gen 1",
        other => other,
    };
    if full_as != "self-distill gen 1" {
        assert_eq!(test_of("full"), test_of(full_as));
    }
    assert!(md.contains("## What the dev split chose"), "{md}");
    // Rerunning reuses every step and gives the same table.
    assert_eq!(run(args("2")), table);
    // Other settings in the same folder are refused.
    let mut other = args("3");
    other.retain(|a| a != "--quiet");
    let err = fails(&other.iter().map(String::as_str).collect::<Vec<_>>(), 1);
    assert!(err.contains("other settings"), "{err}");
}

/// No choice reads the test labels: the same experiment scored on the test rows and on the same
/// rows in reverse order with every label flipped chooses the same dev split, epochs and `full`
/// student, though every test metric differs. Test rows copied into the training file are
/// never held out as dev rows (the one thing the split reads of the test set is its texts).
#[test]
fn full_reads_its_choices_from_the_dev_split_only() {
    if !available(Dep::WordNet) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let rows = fixture_tsv();
    // Training rows: the first 180 and, leaked, 30 of the test rows.
    let train_rows: Vec<_> = rows[..180].iter().chain(&rows[180..210]).collect();
    let test_rows: Vec<_> = rows[180..].iter().collect();
    let perturbed: Vec<_> = rows[180..].iter().rev().collect();
    let train = tmp.path().join("train.parquet");
    let (test, other) = (
        tmp.path().join("test.parquet"),
        tmp.path().join("other.parquet"),
    );
    write_parquet(&train, fixture_columns(&train_rows, false), 1000);
    write_parquet(&test, fixture_columns(&test_rows, false), 1000);
    write_parquet(&other, fixture_columns(&perturbed, true), 1000);
    let run = |test: &Path, out: &Path| {
        let (train, test, out) = (
            train.display().to_string(),
            test.display().to_string(),
            out.display().to_string(),
        );
        ok(&[
            "experiment",
            "--train",
            &train,
            "--test",
            &test,
            "--out",
            &out,
            "--seeds",
            "1",
            "--copies",
            "1",
            "--generations",
            "2",
            "--epochs",
            "2",
            "--teacher",
            "none",
            "--dev-fraction",
            "0.3",
            "--quiet",
            "--set",
            "vocab_size=1000",
            "--set",
            "embed_dim=16",
        ]);
        let read = |f: &str| std::fs::read_to_string(Path::new(&out).join(f)).unwrap();
        (
            read("choices.json"),
            read("results.json"),
            read("seed-0/dev-split.json"),
        )
    };
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let (choices_a, results_a, split_a) = run(&test, &a);
    let (choices_b, results_b, split_b) = run(&other, &b);
    assert_eq!(choices_a, choices_b, "a choice changed with the test set");
    assert_eq!(split_a, split_b);
    assert_ne!(results_a, results_b, "the test metrics should differ");
    let split: serde_json::Value = serde_json::from_str(&split_a).unwrap();
    let held: Vec<&str> = split["families"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert!(held.len() >= 40, "30% of 210 rows: {}", held.len());
    for r in &rows[180..210] {
        assert!(
            !held.contains(&r.0.as_str()),
            "test row {} is a dev row",
            r.0
        );
    }
}

/// The all-MiniLM-L6-v2 folder from `make assets`, or `None` (the test then skips).
fn minilm() -> Option<std::path::PathBuf> {
    available(Dep::MiniLm)
        .then(retort::assets::minilm_dir)
        .flatten()
}

#[test]
fn minilm_starts_a_bert_student_and_a_cnn_embedding() {
    let Some(m) = minilm() else { return };
    let tmp = tempfile::tempdir().unwrap();
    // 48 rows keep a 22M-parameter model quick on CPU.
    let rows = fixture_tsv();
    let part: Vec<_> = rows.iter().take(48).collect();
    let data = tmp.path().join("small.parquet");
    write_parquet(&data, fixture_columns(&part, false), 1000);
    let data = data.display().to_string();
    let init = format!("init={}", m.display());
    let log = train(
        &data,
        &tmp.path().join("bert"),
        &["student=bert", &init, "epochs=1", "batch_size=16"],
    );
    assert_eq!(log["rows"], 48);
    let folder = tmp.path().join("bert/final");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(folder.join("config.json")).unwrap())
            .unwrap();
    assert_eq!(config["hidden_size"], 384);
    assert_eq!(config["num_hidden_layers"], 6);
    assert_eq!(config["architectures"][0], "BertForSequenceClassification");
    // The checkpoint reloads to the same logits, and `eval` reads it like any model folder.
    let a = retort::models::folder::Model::load(&folder, &candle_core::Device::Cpu).unwrap();
    let b = retort::models::folder::Model::load(&folder, &candle_core::Device::Cpu).unwrap();
    let texts = ["A wonderful, funny film.", "It broke after a day."];
    assert_eq!(a.logits(&texts).unwrap(), b.logits(&texts).unwrap());
    let metrics = ok(&["eval", folder.to_str().unwrap(), "--data", &data]);
    assert!(metrics.contains("\"accuracy\""), "{metrics}");
    // A CNN student takes MiniLM's tokenizer and input embeddings.
    train(&data, &tmp.path().join("cnn"), &[&init, "epochs=1"]);
    let cnn: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(tmp.path().join("cnn/final/config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(cnn["embed_dim"], 384);
    assert_eq!(cnn["vocab_size"], 30522);
}
