//! Crash safety of every stage kind: a run is ended (`RETORT_KILL_AT`, an `abort` that runs no
//! destructor, as SIGKILL) at each of its commit steps in turn, and after each kill a plain
//! rerun must finish with exactly the rows, in the same order, of an uninterrupted run.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Command;

use retort::registry::STAGE_KINDS;
use retort::stage::kind::{Role, StageKind};

use crate::common::*;

/// Most commit steps tried per kind: every step of these small runs, except for the stages
/// that run SmolLM2 (slow on 2 cores), whose first few steps are tried unless `RETORT_SOAK` is
/// set (`make soak`).
fn max_steps(slow: bool) -> usize {
    if slow && std::env::var_os("RETORT_SOAK").is_none() {
        4
    } else {
        60
    }
}

/// `--set KEY=VALUE` values from a kind's example keys, with `${teacher}` filled in.
fn example_sets(kind: &dyn StageKind, teacher: &str) -> Vec<String> {
    kind.example_keys()
        .lines()
        .filter_map(|l| l.split_once(" = "))
        .map(|(k, v)| format!("{k}={}", v.replace("${teacher}", teacher)))
        .collect()
}

/// Runs `retort` with `args`, ended at the `step`-th commit step when `step` is given.
/// Returns whether the process was ended there (by the crash point's SIGABRT, at hit
/// `step`), and its stderr.
fn run_until(args: &[String], step: Option<usize>) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_retort"));
    cmd.args(args).current_dir(root());
    if let Some(k) = step {
        cmd.env(retort::io::fault::KILL_AT_ENV, format!("any:{k}"));
    }
    let out = cmd.output().expect("run retort");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let killed = stderr.contains("ending the process at step");
    if killed {
        assert_eq!(
            out.status.signal(),
            Some(6),
            "{args:?}: {:?}\n{stderr}",
            out.status
        );
        let hit = format!("(hit {})", step.unwrap_or_default());
        assert!(
            stderr.contains(&hit),
            "{args:?}: not killed at {hit}:\n{stderr}"
        );
    } else {
        assert!(
            out.status.success(),
            "retort {args:?} failed without being killed:\n{stderr}"
        );
    }
    (killed, stderr)
}

/// The names of the files under `out`, recursively (`train` writes its rows under `rows/`).
fn file_names(out: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut dirs = vec![out.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                dirs.push(e.path());
            } else {
                found.push(e.file_name().to_string_lossy().into_owned());
            }
        }
    }
    found
}

/// Kills a run of `args` (whose output folder is `out`) at step 1, 2, ... in turn, resuming
/// after each kill, and checks the rows against `expected`. Returns the steps killed at.
fn kill_at_every_step(
    args: &[String],
    out: &Path,
    max_steps: usize,
    rows_of: &dyn Fn(&Path) -> Vec<Row>,
) -> usize {
    let expected = {
        let clean = out.with_extension("clean");
        let clean_args: Vec<String> = args
            .iter()
            .map(|a| a.replace(out.to_str().unwrap(), clean.to_str().unwrap()))
            .collect();
        run_until(&clean_args, None);
        rows_of(&clean)
    };
    assert!(!expected.is_empty());
    let mut killed_at = 0;
    for step in 1..=max_steps {
        let _ = std::fs::remove_dir_all(out);
        let (killed, _) = run_until(args, Some(step));
        if !killed {
            break; // the run has fewer steps: every one was tried
        }
        killed_at += 1;
        // Killed mid-run: a part under way or committed (temporary files, parts, journal
        // entries), and no manifest.
        let files = file_names(out);
        assert!(
            !files.iter().any(|f| f.starts_with("_SUCCESS")),
            "step {step}: a killed run left a manifest: {files:?}"
        );
        assert!(
            files
                .iter()
                .any(|f| f.starts_with("_tmp.") || f.starts_with("part-")),
            "{args:?}: killed at step {step} with nothing under way: {files:?}"
        );
        run_until(args, None);
        assert_eq!(
            rows_of(out),
            expected,
            "{args:?}: killed at commit step {step}, the resumed output differs"
        );
    }
    killed_at
}

#[test]
fn a_kill_at_every_commit_step_of_every_stage_kind_resumes_to_the_same_rows() {
    if !available(Dep::WordNet) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let teacher = train_tiny_teacher(&tmp.path().join("teacher"));
    // Small inputs and small parts: many commit steps, each run quick.
    let small = small_fixture(&tmp.path().join("small.parquet"), 48);
    let tiny = small_fixture(&tmp.path().join("tiny.parquet"), 6);
    let mut report = Vec::new();
    for kind in STAGE_KINDS {
        let needs = kind.needs();
        if !needs_available(needs, &format!("faults of `{}`", kind.name())) {
            continue;
        }
        let out = tmp.path().join(format!("out-{}", kind.name()));
        let steps = match kind.role() {
            // Sources and sinks are part of every run below.
            Role::Source => continue,
            Role::Sink if kind.name() == "parquet_sink" => continue,
            Role::Sink => {
                // `train`: its example pipeline, rows committed under `rows/`, then a model.
                let example = tmp.path().join(format!("{}.toml", kind.name()));
                std::fs::write(&example, kind.example().replace("${teacher}", &teacher)).unwrap();
                let args: Vec<String> = [
                    "run",
                    example.to_str().unwrap(),
                    "--var",
                    &format!("input={small}"),
                    "--var",
                    &format!("output={}", out.display()),
                    "--batch-size",
                    "8",
                    "--quiet",
                ]
                .iter()
                .map(|s| s.to_string())
                .collect();
                kill_at_every_step(&args, &out, max_steps(false), &|p| {
                    read_rows(&p.join("rows"))
                })
            }
            Role::Transform => {
                let (input, per_file) = if needs.lm_asset {
                    (tiny.clone(), "2")
                } else {
                    (small.clone(), "24")
                };
                let mut sets = example_sets(*kind, &teacher);
                sets.push(format!("sink.rows_per_file={per_file}"));
                let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
                let mut args = stage_args(kind.name(), &input, &out, &sets);
                let batch = if needs.lm_asset { "2" } else { "8" };
                args.extend(["--batch-size".to_string(), batch.to_string()]);
                kill_at_every_step(&args, &out, max_steps(needs.lm_asset), &|p| read_rows(p))
            }
        };
        assert!(steps >= 3, "`{}`: only {steps} commit steps", kind.name());
        report.push(format!("{}: {steps}", kind.name()));
    }
    eprintln!(
        "killed and resumed at every commit step: {}",
        report.join(", ")
    );
}
