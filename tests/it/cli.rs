//! The command line: listing, describing, graphs, single stages, variables, inspection.

use crate::common::*;

#[test]
fn stages_lists_every_kind() {
    // One line per registered kind, in the registry's order: name, role, summary.
    let out = ok(&["stages"]);
    let listed: Vec<&str> = out.lines().take_while(|l| !l.is_empty()).collect();
    let kinds = retort::registry::STAGE_KINDS;
    assert_eq!(listed.len(), kinds.len(), "{out}");
    for (line, kind) in listed.iter().zip(kinds) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let role = kind.role().to_string();
        assert_eq!(words[..2], [kind.name(), role.as_str()], "{out}");
        assert!(line.ends_with(kind.summary()), "{line}");
    }
}

#[test]
fn describe_unknown_kind_suggests_the_nearest() {
    let err = fails(&["describe", "synonim"], 1);
    insta::assert_snapshot!("describe_unknown", err);
}

#[test]
fn describe_shows_docs_and_example() {
    let out = ok(&["describe", "synonym"]);
    assert!(out.contains("copies : integer (default 1)"), "{out}");
    assert!(out.contains("[stages.synonym]"), "{out}");
}

#[test]
fn graph_prints_dot() {
    if !available(Dep::WordNet) {
        return;
    }
    let dot = ok(&["graph", "pipelines/augment.toml"]);
    assert!(dot.starts_with("digraph"));
    assert!(dot.contains("\"corpus\" -> \"syn\""), "{dot}");
    assert!(dot.contains("\"shuf\" -> \"out\""), "{dot}");
}

#[test]
fn stages_chain_through_folders() {
    if !available(Dep::WordNet) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("syn");
    let b = tmp.path().join("shuf");
    ok(&[
        "stage",
        "synonym",
        "--input",
        &fixture(),
        "--output",
        a.to_str().unwrap(),
        "--set",
        "keep_original=true",
        "--set",
        "n=1",
        "--quiet",
    ]);
    ok(&[
        "stage",
        "shuffle",
        "--input",
        a.to_str().unwrap(),
        "--output",
        b.to_str().unwrap(),
        "--set",
        "keep_original=true",
        "--quiet",
    ]);
    let rows = read_rows(&b);
    // Provenance survives the chain: shuffled copies of synonym rows point at the original.
    let chained: Vec<_> = rows
        .iter()
        .filter(|r| r.op == "shuffle" && r.id.contains("/synonym/"))
        .collect();
    assert!(!chained.is_empty());
    for r in chained {
        let parent = r.parent_id.as_deref().unwrap();
        assert!(!parent.contains('/'), "{r:?}");
        assert!(r.id.starts_with(parent));
    }
    assert_eq!(rows.iter().filter(|r| r.op == "synonym").count(), 240);
}

#[test]
fn stage_rejects_bad_keys_like_a_pipeline() {
    let tmp = tempfile::tempdir().unwrap();
    let err = fails(
        &[
            "stage",
            "perturb",
            "--input",
            &fixture(),
            "--output",
            tmp.path().to_str().unwrap(),
            "--set",
            "mode=twist",
        ],
        1,
    );
    assert!(err.contains("mode"), "{err}");
    assert!(err.contains("twist"), "{err}");
}

#[test]
fn unknown_variable_and_bad_flags_are_user_errors() {
    let err = fails(&["run", "pipelines/eda.toml", "--var", "inptu=x"], 1);
    assert!(err.contains("no variable `inptu`"), "{err}");
    let err = fails(&["run", "pipelines/eda.toml", "--shard", "0/2"], 1);
    assert!(err.contains("numbered 1 to N"), "{err}");
    let err = fails(&["run", "pipelines/eda.toml", "--device", "cuda:0"], 1);
    assert!(err.contains("no CUDA support"), "{err}");
}

/// Every command that runs models takes `--device`; a CPU build refuses CUDA before it
/// reads or writes anything, and names the way to a CUDA build.
#[cfg(not(feature = "cuda"))]
#[test]
fn every_model_command_refuses_cuda_on_a_cpu_build() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("never");
    let o = out.to_str().unwrap();
    let data = fixture();
    let stage = |kind: &str| -> Vec<String> {
        ["stage", kind, "--input", &data, "--output", o]
            .iter()
            .map(|s| s.to_string())
            .collect()
    };
    let commands: Vec<Vec<String>> = vec![
        stage("teacher"),
        stage("generate"),
        stage("lm_teacher"),
        stage("backtranslate"),
        ["train", "--data", &data, "--out", o]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        ["selfdistill", "--data", &data, "--out", o]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        ["experiment", "--train", &data, "--test", &data, "--out", o]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        ["eval", o, "--data", &data]
            .iter()
            .map(|s| s.to_string())
            .collect(),
    ];
    for mut args in commands {
        args.extend(["--device".to_string(), "cuda:1".to_string()]);
        let refs: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
        let err = fails(&refs, 1);
        assert!(
            err.contains("device `cuda:1` asked for, but this build of retort has no CUDA support"),
            "{args:?}: {err}"
        );
        assert!(err.contains("make build-cuda"), "{args:?}: {err}");
        assert!(!out.exists(), "{args:?} wrote its output");
    }
    // Misspelt devices and precisions are refused with the choices.
    let err = fails(
        &["train", "--data", &data, "--out", o, "--device", "gpu0"],
        1,
    );
    assert!(err.contains("unknown device `gpu0`"), "{err}");
    assert!(err.contains("cuda:N"), "{err}");
    let err = fails(
        &["train", "--data", &data, "--out", o, "--precision", "int8"],
        1,
    );
    assert!(err.contains("unknown precision `int8`"), "{err}");
    assert!(err.contains("bf16"), "{err}");
}

#[test]
fn json_summary_and_inspect() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("o");
    let json = ok(&[
        "stage",
        "shuffle",
        "--input",
        &fixture(),
        "--output",
        out.to_str().unwrap(),
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["stages"][0]["tally"]["rows_in"], 240);
    assert_eq!(
        v["sinks"][0]["rows"],
        v["stages"][1]["tally"]["rows_out"]["shuffle"]
    );
    let text = ok(&["inspect", out.to_str().unwrap()]);
    assert!(text.contains("(complete)"), "{text}");
    assert!(text.contains("1 (positive)"), "{text}");
    let j: serde_json::Value =
        serde_json::from_str(&ok(&["inspect", out.to_str().unwrap(), "--json"])).unwrap();
    assert!(j["bytes_per_row"].as_f64().unwrap() > 0.0);
}

#[test]
fn export_prints_chosen_columns_as_json_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("o");
    let o = out.to_str().unwrap();
    ok(&[
        "stage",
        "shuffle",
        "--input",
        &fixture(),
        "--output",
        o,
        "--quiet",
    ]);
    let text = ok(&["export", o, "--columns", "text,id", "--limit", "3"]);
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{text}");
    // Only the columns asked for, in the order asked.
    for (raw, l) in text.lines().zip(&lines) {
        assert!(raw.starts_with("{\"text\":"), "{raw}");
        assert_eq!(l.as_object().unwrap().len(), 2, "{raw}");
    }
    assert_eq!(lines[0]["id"], "r0001/shuffle/0");
    // Every row, every column, when nothing is chosen.
    let all = ok(&["export", o]);
    assert_eq!(all.lines().count(), read_rows(&out).len());
    assert!(all.lines().next().unwrap().contains("\"op\":\"shuffle\""));
    let err = fails(&["export", o, "--columns", "txt"], 1);
    assert!(err.contains("has no column `txt`"), "{err}");
    assert!(err.contains("its columns: id, parent_id, op"), "{err}");
}

#[test]
fn readme_stage_table_matches_stages_markdown() {
    const BEGIN: &str = "<!-- stage-kinds:begin (generated by retort stages --markdown) -->\n";
    const END: &str = "<!-- stage-kinds:end -->";
    let readme = std::fs::read_to_string(root().join("README.md")).expect("read README.md");
    let start = readme
        .find(BEGIN)
        .unwrap_or_else(|| panic!("README.md lacks the line `{}`", BEGIN.trim_end()))
        + BEGIN.len();
    let end = readme[start..]
        .find(END)
        .unwrap_or_else(|| panic!("README.md lacks the line `{END}`"))
        + start;
    let generated = ok(&["stages", "--markdown"]);
    assert!(
        readme[start..end] == generated,
        "README.md's stage table differs from `retort stages --markdown`: run \
         `retort stages --markdown` and paste its output between the stage-kinds lines.\n\
         README.md has:\n{}\nretort stages --markdown prints:\n{generated}",
        &readme[start..end]
    );
}

#[test]
fn describe_perturb_lists_the_modes() {
    let out = ok(&["describe", "perturb"]);
    let mode = out
        .lines()
        .find(|l| l.trim_start().starts_with("mode :"))
        .unwrap_or_else(|| panic!("no `mode` key in:\n{out}"));
    for value in ["\"insert\"", "\"delete\"", "\"swap\""] {
        assert!(mode.contains(value), "`mode` lacks {value}: {mode}");
    }
}
