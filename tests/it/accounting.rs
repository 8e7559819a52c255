//! Every input row ends up in the output or in the rejects with a reason: rows an augmenter
//! cannot change, duplicate copies, duplicate ids, huge `copies`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use arrow::array::{ArrayRef, StringArray};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::common::*;

/// (id, reason) of every reject in an output folder.
fn rejects(dir: &Path) -> Vec<(String, String)> {
    let Ok(entries) = std::fs::read_dir(dir.join("_rejects")) else {
        return vec![];
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let reader =
            ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(e.path()).unwrap())
                .unwrap()
                .build()
                .unwrap();
        for b in reader {
            let b = b.unwrap();
            let col = |name: &str| {
                b.column_by_name(name)
                    .unwrap()
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .unwrap()
                    .clone()
            };
            let (id, reason) = (col("id"), col("reason"));
            for i in 0..b.num_rows() {
                out.push((id.value(i).to_string(), reason.value(i).to_string()));
            }
        }
    }
    out.sort();
    out
}

/// Input ids that reach the output, as themselves or as the parent of a copy.
fn ids_in_output(dir: &Path) -> BTreeSet<String> {
    read_rows(dir)
        .into_iter()
        .map(|r| r.parent_id.unwrap_or(r.id))
        .collect()
}

fn write_texts(path: &Path, rows: &[(&str, &str)]) -> String {
    let ids: ArrayRef = texts(rows.iter().map(|r| Some(r.0)));
    write_parquet(
        path,
        vec![("id", ids), ("text", texts(rows.iter().map(|r| Some(r.1))))],
        100,
    );
    path.display().to_string()
}

/// Runs `retort stage KIND` and returns stderr.
fn run_stage(kind: &str, input: &str, out: &Path, sets: &[&str]) -> String {
    let mut args = stage_args(kind, input, out, sets);
    args.retain(|a| a != "--quiet");
    let o = retort(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "retort stage {kind} failed: {err}");
    err
}

#[test]
fn rows_an_augmenter_cannot_change_go_to_the_rejects_with_a_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let input = write_texts(
        &tmp.path().join("in.parquet"),
        &[
            ("one", "Only one sentence here."),
            ("two", "First sentence. Second sentence! Third one?"),
            ("three", "只有一句话"),
            ("four", "Same. Same. Same."),
        ],
    );
    let out = tmp.path().join("shuffled");
    let err = run_stage("shuffle", &input, &out, &["copies=2"]);
    assert_eq!(
        rejects(&out),
        vec![
            ("four".to_string(), "identical_sentences".to_string()),
            ("one".to_string(), "single_sentence".to_string()),
            ("three".to_string(), "single_sentence".to_string()),
        ]
    );
    assert_eq!(ids_in_output(&out), BTreeSet::from(["two".to_string()]));
    let t = &manifest(&out)["stages"]["shuffle"];
    assert_eq!(t["rows_in"], 4, "{t}");
    assert_eq!(t["rows_rejected"], 3, "{t}");
    assert_eq!(t["rows_changed"], 1, "{t}");
    assert!(
        err.contains("warning: stage `shuffle` kept 1 of its 4 input rows and rejected 3"),
        "a stage that loses most rows says so: {err}"
    );
    // Even with `--quiet`, which drops the summary.
    let quiet = tmp.path().join("quiet");
    let o = retort(
        &stage_args("shuffle", &input, &quiet, &["copies=2"])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("warning: stage `shuffle` kept 1 of its 4 input rows and rejected 3"),
        "--quiet must not hide the warning: {err}"
    );
    assert!(
        !err.contains("finished in"),
        "--quiet prints no summary: {err}"
    );

    // `unchanged = "keep"` writes them through instead: every input row reaches the output.
    let kept = tmp.path().join("kept");
    let err = run_stage("shuffle", &input, &kept, &["unchanged=keep"]);
    assert!(rejects(&kept).is_empty());
    let rows = read_rows(&kept);
    assert_eq!(rows.len(), 4, "{rows:?}");
    assert_eq!(rows.iter().filter(|r| r.op == "orig").count(), 3);
    assert!(!err.contains("warning"), "{err}");
}

#[test]
fn every_row_of_a_deletion_at_low_p_is_accounted_for() {
    let tmp = tempfile::tempdir().unwrap();
    let input = fixture();
    let out = tmp.path().join("deleted");
    run_stage("perturb", &input, &out, &["mode=delete", "p=0.05"]);
    let m = manifest(&out);
    let t = &m["stages"]["perturb"];
    let rows_in = t["rows_in"].as_u64().unwrap();
    let rejected = rejects(&out);
    assert!(!rejected.is_empty(), "short rows lose no word at p = 0.05");
    assert!(rejected
        .iter()
        .all(|(_, r)| r == "nothing_deleted" || r == "too_few_words"));
    let mut seen = ids_in_output(&out);
    let before = seen.len();
    seen.extend(rejected.iter().map(|(id, _)| id.clone()));
    assert_eq!(
        before + rejected.len(),
        seen.len(),
        "a row is both written and rejected"
    );
    let source_out = m["stages"]["input"]["rows_out"]["orig"].as_u64().unwrap();
    assert_eq!(
        seen.len() as u64,
        source_out,
        "every input row is written or rejected"
    );
    assert_eq!(rows_in, source_out);
}

#[test]
fn identical_copies_of_a_row_are_dropped_and_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let input = write_texts(
        &tmp.path().join("in.parquet"),
        &[("a", "The film was long. The cast was great.")],
    );
    let out = tmp.path().join("out");
    run_stage("shuffle", &input, &out, &["copies=5"]);
    let rows = read_rows(&out);
    assert_eq!(
        rows.len(),
        1,
        "two sentences have one other order: {rows:?}"
    );
    assert_eq!(rows[0].text, "The cast was great. The film was long.");
    let t = &manifest(&out)["stages"]["shuffle"];
    assert_eq!(t["copies_duplicate"], 4, "{t}");
}

#[test]
fn a_repeated_id_is_rejected_after_its_first_row_whatever_the_shard() {
    let tmp = tempfile::tempdir().unwrap();
    let rows: Vec<(String, String)> = (0..40)
        .map(|i| {
            let id = if i == 31 {
                "r3".to_string()
            } else {
                format!("r{i}")
            };
            (id, format!("Row number {i} is here. It has two sentences."))
        })
        .collect();
    let path = tmp.path().join("in.parquet");
    let ids: ArrayRef = texts(rows.iter().map(|r| Some(r.0.as_str())));
    let text: ArrayRef = texts(rows.iter().map(|r| Some(r.1.as_str())));
    // Row groups of 8 rows: the shards below see different row groups.
    write_parquet(&path, vec![("id", ids), ("text", text)], 8);
    let input = path.display().to_string();

    let whole = tmp.path().join("whole");
    let err = run_stage("shuffle", &input, &whole, &["keep_original=true"]);
    assert!(err.contains("1 id occurs more than once"), "{err}");
    let rej = rejects(&whole);
    assert_eq!(rej, vec![("r3".to_string(), "duplicate_id".to_string())]);
    let whole_rows = read_rows(&whole);
    let first = whole_rows.iter().find(|r| r.id == "r3").unwrap();
    assert!(
        first.text.starts_with("Row number 3 "),
        "the first row keeps the id"
    );

    let mut union = Vec::new();
    let mut union_rejects = Vec::new();
    for shard in ["1/2", "2/2"] {
        let out = tmp.path().join(format!("shard-{}", &shard[..1]));
        let mut args = stage_args("shuffle", &input, &out, &["keep_original=true"]);
        args.extend(["--shard".to_string(), shard.to_string()]);
        ok_owned(&args);
        union.extend(read_rows(&out));
        union_rejects.extend(rejects(&out));
    }
    union.sort();
    assert_eq!(
        union, whole_rows,
        "the shards together write what one run writes"
    );
    assert_eq!(union_rejects, rej);
}

#[test]
fn inputs_with_one_file_name_in_two_folders_get_distinct_ids() {
    let tmp = tempfile::tempdir().unwrap();
    for d in ["a", "b"] {
        std::fs::create_dir(tmp.path().join(d)).unwrap();
        let t: ArrayRef = texts([Some("First one. Second one."), Some("Third. Fourth.")]);
        write_parquet(
            &tmp.path().join(d).join("train.parquet"),
            vec![("text", t)],
            10,
        );
    }
    let glob = format!("{}/*/train.parquet", tmp.path().display());
    let elsewhere = tempfile::tempdir().unwrap();
    let out = elsewhere.path().join("out");
    run_stage("shuffle", &glob, &out, &["keep_original=true"]);
    let rows = read_rows(&out);
    let originals: BTreeSet<&str> = rows
        .iter()
        .filter(|r| r.op == "orig")
        .map(|r| r.id.as_str())
        .collect();
    assert_eq!(originals.len(), 4, "{originals:?}");
    assert!(rejects(&out).is_empty());
}

#[test]
fn a_thousand_copies_per_row_are_written_in_bounded_chunks_and_stay_deterministic() {
    let tmp = tempfile::tempdir().unwrap();
    let input = small_fixture(&tmp.path().join("in.parquet"), 40);
    let mut outputs = Vec::new();
    for (batch, threads) in [("3", "1"), ("64", "2")] {
        let out = tmp.path().join(format!("out-{batch}"));
        let mut args = stage_args("perturb", &input, &out, &["mode=swap", "copies=1000"]);
        args.extend(["--batch-size", batch, "--threads", threads].map(String::from));
        ok_owned(&args);
        outputs.push(read_rows(&out));
    }
    assert_eq!(outputs[0], outputs[1]);
    let ids: BTreeSet<&str> = outputs[0].iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids.len(), outputs[0].len(), "copy ids are unique");
    // Each row keeps its distinct swaps only.
    let mut per_parent: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for r in &outputs[0] {
        let p = r.parent_id.as_deref().unwrap();
        assert!(
            per_parent.entry(p).or_default().insert(r.text.as_str()),
            "duplicate copy of {p}"
        );
    }
    // Chunks of 16 rows (16,384 / 1,001): several per batch of 64.
    assert!(outputs[0].len() > 2_000, "{} rows", outputs[0].len());
}
