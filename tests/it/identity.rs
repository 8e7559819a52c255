//! "Up to date" only when it is: a retrained model makes its outputs stale, a resumed run never
//! mixes two teachers, `--verify` catches a part changed at the same size, spellings of one
//! path are one configuration, and the same run into two folders writes the same bytes.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use crate::common::*;

/// Every file under `dir` except the manifest, journal and lock (which name the run), by
/// relative path.
fn part_bytes(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for sub in ["", "_rejects"] {
        let Ok(entries) = std::fs::read_dir(dir.join(sub)) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".parquet") {
                let rel = Path::new(sub).join(&name).display().to_string();
                out.insert(rel, std::fs::read(e.path()).unwrap());
            }
        }
    }
    assert!(!out.is_empty(), "no parts in {}", dir.display());
    out
}

/// Runs `retort` and asserts success; returns stderr.
fn ok_stderr(args: &[String]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_retort"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("run retort");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "retort {args:?} failed:\n{stderr}");
    stderr
}

/// `retort stage teacher` over `input` into `out`, one part per 10 rows.
fn teacher_args(input: &str, out: &Path, model: &str) -> Vec<String> {
    let mut args = stage_args(
        "teacher",
        input,
        out,
        &[&format!("model={model}"), "sink.rows_per_file=10"],
    );
    args.retain(|a| a != "--quiet");
    args.extend(["--batch-size".into(), "10".into()]);
    args
}

/// Trains the tiny CNN teacher into `dir` with `seed`.
fn train_teacher(dir: &Path, seed: u64) {
    train_tiny_teacher_with(dir, &["--set", &format!("seed={seed}")]);
}

/// A teacher retrained at the same path (another seed) makes its soft labels stale: the rerun
/// is not "up to date" and writes teacher B's logits, byte for byte what a fresh run with B
/// writes. A run killed mid-way with teacher A and resumed after B replaced it starts again
/// instead of keeping A's parts.
#[test]
fn a_retrained_teacher_makes_its_soft_labels_stale() {
    let tmp = tempfile::tempdir().unwrap();
    let input = small_fixture(&tmp.path().join("in.parquet"), 40);
    let models = tmp.path().join("teacher");
    let model = models.join("final").display().to_string();
    train_teacher(&models, 1);
    let soft = tmp.path().join("soft");
    let args = teacher_args(&input, &soft, &model);
    ok_stderr(&args);
    let with_a = part_bytes(&soft);
    assert_eq!(with_a.len(), 4, "40 rows, 10 per part");
    assert!(ok_stderr(&args).contains("up to date"));

    train_teacher(&models, 2);
    let fresh_b = tmp.path().join("fresh-b");
    ok_stderr(&teacher_args(&input, &fresh_b, &model));
    let with_b = part_bytes(&fresh_b);
    assert_ne!(with_a, with_b, "teachers A and B should label differently");

    let stderr = ok_stderr(&args);
    assert!(!stderr.contains("up to date"), "{stderr}");
    assert!(stderr.contains("changed since"), "{stderr}");
    assert_eq!(
        part_bytes(&soft),
        with_b,
        "the rerun must hold teacher B's logits"
    );
    assert!(ok_stderr(&args).contains("up to date"));

    // Killed before the third part's journal entry with teacher A, resumed with B.
    train_teacher(&models, 1);
    let killed = tmp.path().join("killed");
    let kill_args = teacher_args(&input, &killed, &model);
    let out = Command::new(env!("CARGO_BIN_EXE_retort"))
        .args(&kill_args)
        .current_dir(root())
        .env(retort::io::fault::KILL_AT_ENV, "journal:3")
        .output()
        .unwrap();
    assert!(
        out.status.code().is_none(),
        "the run should have been ended"
    );
    assert_eq!(
        std::fs::read_dir(killed.join("_progress")).unwrap().count(),
        2,
        "two parts committed with teacher A"
    );
    train_teacher(&models, 2);
    let stderr = ok_stderr(&kill_args);
    assert!(stderr.contains("starting again"), "{stderr}");
    assert_eq!(
        part_bytes(&killed),
        with_b,
        "no part of teacher A may remain"
    );
}

/// `pipelines/self-distill.toml` (the `make selfdistill-chain` step): a generation whose
/// teacher was retrained is labelled and trained again, and a model left by an earlier run is
/// not taken for this run's (`_TRAINED.json`).
#[test]
fn a_generation_is_trained_again_when_its_teacher_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let input = small_fixture(&tmp.path().join("in.parquet"), 40);
    let teacher = tmp.path().join("gen-0");
    train_teacher(&teacher, 1);
    let out = tmp.path().join("gen-1");
    let args: Vec<String> = [
        "run",
        "pipelines/self-distill.toml",
        "--var",
        &format!("input={input}"),
        "--var",
        &format!("teacher={}", teacher.join("final").display()),
        "--var",
        &format!("output={}", out.display()),
        "--var",
        "epochs=1",
        "--var",
        "copies=1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let weights = out.join("final/model.safetensors");
    ok_stderr(&args);
    let first = std::fs::read(&weights).unwrap();
    assert!(out.join("_TRAINED.json").exists());
    let trained_at = std::fs::metadata(&weights).unwrap().modified().unwrap();
    assert!(ok_stderr(&args).contains("up to date"));
    assert_eq!(
        std::fs::metadata(&weights).unwrap().modified().unwrap(),
        trained_at,
        "an up-to-date generation is not trained again"
    );

    train_teacher(&teacher, 2);
    let stderr = ok_stderr(&args);
    assert!(!stderr.contains("up to date"), "{stderr}");
    assert_ne!(
        std::fs::read(&weights).unwrap(),
        first,
        "the student of teacher B must be trained again"
    );

    // A model whose training record is gone (a run killed while training) is trained again.
    std::fs::remove_file(out.join("_TRAINED.json")).unwrap();
    let before = std::fs::metadata(&weights).unwrap().modified().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    ok_stderr(&args);
    assert_ne!(
        std::fs::metadata(&weights).unwrap().modified().unwrap(),
        before
    );
    assert!(out.join("_TRAINED.json").exists());
}

/// `--verify` re-hashes every file against `_SUCCESS.json`: a part whose bytes changed at the
/// same size passes the size check but is refused, naming the file.
#[test]
fn verify_refuses_a_part_changed_at_the_same_size() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let mut args = stage_args("shuffle", &fixture(), &out, &["keep_original=true"]);
    args.retain(|a| a != "--quiet");
    ok_stderr(&args);
    let part = out.join("part-00000.parquet");
    let mut bytes = std::fs::read(&part).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&part, &bytes).unwrap();

    // Without --verify only sizes are checked.
    assert!(ok_stderr(&args).contains("up to date"));
    let mut verify = args.clone();
    verify.push("--verify".into());
    let verify_ref: Vec<&str> = verify.iter().map(String::as_str).collect();
    let err = fails(&verify_ref, 1);
    assert!(
        err.contains("`part-00000.parquet` does not match its SHA-256"),
        "{err}"
    );
    assert!(err.contains("--force"), "{err}");

    let mut forced = verify.clone();
    forced.push("--force".into());
    ok_stderr(&forced);
    assert!(ok_stderr(&verify).contains("up to date"));
}

/// `./x`, `x/` and `$PWD/x` name one input and one output: the second spelling finds the first
/// run up to date instead of "another configuration".
#[test]
fn spellings_of_one_path_are_one_configuration() {
    let tmp = tempfile::tempdir().unwrap();
    // Relative paths are resolved from the project root, where `retort` runs.
    let rel = Path::new("target")
        .join("test-identity")
        .join(tmp.path().file_name().unwrap());
    let out = root().join(&rel).join("out");
    let _cleanup = Cleanup(root().join(&rel));
    let run = |input: &str, output: &str| {
        let mut args = stage_args("shuffle", input, Path::new(output), &[]);
        args.retain(|a| a != "--quiet");
        ok_stderr(&args)
    };
    let out_rel = rel.join("out").display().to_string();
    run("./fixtures/reviews.parquet", &format!("./{out_rel}"));
    let first = part_bytes(&out);
    for (input, output) in [
        (
            "fixtures/reviews.parquet".to_string(),
            format!("{out_rel}/"),
        ),
        (fixture(), out.display().to_string()),
        (
            "fixtures/../fixtures/reviews.parquet".into(),
            format!("{out_rel}/../out"),
        ),
    ] {
        let stderr = run(&input, &output);
        assert!(stderr.contains("up to date"), "{input} {output}: {stderr}");
    }
    assert_eq!(part_bytes(&out), first);
}

/// Removes a folder when dropped.
struct Cleanup(std::path::PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The same run into two folders writes byte-identical parts and rejects: no output path or
/// fingerprint in the files.
#[test]
fn the_same_run_into_two_folders_writes_identical_parts() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.parquet");
    // Rows without text go to the rejects, so rejects files are compared too.
    write_parquet(
        &input,
        vec![
            ("id", texts([Some("a"), Some("b"), Some("c"), Some("d")])),
            (
                "text",
                texts([
                    Some("One sentence here. And another one there."),
                    None,
                    Some("Short."),
                    Some("First part. Second part. Third part."),
                ]),
            ),
        ],
        2,
    );
    let input = input.display().to_string();
    let sets = ["copies=2", "keep_original=true"];
    let one = tmp.path().join("one");
    let two = tmp.path().join("elsewhere/two");
    ok_owned(&stage_args("shuffle", &input, &one, &sets));
    ok_owned(&stage_args("shuffle", &input, &two, &sets));
    let a = part_bytes(&one);
    assert!(
        a.keys().any(|k| k.starts_with("_rejects")),
        "expected a rejects file: {:?}",
        a.keys()
    );
    assert_eq!(a, part_bytes(&two));
}
