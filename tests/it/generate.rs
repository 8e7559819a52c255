//! The `generate` stage with the real SmolLM2 (skipped when `make assets` has not run).

use crate::common::*;

/// Whether the SmolLM2 GGUF is in the asset folder.
pub fn smollm2() -> bool {
    let ok = retort::assets::smollm2_gguf().is_some();
    if !ok {
        eprintln!("skipped: SmolLM2 is not in the asset folder (run `make assets`)");
    }
    ok
}

fn pipeline(dir: &std::path::Path, extra: &str) -> std::path::PathBuf {
    let p = dir.join("generate.toml");
    std::fs::write(
        &p,
        format!(
            r#"[pipeline]
name = "gen"
seed = 5

[stages.corpus]
kind = "parquet_source"
path = "${{input}}"

[stages.pseudo]
kind = "generate"
inputs = ["corpus"]
prompts = 3
shots = 2
task = "product review"
max_new_tokens = 16
{extra}

[stages.out]
kind = "parquet_sink"
inputs = ["pseudo"]
path = "${{output}}"
"#
        ),
    )
    .unwrap();
    p
}

#[test]
fn generate_is_deterministic_across_threads_and_batch_sizes() {
    if !smollm2() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let p = pipeline(tmp.path(), "");
    let run = |name: &str, threads: &str, batch: &str| {
        let out = tmp.path().join(name);
        ok(&[
            "run",
            p.to_str().unwrap(),
            "--quiet",
            "--threads",
            threads,
            "--batch-size",
            batch,
            "--var",
            &format!("input={}", fixture()),
            "--var",
            &format!("output={}", out.display()),
        ]);
        out
    };
    let a = run("a", "1", "1024");
    let b = run("b", "2", "37");
    let ra = read_rows(&a);
    assert_eq!(ra, read_rows(&b), "same seed, same rows");
    // Every input row passes through; the new rows are labelled as their prompt asked.
    let orig = ra.iter().filter(|r| r.op == "orig").count();
    assert_eq!(orig, 240);
    let pseudo: Vec<_> = ra.iter().filter(|r| r.op == "pseudo").collect();
    let m = manifest(&a);
    let dropped: u64 = m["stages"]["pseudo"]["generated_dropped"]
        .as_object()
        .map(|d| d.values().map(|v| v.as_u64().unwrap()).sum())
        .unwrap_or(0);
    assert_eq!(pseudo.len() as u64 + dropped, 3, "{m}");
    for r in &pseudo {
        assert!(r.parent_id.is_none());
        assert!(!r.text.is_empty() && !r.text.contains("<|"));
        let params: serde_json::Value = serde_json::from_str(&r.op_params).unwrap();
        let prompt = params["prompt"].as_u64().unwrap();
        assert_eq!(r.id, format!("pseudo/{prompt}"));
        // Prompt j asks for class j mod 2 of (negative, positive).
        assert_eq!(r.label, Some((prompt % 2) as i64));
        assert_eq!(
            params["intended_label"],
            ["negative", "positive"][(prompt % 2) as usize]
        );
        assert_eq!(params["shots"].as_array().unwrap().len(), 2);
    }
}

#[test]
fn generate_teacher_drops_what_it_does_not_confirm() {
    if !smollm2() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let teacher = tmp.path().join("teacher");
    ok(&[
        "train",
        "--data",
        &fixture(),
        "--out",
        teacher.to_str().unwrap(),
        "--quiet",
        "--set",
        "epochs=1",
        "--set",
        "vocab_size=1000",
        "--set",
        "embed_dim=16",
    ]);
    // No classifier is certain: a threshold of 1 drops every new text as unconfirmed.
    let p = pipeline(
        tmp.path(),
        &format!(
            "teacher = \"{}\"\nmin_confidence = 1.0",
            teacher.join("final").display()
        ),
    );
    let out = tmp.path().join("out");
    ok(&[
        "run",
        p.to_str().unwrap(),
        "--quiet",
        "--var",
        &format!("input={}", fixture()),
        "--var",
        &format!("output={}", out.display()),
    ]);
    let rows = read_rows(&out);
    assert_eq!(rows.len(), 240, "only the input rows remain");
    let m = manifest(&out);
    let dropped = &m["stages"]["pseudo"]["generated_dropped"];
    let total: u64 = dropped
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(total, 3, "{m}");
    assert!(dropped["low_confidence"].as_u64().unwrap() >= 1, "{m}");
}
