//! A full disk: a run whose output does not fit on a small tmpfs fails with a plain "no space
//! left on device" message, leaves no temporary file filling the disk, and, once the disk is
//! larger, resumes to exactly the rows of an uninterrupted run.
//!
//! Mounting needs root (as on the test machine and in CI); elsewhere the test says on the
//! terminal that it was skipped, or fails under `RETORT_REQUIRE_DEPS=1` (`make test`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use arrow::array::{ArrayRef, StringArray};
use rand::{Rng, SeedableRng};

use crate::common::*;

/// A tmpfs mounted on a folder for the life of the value; unmounted when dropped.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (as `mount` writes it: `2m`) on `dir`, or says why it cannot.
    fn mount(dir: &Path, size: &str) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        Ok(Tmpfs {
            dir: dir.to_path_buf(),
        })
    }

    /// Grows (or shrinks) the mounted tmpfs, keeping its files.
    fn resize(&self, size: &str) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Says on the terminal (past the test harness's capture) that a test was skipped, and why;
/// under `RETORT_REQUIRE_DEPS=1` (`make test`, CI: as root, where a tmpfs mounts) the test
/// fails instead, as [`retort::testing::available`] does for a missing dependency.
fn skipped(test: &str, why: &str) {
    let message = format!("SKIPPED {test}: {why} (run the tests as root)");
    if retort::testing::deps_required() {
        panic!(
            "{message}; {}=1 makes a test that cannot run a failure",
            retort::testing::REQUIRE_DEPS_ENV
        );
    }
    let _ = writeln!(std::io::stderr(), "{message}");
}

/// What [`a_skip_is_said_and_fails_when_deps_are_required`] runs in a child process.
#[test]
#[ignore = "run by a_skip_is_said_and_fails_when_deps_are_required"]
fn probe_a_refused_mount() {
    skipped(
        "full_disk::probe_a_refused_mount",
        "cannot mount a tmpfs: probe",
    );
}

/// Runs this test binary again on the probe: the skip is printed past libtest's capture, and
/// `RETORT_REQUIRE_DEPS=1` turns it into a failure.
#[test]
fn a_skip_is_said_and_fails_when_deps_are_required() {
    let run = |required: &str| {
        let out = Command::new(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                "full_disk::probe_a_refused_mount",
                "--test-threads",
                "1",
            ])
            .env(retort::testing::REQUIRE_DEPS_ENV, required)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    };
    let line = "SKIPPED full_disk::probe_a_refused_mount: cannot mount a tmpfs: probe";
    let (passed, text) = run("0");
    assert!(passed, "{text}");
    assert!(text.contains(line), "{text}");
    assert!(text.contains("1 passed"), "the probe did not run: {text}");
    let (passed, text) = run("1");
    assert!(!passed, "{text}");
    assert!(text.contains(line), "{text}");
    assert!(text.contains("RETORT_REQUIRE_DEPS=1 makes"), "{text}");
}

/// Every file under `dir` whose name starts with `_tmp.` (a sink's temporary files).
fn temp_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if e.file_name().to_string_lossy().starts_with("_tmp.") {
                out.push(p);
            }
        }
    }
    out
}

/// A corpus that hardly compresses: `n` rows of random letters.
fn corpus(path: &Path, n: usize) {
    let mut g = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let texts: Vec<String> = (0..n)
        .map(|_| {
            let mut s = String::with_capacity(160);
            for w in 0..25 {
                if w > 0 {
                    s.push(' ');
                }
                for _ in 0..g.random_range(2..9) {
                    s.push(g.random_range(b'a'..=b'z') as char);
                }
            }
            s.push('.');
            s
        })
        .collect();
    let ids: Vec<String> = (0..n).map(|i| format!("r{i}")).collect();
    write_parquet(
        path,
        vec![
            ("id", Arc::new(StringArray::from(ids)) as ArrayRef),
            ("text", Arc::new(StringArray::from(texts)) as ArrayRef),
        ],
        1000,
    );
}

/// A run that fills a 2 MB tmpfs fails plainly, cleans up its temporary file, and resumes
/// after the disk grows to the rows of a run that never failed.
#[test]
fn a_full_disk_fails_plainly_and_resumes_exactly() {
    const TEST: &str = "full_disk::a_full_disk_fails_plainly_and_resumes_exactly";
    if !is_root() {
        skipped(TEST, "mounting a tmpfs needs root");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.parquet");
    corpus(&input, 8_000);
    let mnt = tmp.path().join("mnt");
    let disk = match Tmpfs::mount(&mnt, "2m") {
        Ok(d) => d,
        Err(why) => {
            skipped(TEST, &format!("cannot mount a tmpfs: {why}"));
            return;
        }
    };
    let run = |out: &Path| {
        let mut args = stage_args(
            "perturb",
            input.to_str().unwrap(),
            out,
            &[
                "mode=\"swap\"",
                "keep_original=true",
                "sink.compression=\"none\"",
                "sink.rows_per_file=1000",
            ],
        );
        args.extend(["--batch-size".into(), "250".into()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        retort(&args)
    };
    // About 2.6 MB of output: it cannot fit.
    let out = mnt.join("out");
    let failed = run(&out);
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert_eq!(failed.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("no space left on device"),
        "the message must say it plainly:\n{stderr}"
    );
    assert!(!out.join("_SUCCESS.json").exists());
    assert_eq!(
        temp_files(&mnt),
        Vec::<PathBuf>::new(),
        "a temporary file keeps the disk full"
    );
    let committed: Vec<_> = std::fs::read_dir(out.join("_progress"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(
        !committed.is_empty(),
        "some parts should have been committed before the disk filled"
    );
    let first_part = std::fs::read(out.join("part-00000.parquet")).unwrap();

    disk.resize("64m");
    let resumed = run(&out);
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    assert_eq!(
        std::fs::read(out.join("part-00000.parquet")).unwrap(),
        first_part,
        "the resumed run rewrote a committed part instead of keeping it"
    );
    let clean = tmp.path().join("clean");
    let uninterrupted = run(&clean);
    assert!(uninterrupted.status.success());
    let (a, b) = (read_rows(&out), read_rows(&clean));
    assert_eq!(a.len(), 16_000);
    assert!(
        a == b,
        "the resumed rows differ from an uninterrupted run's"
    );
    assert_eq!(manifest(&out)["rows"], manifest(&clean)["rows"]);
    assert_eq!(manifest(&out)["stages"], manifest(&clean)["stages"]);
}
