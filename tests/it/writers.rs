//! Two `retort stage` processes of different configurations writing into one output folder at
//! once: exactly one wins, the other exits with "another retort run (pid N) is writing to", and
//! the winner's folder holds its own rows, as a run alone would have written them.
//!
//! (`resume::a_second_writer_is_refused_while_the_first_holds_the_folder` holds the lock from
//! the test process; these tests race two real runs.)

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, StringArray};

use crate::common::*;

/// The two configurations: word swaps and sentence shuffles, both keeping the originals.
fn args_a(input: &str, out: &Path) -> Vec<String> {
    stage_args(
        "perturb",
        input,
        out,
        &["mode=\"swap\"", "keep_original=true"],
    )
}

fn args_b(input: &str, out: &Path) -> Vec<String> {
    stage_args("shuffle", input, out, &["keep_original=true", "copies=2"])
}

fn spawn(args: &[String]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_retort"))
        .args(args)
        .current_dir(root())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start retort")
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "kill {sig} {pid}");
}

fn stderr_of(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A corpus big enough that a run lasts a while: the fixture's texts, repeated.
fn big_corpus(path: &Path, copies: usize) -> String {
    let rows = fixture_tsv();
    let mut ids = Vec::new();
    let mut texts = Vec::new();
    for k in 0..copies {
        for (id, text, _) in &rows {
            ids.push(format!("{id}-{k}"));
            texts.push(text.clone());
        }
    }
    write_parquet(
        path,
        vec![
            ("id", Arc::new(StringArray::from(ids)) as ArrayRef),
            ("text", Arc::new(StringArray::from(texts)) as ArrayRef),
        ],
        500,
    );
    path.display().to_string()
}

/// The rows a configuration writes into a folder of its own.
fn alone(args: &[String], out: &Path, dir: &Path) -> Vec<Row> {
    let own: Vec<String> = args
        .iter()
        .map(|a| a.replace(out.to_str().unwrap(), dir.to_str().unwrap()))
        .collect();
    ok_owned(&own);
    read_rows(dir)
}

/// Deterministic: the first run is stopped (SIGSTOP) while it holds the folder, the second
/// runs to its end and is refused, naming the first's pid; the first then finishes with its
/// own rows, and the second is still refused afterwards (another configuration's finished run).
#[test]
fn a_second_run_is_refused_while_the_first_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let input = big_corpus(&tmp.path().join("big.parquet"), 60);
    let out = tmp.path().join("shared");
    let a = args_a(&input, &out);
    let b = args_b(&input, &out);
    let mut first = spawn(&a);
    let pid = first.id();
    // The lock file holds the pid of the run holding the lock.
    let lock = out.join("_LOCK");
    let started = Instant::now();
    while std::fs::read_to_string(&lock).ok().as_deref() != Some(pid.to_string().as_str()) {
        assert!(
            first.try_wait().unwrap().is_none(),
            "the first run ended before it was seen holding the folder"
        );
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no lock after 60 s"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    signal(pid, "-STOP");
    let second = Command::new(env!("CARGO_BIN_EXE_retort"))
        .args(&b)
        .current_dir(root())
        .output()
        .unwrap();
    signal(pid, "-CONT");
    let err = stderr_of(&second);
    assert_eq!(second.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("another retort run (pid {pid}) is writing to")),
        "{err}"
    );
    let first = first.wait_with_output().unwrap();
    assert!(first.status.success(), "{}", stderr_of(&first));
    let want = alone(&a, &out, &tmp.path().join("alone"));
    assert!(
        read_rows(&out) == want,
        "the winner's folder does not hold its own rows"
    );
    let again = Command::new(env!("CARGO_BIN_EXE_retort"))
        .args(&b)
        .current_dir(root())
        .output()
        .unwrap();
    let err = stderr_of(&again);
    assert_eq!(again.status.code(), Some(1), "{err}");
    assert!(err.contains("another configuration"), "{err}");
}

/// Racing: two runs started at the same moment, several times. Each time exactly one succeeds;
/// the other is refused, either because the winner holds the folder (naming its pid) or because
/// the winner had already finished there; the folder holds the winner's rows.
#[test]
fn two_runs_started_together_leave_one_winner_with_its_own_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let input = big_corpus(&tmp.path().join("big.parquet"), 4);
    let want_a = alone(
        &args_a(&input, &tmp.path().join("x")),
        &tmp.path().join("x"),
        &tmp.path().join("a"),
    );
    let want_b = alone(
        &args_b(&input, &tmp.path().join("x")),
        &tmp.path().join("x"),
        &tmp.path().join("b"),
    );
    let rounds = 6;
    let mut lock_refusals = 0;
    for round in 0..rounds {
        let out = tmp.path().join(format!("race{round}"));
        let (a, b) = (args_a(&input, &out), args_b(&input, &out));
        // Alternate which one starts first.
        let (ca, cb) = if round % 2 == 0 {
            let ca = spawn(&a);
            (ca, spawn(&b))
        } else {
            let cb = spawn(&b);
            (spawn(&a), cb)
        };
        let (pa, pb) = (ca.id(), cb.id());
        let (oa, ob) = (
            ca.wait_with_output().unwrap(),
            cb.wait_with_output().unwrap(),
        );
        let (lose, win_pid, want) = match (oa.status.success(), ob.status.success()) {
            (true, false) => (&ob, pa, &want_a),
            (false, true) => (&oa, pb, &want_b),
            _ => panic!(
                "round {round}: exactly one run must succeed\nA: {}\nB: {}",
                stderr_of(&oa),
                stderr_of(&ob)
            ),
        };
        let err = stderr_of(lose);
        if err.contains(&format!("another retort run (pid {win_pid}) is writing to")) {
            assert_eq!(lose.status.code(), Some(2), "{err}");
            lock_refusals += 1;
        } else {
            assert!(
                err.contains("another configuration"),
                "round {round}: {err}"
            );
            assert_eq!(lose.status.code(), Some(1), "{err}");
        }
        assert!(
            read_rows(&out) == *want,
            "round {round}: the folder does not hold the winner's rows"
        );
    }
    let _ = std::io::Write::write_all(
        &mut std::io::stderr(),
        format!("writers: {rounds} races, {lock_refusals} refused by the lock, the rest by the finished run\n").as_bytes(),
    );
}
