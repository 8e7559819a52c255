//! Finished runs are no-ops; killed runs resume to exactly the uninterrupted output.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{ArrayRef, Int64Array, StringArray};

use crate::common::*;

/// A corpus big enough that a run takes a moment: fixture sentences repeated with new ids.
fn big_corpus(path: &Path, rows: usize) {
    let tsv = fixture_tsv();
    let ids: ArrayRef = Arc::new(StringArray::from_iter_values(
        (0..rows).map(|i| format!("row{i:07}")),
    ));
    let text: ArrayRef = Arc::new(StringArray::from_iter_values(
        (0..rows).map(|i| tsv[i % tsv.len()].1.clone()),
    ));
    let label: ArrayRef = Arc::new(Int64Array::from_iter_values(
        (0..rows).map(|i| (i % 2) as i64),
    ));
    write_parquet(
        path,
        vec![("id", ids), ("text", text), ("label", label)],
        5_000,
    );
}

fn swap_args<'a>(input: &'a str, output: &'a str) -> Vec<&'a str> {
    vec![
        "stage",
        "perturb",
        "--input",
        input,
        "--output",
        output,
        "--set",
        "mode=swap",
        "--set",
        "copies=2",
        "--set",
        "keep_original=true",
        "--set",
        "sink.rows_per_file=12000",
        "--batch-size",
        "500",
        "--quiet",
    ]
}

#[test]
fn killed_runs_resume_without_duplicates_and_reruns_are_no_ops() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("big.parquet");
    big_corpus(&input, 60_000);
    let input = input.to_str().unwrap().to_string();

    let clean = tmp.path().join("clean");
    ok(&swap_args(&input, clean.to_str().unwrap()));
    let expected = read_rows(&clean);
    // Two copies and the original of each row, less the copies that repeat an earlier one.
    let t = &manifest(&clean)["stages"]["perturb"];
    let dropped =
        t["copies_duplicate"].as_u64().unwrap_or(0) + t["copies_skipped"].as_u64().unwrap();
    assert_eq!(expected.len() as u64, 180_000 - dropped, "{t}");
    assert!(expected.len() > 170_000, "{t}");

    // Kill at several moments, resuming each time, then finish.
    let out = tmp.path().join("killed");
    let out_s = out.to_str().unwrap().to_string();
    let mut killed_mid_run = 0;
    for delay_ms in [150u64, 400, 700, 1000, 1500] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_retort"))
            .args(swap_args(&input, &out_s))
            .current_dir(root())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            killed_mid_run += 1;
        }
        child.wait().unwrap();
        // Readers never see a partial file: every visible part is complete Parquet.
        if out.exists() {
            let _ = read_rows(&out);
        }
    }
    ok(&swap_args(&input, &out_s));
    assert_eq!(
        read_rows(&out),
        expected,
        "resumed output differs from an uninterrupted run"
    );
    let m = manifest(&out);
    assert_eq!(m["rows"], expected.len() as u64);
    assert_eq!(m["stages"]["input"]["rows_in"], 60_000, "{m}");
    assert_eq!(m["stages"]["perturb"]["rows_in"], 60_000, "{m}");
    eprintln!("killed mid-run {killed_mid_run} times");

    // A rerun of a finished run does nothing.
    let before = std::fs::metadata(out.join("_SUCCESS.json"))
        .unwrap()
        .modified()
        .unwrap();
    let o = retort(
        &swap_args(&input, &out_s)
            .into_iter()
            .filter(|a| *a != "--quiet")
            .collect::<Vec<_>>(),
    );
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("up to date"));
    let after = std::fs::metadata(out.join("_SUCCESS.json"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(before, after);
}

#[test]
fn another_configuration_is_refused_unless_forced() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("o");
    let o = out.to_str().unwrap();
    let f = fixture();
    ok(&["stage", "shuffle", "--input", &f, "--output", o, "--quiet"]);
    let err = fails(
        &[
            "stage", "shuffle", "--input", &f, "--output", o, "--seed", "5", "--quiet",
        ],
        1,
    );
    assert!(err.contains("another configuration"), "{err}");
    assert!(err.contains("--force"), "{err}");
    ok(&[
        "stage", "shuffle", "--input", &f, "--output", o, "--seed", "5", "--force", "--quiet",
    ]);
    assert_eq!(manifest(&out)["seed"], 5);
}

#[test]
fn a_folder_of_foreign_parquet_files_is_not_overwritten() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("data");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::copy(fixture(), out.join("train.parquet")).unwrap();
    let err = fails(
        &[
            "stage",
            "shuffle",
            "--input",
            &fixture(),
            "--output",
            out.to_str().unwrap(),
        ],
        1,
    );
    assert!(err.contains("did not write"), "{err}");
    assert!(out.join("train.parquet").exists());
}

/// A run refuses an output folder another run is writing to (exit 2, naming that run's pid),
/// instead of interleaving its parts with the other run's.
#[test]
fn a_second_writer_is_refused_while_the_first_holds_the_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let held = retort::io::lock::OutputLock::acquire(&out, "_LOCK").unwrap();
    let args = stage_args("perturb", &fixture(), &out, &["mode=\"swap\""]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let err = fails(&args, 2);
    assert!(
        err.contains(&format!(
            "another retort run (pid {}) is writing to",
            std::process::id()
        )),
        "{err}"
    );
    assert!(!out.join("_SUCCESS.json").exists());
    drop(held);
    ok(&args);
    assert!(out.join("_SUCCESS.json").exists());
}

/// A folder whose run has not finished (parts committed, no `_SUCCESS.json`, or only some
/// shards' manifests) is refused as an input unless `--allow-incomplete` is given.
#[test]
fn an_unfinished_upstream_folder_is_refused_as_input() {
    let tmp = tempfile::tempdir().unwrap();
    let up = tmp.path().join("up");
    let sets = ["mode=\"swap\"", "keep_original=true"];
    ok_owned(&stage_args("perturb", &fixture(), &up, &sets));
    std::fs::remove_file(up.join("_SUCCESS.json")).unwrap();
    let down = tmp.path().join("down");
    let mut args = stage_args("perturb", up.to_str().unwrap(), &down, &["mode=\"swap\""]);
    let refused = |args: &[String]| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        fails(&args, 1)
    };
    let err = refused(&args);
    assert!(err.contains("is an unfinished retort output"), "{err}");
    assert!(err.contains("--allow-incomplete"), "{err}");
    args.push("--allow-incomplete".into());
    ok_owned(&args);

    // Shards: one of two manifests is not enough; both are.
    let sharded = tmp.path().join("sharded");
    let shard = |i: &str| {
        let mut a = stage_args("perturb", &fixture(), &sharded, &sets);
        a.extend([
            "--shard".into(),
            format!("{i}/2"),
            "--batch-size".into(),
            "7".into(),
        ]);
        ok_owned(&a);
    };
    shard("1");
    let down2 = tmp.path().join("down2");
    let args = stage_args(
        "perturb",
        sharded.to_str().unwrap(),
        &down2,
        &["mode=\"swap\""],
    );
    let err = refused(&args);
    assert!(err.contains("holds 1 of 2 shard manifests"), "{err}");
    shard("2");
    ok_owned(&args);
}

/// A finished folder is "up to date" only while its files are the ones its manifest lists.
#[test]
fn a_damaged_finished_folder_is_not_up_to_date() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let args = stage_args(
        "perturb",
        &fixture(),
        &out,
        &["mode=\"swap\"", "keep_original=true"],
    );
    ok_owned(&args);
    ok_owned(&args);
    let part = out.join("part-00000.parquet");
    let bytes = std::fs::read(&part).unwrap();
    std::fs::write(&part, &bytes[..bytes.len() / 2]).unwrap();
    let args_ref: Vec<&str> = args.iter().map(String::as_str).collect();
    let err = fails(&args_ref, 1);
    assert!(err.contains("`part-00000.parquet` has"), "{err}");
    std::fs::remove_file(&part).unwrap();
    let err = fails(&args_ref, 1);
    assert!(err.contains("`part-00000.parquet` is missing"), "{err}");
    let mut forced = args.clone();
    forced.push("--force".into());
    ok_owned(&forced);
    assert_eq!(std::fs::read(&part).unwrap().len(), bytes.len());
}

/// An input rewritten with other content at the same size is another input: the finished
/// output is not called up to date.
#[test]
fn a_rewritten_input_of_the_same_size_is_not_up_to_date() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.parquet");
    std::fs::copy(fixture(), &input).unwrap();
    let out = tmp.path().join("out");
    let args = stage_args("perturb", input.to_str().unwrap(), &out, &["mode=\"swap\""]);
    ok_owned(&args);
    std::thread::sleep(std::time::Duration::from_millis(20));
    // Same bytes, written again: a new modification time, as a rewrite would have.
    std::fs::write(&input, std::fs::read(fixture()).unwrap()).unwrap();
    let args_ref: Vec<&str> = args.iter().map(String::as_str).collect();
    let err = fails(&args_ref, 1);
    assert!(err.contains("another configuration"), "{err}");
}
