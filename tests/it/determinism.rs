//! Same seed, same rows: whatever the thread count, batch size or sharding.

use std::path::Path;

use crate::common::*;

fn run(out: &Path, extra: &[&str]) -> Vec<Row> {
    let mut args = vec!["run", "pipelines/augment.toml", "--quiet"];
    let o = format!("output={}", out.display());
    args.extend(["--var", &o]);
    args.extend(extra);
    ok(&args);
    read_rows(out)
}

#[test]
fn output_does_not_depend_on_threads_batches_or_shards() {
    if !available(Dep::WordNet) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let base = run(
        &tmp.path().join("base"),
        &["--threads", "1", "--batch-size", "1024"],
    );
    assert!(base.len() > 700);
    let two_threads = run(
        &tmp.path().join("t2"),
        &["--threads", "2", "--batch-size", "1024"],
    );
    assert_eq!(base, two_threads, "thread count changed the output");
    let batch_one = run(
        &tmp.path().join("b1"),
        &["--threads", "2", "--batch-size", "1"],
    );
    assert_eq!(base, batch_one, "batch size changed the output");
    // Two shards into one folder: together exactly the unsharded rows.
    let sharded = tmp.path().join("sharded");
    run(&sharded, &["--shard", "1/2", "--batch-size", "7"]);
    let first = read_rows(&sharded);
    assert!(
        !first.is_empty() && first.len() < base.len(),
        "shard 1 holds {}",
        first.len()
    );
    let both = run(&sharded, &["--shard", "2/2", "--batch-size", "7"]);
    assert_eq!(base, both, "two shards merged differ from one run");
    assert!(sharded.join("_SUCCESS.shard-0001-of-0002.json").exists());
    assert!(sharded.join("_SUCCESS.shard-0002-of-0002.json").exists());
}

#[test]
fn another_seed_gives_other_augmentations() {
    if !available(Dep::WordNet) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a");
    let a = run(&dir, &[]);
    let spec = std::fs::read_to_string(root().join("pipelines/augment.toml"))
        .unwrap()
        .replace("seed = 17", "seed = 18");
    let other = tmp.path().join("other.toml");
    std::fs::write(&other, spec).unwrap();
    let out = tmp.path().join("b");
    ok(&[
        "run",
        other.to_str().unwrap(),
        "--var",
        &format!("input={}", fixture()),
        "--var",
        &format!("output={}", out.display()),
        "--quiet",
    ]);
    let b = read_rows(&out);
    let differ = a
        .iter()
        .zip(&b)
        .filter(|(x, y)| x.op != "orig" && x.text != y.text)
        .count();
    assert!(
        differ > 100,
        "only {differ} augmented rows changed with the seed"
    );
}
