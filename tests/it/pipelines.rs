//! Every pipeline file runs on the fixture corpus, and every stage's rows add up.

use crate::common::*;

#[test]
fn every_pipeline_file_runs_on_fixtures() {
    if !available(Dep::WordNet) {
        return;
    }
    let mut ran = 0;
    for entry in std::fs::read_dir(root().join("pipelines")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        if !assets_available(&path) {
            continue;
        }
        let out = tempfile::tempdir().unwrap();
        let out_dir = out.path().join("out");
        let text = std::fs::read_to_string(&path).unwrap();
        let mut input = fixture();
        let mut recipe_vars = Vec::new();
        if text.contains("${new_inputs}") {
            // The recommended recipe reads a dev split and a transfer set made beforehand.
            let split = out.path().join("split");
            let new_inputs = out.path().join("new-inputs.parquet");
            ok(&["split", "--data", &input, "--out", split.to_str().unwrap()]);
            input = split.join("train.parquet").display().to_string();
            ok(&[
                "transfer-set",
                "--train",
                &input,
                "--wordnet-sentences",
                "50",
                "--replacement-copies",
                "1",
                "--out",
                new_inputs.to_str().unwrap(),
            ]);
            recipe_vars.extend([
                "--var".to_string(),
                format!("dev={}", split.join("dev.parquet").display()),
                "--var".into(),
                format!("new_inputs={}", new_inputs.display()),
            ]);
        }
        let mut args = vec![
            "run".to_string(),
            path.display().to_string(),
            "--var".into(),
            format!("input={input}"),
            "--var".into(),
            format!("output={}", out_dir.display()),
            "--quiet".into(),
        ];
        args.extend(recipe_vars);
        if text.contains("${teacher}") {
            // A pipeline with a teacher gets one trained by `train-gold.toml`.
            let gen0 = out.path().join("gen-0");
            ok(&[
                "run",
                root().join("pipelines/train-gold.toml").to_str().unwrap(),
                "--var",
                &format!("input={}", fixture()),
                "--var",
                &format!("output={}", gen0.display()),
                "--var",
                "epochs=1",
                "--quiet",
            ]);
            args.extend(["--var".into(), format!("teacher={}/final", gen0.display())]);
        }
        if text.contains("${epochs}") {
            args.extend(["--var".into(), "epochs=1".into()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ok(&args);
        // A `train` pipeline writes a model, and the rows it trained on under `rows/`.
        let out_dir = if out_dir.join("final").exists() {
            assert!(out_dir.join("final/model.safetensors").exists());
            out_dir.join("rows")
        } else {
            out_dir
        };
        let m = manifest(&out_dir);
        assert!(m["rows"].as_u64().unwrap() > 240, "{}: {m}", path.display());
        for (stage, t) in m["stages"].as_object().unwrap() {
            let n = |k: &str| t[k].as_u64().unwrap();
            assert_eq!(
                n("rows_in"),
                n("rows_changed") + n("rows_unchanged") + n("rows_rejected"),
                "{}: stage {stage} does not add up: {t}",
                path.display()
            );
        }
        ran += 1;
    }
    assert!(ran >= 2);
}

#[test]
fn eda_pipeline_reproduces_the_recipe() {
    if !available(Dep::WordNet) {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("eda");
    ok(&[
        "run",
        "pipelines/eda.toml",
        "--var",
        &format!("output={}", dir.display()),
        "--var",
        "copies=8",
        "--var",
        "alpha=0.05",
        "--quiet",
    ]);
    let rows = read_rows(&dir);
    let originals: Vec<_> = rows.iter().filter(|r| r.op == "orig").collect();
    assert_eq!(originals.len(), 240);
    let copies: Vec<_> = rows.iter().filter(|r| r.op != "orig").collect();
    // 8 copies per row, spread evenly over the four techniques; a copy equal to an earlier
    // one of its row is dropped and counted.
    let t = &manifest(&dir)["stages"]["eda"];
    let dropped =
        t["copies_duplicate"].as_u64().unwrap_or(0) + t["copies_skipped"].as_u64().unwrap();
    assert_eq!(copies.len() as u64 + dropped, 240 * 8, "{t}");
    assert!(copies.len() > 240 * 7, "few duplicates at alpha 0.05: {t}");
    let distinct: std::collections::BTreeSet<_> =
        copies.iter().map(|c| (&c.parent_id, &c.text)).collect();
    assert_eq!(
        distinct.len(),
        copies.len(),
        "no row has two identical copies"
    );
    let mut by_technique = std::collections::BTreeMap::new();
    for c in &copies {
        let p: serde_json::Value = serde_json::from_str(&c.op_params).unwrap();
        *by_technique
            .entry(p["technique"].as_str().unwrap().to_string())
            .or_insert(0) += 1;
        assert!(c.op == "synonym" || c.op == "perturb");
        let parent = originals
            .iter()
            .find(|o| Some(&o.id) == c.parent_id.as_ref())
            .unwrap();
        assert_ne!(c.text, parent.text, "copy {} is unchanged", c.id);
        assert_eq!(c.label, parent.label, "copy {} lost its label", c.id);
        assert!(c.id.starts_with(&format!("{}/eda/", parent.id)));
    }
    assert_eq!(by_technique.len(), 4, "{by_technique:?}");
    for n in by_technique.values() {
        assert!(*n > 240, "{by_technique:?}");
    }
    // Text is not destroyed: capitals and punctuation survive in copies.
    assert!(copies.iter().filter(|c| c.text.ends_with('.')).count() > copies.len() / 2);
    assert!(
        copies
            .iter()
            .filter(|c| c.text.chars().next().unwrap().is_uppercase())
            .count()
            > copies.len() / 2
    );
}

/// Whether this machine has what a pipeline file's stage kinds need (Apertium, SmolLM2 unless
/// the stage names its own `model`); a missing one is reported as a skip of that file.
fn assets_available(path: &std::path::Path) -> bool {
    let doc: toml::Table = std::fs::read_to_string(path).unwrap().parse().unwrap();
    let Some(stages) = doc.get("stages").and_then(|s| s.as_table()) else {
        return true;
    };
    let part = format!("`{}`", path.display());
    stages.values().all(|stage| {
        let kind = stage.get("kind").and_then(|k| k.as_str()).unwrap_or("");
        let Some(k) = retort::registry::find(kind) else {
            return true;
        };
        let mut needs = k.needs();
        needs.lm_asset &= stage.get("model").is_none();
        needs_available(needs, &part)
    })
}
