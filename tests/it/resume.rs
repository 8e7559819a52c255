//! Finished runs are no-ops; killed runs resume to exactly the uninterrupted output.

use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

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

fn swap_args(input: &str, output: &Path) -> Vec<String> {
    let sets = [
        "mode=swap",
        "copies=2",
        "keep_original=true",
        "sink.rows_per_file=12000",
    ];
    let mut args = stage_args("perturb", input, output, &sets);
    args.extend(["--batch-size".into(), "500".into()]);
    args
}

/// Parts an unfinished run has committed: its journal entries in `_progress/`.
fn committed_parts(out: &Path) -> usize {
    std::fs::read_dir(out.join("_progress")).map_or(0, |d| {
        d.flatten()
            .filter(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.starts_with("part-") && n.ends_with(".json")
            })
            .count()
    })
}

/// Runs `retort args` and SIGKILLs it once `out` holds `parts` committed parts, then asserts
/// that the kill landed mid-run: the process was still running, SIGKILL ended it, and it left
/// those parts but no manifest (readers still see only complete Parquet files).
fn kill_after_parts(args: &[String], out: &Path, parts: usize) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_retort"))
        .args(args)
        .current_dir(root())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(600);
    while committed_parts(out) < parts {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("{args:?} ended ({status}) before committing {parts} parts: no kill mid-run");
        }
        assert!(Instant::now() < deadline, "{args:?}: no progress");
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "{args:?} finished before it could be killed after {parts} parts"
    );
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(9), "{args:?}: {status}");
    assert!(committed_parts(out) >= parts);
    assert!(
        !out.join("_SUCCESS.json").exists(),
        "{args:?}: a killed run left a manifest"
    );
    let _ = read_rows(out);
}

/// Runs `args` into `out`, SIGKILLed once after each count of committed parts in `kills`
/// (each count above the last, so every resumed run made progress before its kill), then to
/// the end; asserts the rows equal an uninterrupted run's, and returns them.
fn killed_and_resumed(args: &[String], out: &Path, kills: &[usize]) -> Vec<Row> {
    let clean = out.with_extension("clean");
    let clean_args: Vec<String> = args
        .iter()
        .map(|a| a.replace(out.to_str().unwrap(), clean.to_str().unwrap()))
        .collect();
    ok_owned(&clean_args);
    let expected = read_rows(&clean);
    assert!(!expected.is_empty());
    for &parts in kills {
        kill_after_parts(args, out, parts);
    }
    ok_owned(args);
    let rows = read_rows(out);
    assert_eq!(
        rows, expected,
        "{args:?}: resumed output differs from an uninterrupted run"
    );
    rows
}

#[test]
fn killed_runs_resume_without_duplicates_and_reruns_are_no_ops() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("big.parquet");
    big_corpus(&input, 60_000);
    let input = input.to_str().unwrap().to_string();

    // 180,000 rows in 15 parts: killed after the 2nd, 6th and 10th.
    let out = tmp.path().join("killed");
    let args = swap_args(&input, &out);
    let rows = killed_and_resumed(&args, &out, &[2, 6, 10]);
    let m = manifest(&out);
    // Two copies and the original of each row, less the copies that repeat an earlier one.
    let t = &m["stages"]["perturb"];
    let dropped =
        t["copies_duplicate"].as_u64().unwrap_or(0) + t["copies_skipped"].as_u64().unwrap();
    assert_eq!(rows.len() as u64, 180_000 - dropped, "{t}");
    assert!(rows.len() > 170_000, "{t}");
    assert_eq!(m["rows"], rows.len() as u64);
    assert_eq!(m["stages"]["input"]["rows_in"], 60_000, "{m}");
    assert_eq!(m["stages"]["perturb"]["rows_in"], 60_000, "{m}");

    // A rerun of a finished run does nothing.
    let before = std::fs::metadata(out.join("_SUCCESS.json"))
        .unwrap()
        .modified()
        .unwrap();
    let loud: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| *a != "--quiet")
        .collect();
    let o = retort(&loud);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("up to date"));
    let after = std::fs::metadata(out.join("_SUCCESS.json"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(before, after);
}

/// `retort stage teacher` with `teacher` over `input` into `out`: parts of 1,000 rows,
/// batches of 250.
fn teacher_args(teacher: &str, input: &Path, out: &Path) -> Vec<String> {
    let model = format!("model=\"{teacher}\"");
    let mut args = stage_args(
        "teacher",
        input.to_str().unwrap(),
        out,
        &[&model, "sink.rows_per_file=1000"],
    );
    args.extend(["--batch-size".into(), "250".into()]);
    args
}

/// A model stage: `teacher` killed by SIGKILL mid-run resumes to the same soft labels.
#[test]
fn a_killed_teacher_run_resumes_to_the_same_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let teacher = train_tiny_teacher(&tmp.path().join("teacher"));
    let input = tmp.path().join("big.parquet");
    big_corpus(&input, 12_000);
    let out = tmp.path().join("killed");
    let args = teacher_args(&teacher, &input, &out);
    // 12 parts: killed after the 2nd and the 7th.
    let rows = killed_and_resumed(&args, &out, &[2, 7]);
    assert_eq!(rows.len(), 12_000);
    assert_eq!(manifest(&out)["stages"]["teacher"]["rows_in"], 12_000);
}

/// `generate` killed by SIGKILL mid-run (its input rows committed, its new texts not yet)
/// resumes to the same rows, new texts included.
#[test]
fn a_killed_generate_run_resumes_to_the_same_rows() {
    if !available(Dep::SmolLm2) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let input = small_fixture(&tmp.path().join("small.parquet"), 24);
    let out = tmp.path().join("killed");
    let mut args = stage_args(
        "generate",
        &input,
        &out,
        &["prompts=4", "max_new_tokens=12", "sink.rows_per_file=4"],
    );
    args.extend(["--batch-size".into(), "4".into()]);
    let rows = killed_and_resumed(&args, &out, &[1, 3]);
    assert_eq!(rows.iter().filter(|r| r.op == "orig").count(), 24);
    let m = manifest(&out);
    let pseudo = m["stages"]["generate"]["rows_out"]["pseudo"]
        .as_u64()
        .unwrap_or(0);
    assert_eq!(rows.len() as u64, 24 + pseudo, "{m}");
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
/// output is not called up to date, and (same configuration) is written again from it.
#[test]
fn a_rewritten_input_of_the_same_size_is_not_up_to_date() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.parquet");
    std::fs::copy(fixture(), &input).unwrap();
    let out = tmp.path().join("out");
    let mut args = stage_args("perturb", input.to_str().unwrap(), &out, &["mode=\"swap\""]);
    args.retain(|a| a != "--quiet");
    ok_owned(&args);
    let before = std::fs::metadata(out.join("_SUCCESS.json"))
        .unwrap()
        .modified()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    // Same bytes, written again: a new modification time, as a rewrite would have.
    std::fs::write(&input, std::fs::read(fixture()).unwrap()).unwrap();
    let args_ref: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = retort(&args_ref);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(!stderr.contains("up to date"), "{stderr}");
    assert!(
        stderr.contains("changed since: writing it again"),
        "{stderr}"
    );
    let after = std::fs::metadata(out.join("_SUCCESS.json"))
        .unwrap()
        .modified()
        .unwrap();
    assert_ne!(before, after, "the manifest must be written again");
}

/// An input rewritten at the same size whose modification time is then restored (as `touch
/// -r` or a copy that keeps times would) is still another input: its Parquet footer differs
/// (here the ids' statistics), so the finished output is written again from the new rows.
#[test]
fn a_rewritten_input_of_the_same_size_and_mtime_is_not_up_to_date() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.parquet");
    let corpus = |prefix: &str| {
        let tsv = fixture_tsv();
        let ids: ArrayRef = Arc::new(StringArray::from_iter_values(
            (0..tsv.len()).map(|i| format!("{prefix}{i:05}")),
        ));
        let text: ArrayRef = Arc::new(StringArray::from_iter_values(
            tsv.iter().map(|r| r.1.clone()),
        ));
        write_parquet(&input, vec![("id", ids), ("text", text)], 1_000);
    };
    corpus("a");
    let meta = std::fs::metadata(&input).unwrap();
    let mtime = meta.modified().unwrap();
    let out = tmp.path().join("out");
    let mut args = stage_args("perturb", input.to_str().unwrap(), &out, &["mode=\"swap\""]);
    args.retain(|a| a != "--quiet");
    ok_owned(&args);
    assert!(read_rows(&out).iter().all(|r| r.id.starts_with('a')));

    corpus("b");
    std::fs::File::options()
        .write(true)
        .open(&input)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let rewritten = std::fs::metadata(&input).unwrap();
    assert_eq!(
        rewritten.len(),
        meta.len(),
        "the rewrite must keep the size"
    );
    assert_eq!(rewritten.modified().unwrap(), mtime);
    let args_ref: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = retort(&args_ref);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(!stderr.contains("up to date"), "{stderr}");
    assert!(
        stderr.contains("changed since: writing it again"),
        "{stderr}"
    );
    let rows = read_rows(&out);
    assert!(!rows.is_empty());
    assert!(
        rows.iter().all(|r| r.id.starts_with('b')),
        "the output still holds the old input's rows"
    );
}

/// Runs `retort args` and SIGKILLs it after `delay`, asserting that the kill landed mid-run:
/// the process was still running, SIGKILL ended it, and it left no manifest.
fn kill_after_delay(args: &[String], out: &Path, delay: Duration) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_retort"))
        .args(args)
        .current_dir(root())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + delay;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("{args:?} ended ({status}) before its kill at {delay:?}: no kill mid-run");
        }
        std::thread::sleep(
            Duration::from_millis(1).min(deadline.saturating_duration_since(Instant::now())),
        );
    }
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert_eq!(
        status.signal(),
        Some(9),
        "{args:?} was not killed at {delay:?}: {status}"
    );
    assert!(
        !out.join("_SUCCESS.json").exists(),
        "{args:?}: a run killed at {delay:?} left a manifest"
    );
}

/// Runs `args` into `out` and SIGKILLs it `kills` times at random moments drawn from `rng`
/// (each within the first 60% of the time the remaining work should take, judged from an
/// uninterrupted run), then to the end; asserts the rows and the manifest's counts equal the
/// uninterrupted run's. Returns each kill's delay and the parts committed after it.
fn randomly_killed_and_resumed(
    args: &[String],
    out: &Path,
    kills: usize,
    rng: &mut impl rand::Rng,
) -> Vec<(Duration, usize)> {
    let clean = out.with_extension("clean");
    let clean_args: Vec<String> = args
        .iter()
        .map(|a| a.replace(out.to_str().unwrap(), clean.to_str().unwrap()))
        .collect();
    let started = Instant::now();
    ok_owned(&clean_args);
    let whole = started.elapsed();
    let parts = manifest(&clean)["files"].as_array().unwrap().len();
    assert!(
        parts >= 4,
        "{args:?}: {parts} parts are too few to kill between"
    );
    let mut delays = Vec::new();
    for _ in 0..kills {
        let left = 1.0 - committed_parts(out) as f64 / parts as f64;
        let delay = whole.mul_f64(left * rng.random_range(0.02..0.6));
        kill_after_delay(args, out, delay);
        delays.push((delay, committed_parts(out)));
    }
    assert!(
        delays.iter().any(|&(_, p)| p > 0),
        "{args:?}: no kill at {delays:?} came after a committed part, so nothing was resumed"
    );
    ok_owned(args);
    assert!(
        read_rows(out) == read_rows(&clean),
        "{args:?}: killed at {delays:?}, the resumed rows differ from an uninterrupted run's"
    );
    let (m, c) = (manifest(out), manifest(&clean));
    assert_eq!(m["rows"], c["rows"], "{args:?}: killed at {delays:?}");
    assert_eq!(m["stages"], c["stages"], "{args:?}: killed at {delays:?}");
    delays
}

/// `make soak` only: real `retort` runs SIGKILLed at seeded random moments (not after a
/// chosen part), several times each, then resumed: a plain augmenter (`perturb`, 60,000 rows,
/// 6 kills) and a model stage (`teacher`, 12,000 rows, 4 kills). `RETORT_SOAK_SEED` replays
/// a failure.
#[test]
fn random_sigkills_resume_to_the_uninterrupted_output() {
    const TEST: &str = "resume::random_sigkills_resume_to_the_uninterrupted_output";
    if std::env::var_os("RETORT_SOAK").is_none() {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED {TEST}: runs under `make soak` only (RETORT_SOAK=1)"
        );
        return;
    }
    let seed: u64 = std::env::var("RETORT_SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(17);
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(seed);
    let tmp = tempfile::tempdir().unwrap();

    let input = tmp.path().join("big.parquet");
    big_corpus(&input, 60_000);
    let out = tmp.path().join("perturb");
    let args = swap_args(input.to_str().unwrap(), &out);
    let perturb = randomly_killed_and_resumed(&args, &out, 6, &mut rng);

    let teacher = train_tiny_teacher(&tmp.path().join("teacher"));
    let input = tmp.path().join("labelled.parquet");
    big_corpus(&input, 12_000);
    let out = tmp.path().join("teacher-out");
    let args = teacher_args(&teacher, &input, &out);
    let teacher = randomly_killed_and_resumed(&args, &out, 4, &mut rng);
    let _ = writeln!(
        std::io::stderr(),
        "{TEST}: seed {seed}, 10 kills survived (delay, parts committed): perturb {perturb:?}, teacher {teacher:?}"
    );
}
