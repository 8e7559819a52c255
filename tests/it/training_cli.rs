//! `retort train` and `retort eval` on the command line: what they refuse to overwrite, which
//! `--precision` they honour or refuse, and `--help-keys` on its own.

use std::path::Path;

use crate::common::*;

/// `retort train` on `data` into `out` for one quick epoch, then `extra`.
fn train_args(data: &str, out: &Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "train",
        "--data",
        data,
        "--out",
        out.to_str().unwrap(),
        "--quiet",
        "--set",
        "epochs=1",
        "--set",
        "vocab_size=500",
        "--set",
        "embed_dim=16",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn fails_owned(args: &[String], code: i32) -> String {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    fails(&args, code)
}

#[test]
fn train_help_keys_needs_neither_data_nor_out() {
    let keys = ok(&["train", "--help-keys"]);
    assert!(keys.contains("epochs"), "{keys}");
    assert!(keys.contains("temperature"), "{keys}");
    // Without it, both are still required.
    let err = fails(&["train", "--out", "x"], 1);
    assert!(err.contains("--data"), "{err}");
    let err = fails(&["train", "--data", "x"], 1);
    assert!(err.contains("--out"), "{err}");
}

#[test]
fn train_replaces_only_checkpoints_retort_wrote_unless_forced() {
    let tmp = tempfile::tempdir().unwrap();
    let data = small_fixture(&tmp.path().join("small.parquet"), 48);
    let out = tmp.path().join("out");
    // Someone's folder where `final` goes: refused before any training.
    std::fs::create_dir_all(out.join("final")).unwrap();
    std::fs::write(out.join("final/notes.txt"), "mine").unwrap();
    let args = train_args(&data, &out, &[]);
    let err = fails_owned(&args, 1);
    assert!(
        err.contains(&format!(
            "`{}` exists and retort did not write it (it has no `retort.json`)",
            out.join("final").display()
        )),
        "{err}"
    );
    assert!(err.contains("--force"), "{err}");
    assert!(!out.join("epoch-01").exists(), "refused after training");
    assert_eq!(
        std::fs::read_to_string(out.join("final/notes.txt")).unwrap(),
        "mine"
    );
    // A file where a checkpoint goes: refused too.
    std::fs::write(out.join("epoch-01"), "a file").unwrap();
    let err = fails_owned(&args, 1);
    assert!(err.contains("it is not a folder"), "{err}");

    // --force replaces them.
    let mut forced = args.clone();
    forced.push("--force".into());
    ok_owned(&forced);
    assert!(out.join("final/model.safetensors").is_file());
    assert!(!out.join("final/notes.txt").exists());
    assert!(out.join("epoch-01/model.safetensors").is_file());
    // Checkpoints retort wrote are replaced without it.
    ok_owned(&args);
}

#[test]
fn train_refuses_a_precision_it_does_not_train_in() {
    let tmp = tempfile::tempdir().unwrap();
    let data = small_fixture(&tmp.path().join("small.parquet"), 48);
    let out = tmp.path().join("out");
    for (precision, ok_) in [
        ("f16", false),
        ("bf16", false),
        ("f32", true),
        ("auto", true),
    ] {
        let args = train_args(&data, &out, &["--precision", precision]);
        if ok_ {
            ok_owned(&args);
        } else {
            let err = fails_owned(&args, 1);
            assert!(
                err.contains(&format!(
                    "--precision {precision} is not supported by `train` (it trains in f32)"
                )),
                "{err}"
            );
            assert!(!out.exists(), "{precision}: refused after writing");
        }
    }
}

/// A CNN runs in f32 only: an explicit half precision is refused by `eval`, the `teacher`
/// stage and `selfdistill` (before any training); f32 and auto run.
#[test]
fn a_cnn_model_refuses_half_precision_everywhere() {
    let tmp = tempfile::tempdir().unwrap();
    let teacher = train_tiny_teacher(&tmp.path().join("teacher"));
    let refused = "--precision bf16 is not supported by a `cnn` model (it runs in f32)";
    let test = fixture();
    let err = fails(
        &["eval", &teacher, "--data", &test, "--precision", "bf16"],
        1,
    );
    assert!(err.contains(refused), "{err}");
    for precision in ["f32", "auto"] {
        let metrics = ok(&["eval", &teacher, "--data", &test, "--precision", precision]);
        assert!(metrics.contains("\"accuracy\""), "{metrics}");
    }
    let out = tmp.path().join("soft");
    let model = format!("model=\"{teacher}\"");
    let mut args = stage_args("teacher", &test, &out, &[&model]);
    args.extend(["--precision".into(), "bf16".into()]);
    let err = fails_owned(&args, 1);
    assert!(err.contains(refused), "{err}");
    assert!(!out.join("_SUCCESS.json").exists());
    let sd = tmp.path().join("sd");
    let err = fails(
        &[
            "selfdistill",
            "--data",
            &test,
            "--out",
            sd.to_str().unwrap(),
            "--precision",
            "f16",
            "--quiet",
        ],
        1,
    );
    assert!(
        err.contains("--precision f16 is not supported by a `cnn` student (it runs in f32)"),
        "{err}"
    );
    assert!(!sd.join("gen-0").exists(), "refused after training");
}

/// A BERT model runs `eval` in the asked precision: bf16 gives other (close) numbers than f32.
#[test]
fn eval_honours_the_precision_of_a_bert_model() {
    let tmp = tempfile::tempdir().unwrap();
    let data = small_fixture(&tmp.path().join("small.parquet"), 48);
    let out = tmp.path().join("bert");
    ok_owned(&train_args(&data, &out, &["--set", "student=bert"]));
    let model = out.join("final");
    let nll = |precision: &str| -> f64 {
        let text = ok(&[
            "eval",
            model.to_str().unwrap(),
            "--data",
            &data,
            "--precision",
            precision,
        ]);
        let m: serde_json::Value = serde_json::from_str(&text).unwrap();
        m["nll"].as_f64().unwrap()
    };
    let (f32_, bf16) = (nll("f32"), nll("bf16"));
    assert_ne!(f32_, bf16, "bf16 was not used");
    assert!((f32_ - bf16).abs() < 0.05, "f32 {f32_} vs bf16 {bf16}");
    assert_eq!(nll("auto"), f32_, "auto is f32 on the CPU");
}

/// Marian runs in f32 only: an explicit half precision is refused before any translation.
#[test]
fn marian_back_translation_refuses_half_precision() {
    use retort::translate::tiny::{write_tiny_marian, TinyMarian};
    let tmp = tempfile::tempdir().unwrap();
    let (f, b) = (tmp.path().join("en-xx"), tmp.path().join("xx-en"));
    for (path, seed) in [(&f, 1), (&b, 2)] {
        let t = TinyMarian {
            seed,
            ..TinyMarian::default()
        };
        write_tiny_marian(path, &t).unwrap();
    }
    let out = tmp.path().join("bt");
    let (forward, backward) = (
        format!("forward_model=\"{}\"", f.display()),
        format!("backward_model=\"{}\"", b.display()),
    );
    let mut args = stage_args(
        "backtranslate",
        &fixture(),
        &out,
        &["engine=\"marian\"", &forward, &backward, "pivot=\"xx\""],
    );
    args.extend(["--precision".into(), "bf16".into()]);
    let err = fails_owned(&args, 1);
    assert!(
        err.contains(
            "--precision bf16 is not supported by Marian back-translation (it runs in f32)"
        ),
        "{err}"
    );
}
