//! The whole path through the binary: a hostile Parquet corpus through `retort stage KIND` for
//! every augmenter (Apertium back-translation included), with and without originals, and the output folder checked row by row
//! against the input: every input row is written (as itself or as the parent of its copies) or
//! is in `_rejects/`, and the manifest's counts are the files' counts.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, StringArray};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use rand::{Rng, SeedableRng};

use super::gen::{self, Gen};
use crate::common::*;

/// The augmenter settings tried, by kind.
fn kinds() -> Vec<(&'static str, &'static [&'static str])> {
    let mut v: Vec<(&str, &[&str])> = vec![
        ("shuffle", &[]),
        ("perturb", &["mode=\"swap\""]),
        ("perturb", &["mode=\"delete\"", "p=0.05"]),
    ];
    if available(Dep::WordNet) {
        v.extend([
            ("perturb", &["mode=\"insert\""][..]),
            ("synonym", &[][..]),
            ("eda", &[][..]),
        ]);
    } else {
        gen::say("SKIPPED the WordNet kinds of the end-to-end fuzz: WordNet is not installed");
    }
    // Apertium is an external program fed through pipes: hostile text (control characters,
    // NUL, right-to-left marks, huge rows) must neither break a call nor lose a row.
    // Two pivots: each of the two copies needs its own (the engine is deterministic).
    let part = "the back-translation part of the end-to-end fuzz";
    if available_for(Dep::Apertium("spa"), part) && available_for(Dep::Apertium("cat"), part) {
        v.push(("backtranslate", &["pivots=[\"spa\", \"cat\"]"][..]));
    }
    v
}

/// Writes a hostile corpus of `n` rows: (ids, texts); some ids and texts are null.
fn corpus(path: &Path, n: usize, seed: u64) -> (Vec<Option<String>>, Vec<Option<String>>) {
    let mut g = Gen::seed_from_u64(seed);
    let ids: Vec<Option<String>> = (0..n)
        .map(|i| {
            (g.random_range(0..30) != 0)
                .then(|| format!("row {i} \u{202e}{}", gen::any_char(&mut g)))
        })
        .collect();
    let texts: Vec<Option<String>> = (0..n)
        .map(|_| match g.random_range(0..30) {
            0 => None,
            1..=8 => Some(gen::plain_text(&mut g)),
            _ => Some(gen::text(&mut g)),
        })
        .collect();
    write_parquet(
        path,
        vec![
            ("id", Arc::new(StringArray::from(ids.clone())) as ArrayRef),
            (
                "text",
                Arc::new(StringArray::from(texts.clone())) as ArrayRef,
            ),
        ],
        37,
    );
    (ids, texts)
}

/// The ids in a folder's `_rejects/` files, in no particular order.
fn reject_ids(dir: &Path) -> Vec<Option<String>> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir.join("_rejects")) else {
        return out;
    };
    for e in entries.flatten() {
        let reader =
            ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(e.path()).unwrap())
                .unwrap()
                .build()
                .unwrap();
        for b in reader {
            let b = b.unwrap();
            let ids = b
                .column_by_name("id")
                .unwrap()
                .as_any()
                .downcast_ref::<StringArray>()
                .unwrap()
                .clone();
            out.extend(
                (0..b.num_rows()).map(|i| ids.is_valid(i).then(|| ids.value(i).to_string())),
            );
        }
    }
    out
}

/// Runs every augmenter on one hostile corpus with `keep_original`; with `every_row`, checks
/// that every input row is in the output or in the rejects.
fn run(keep_original: bool, every_row: bool) {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("hostile.parquet");
    let n = 150;
    let (ids, _texts) = corpus(&input, n, 17);
    let started = std::time::Instant::now();
    for (i, (kind, sets)) in kinds().into_iter().enumerate() {
        let out = tmp.path().join(format!("out{i}"));
        let mut all: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        all.push(format!("keep_original={keep_original}"));
        all.push("copies=2".into());
        let sets: Vec<&str> = all.iter().map(String::as_str).collect();
        let mut args = stage_args(kind, input.to_str().unwrap(), &out, &sets);
        args.extend(["--batch-size".into(), "16".into()]);
        ok_owned(&args);
        let what = format!("{kind} {sets:?}");
        let rows = read_rows(&out);
        let rejects = reject_ids(&out);
        let m = manifest(&out);
        assert_eq!(m["rows"].as_u64(), Some(rows.len() as u64), "{what}");
        assert_eq!(
            m["rows_rejected"].as_u64(),
            Some(rejects.len() as u64),
            "{what}"
        );
        assert_eq!(
            m["stages"]["input"]["rows_in"].as_u64(),
            Some(n as u64),
            "{what}"
        );
        let out_ids: HashSet<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(out_ids.len(), rows.len(), "{what}: an id written twice");
        let parents: HashSet<&str> = rows.iter().filter_map(|r| r.parent_id.as_deref()).collect();
        let rejected: HashSet<&str> = rejects.iter().flatten().map(String::as_str).collect();
        let null_id_rejects = rejects.iter().filter(|r| r.is_none()).count();
        assert_eq!(
            null_id_rejects,
            ids.iter().filter(|i| i.is_none()).count(),
            "{what}"
        );
        let mut missing = Vec::new();
        for id in ids.iter().flatten() {
            let found = out_ids.contains(id.as_str())
                || parents.contains(id.as_str())
                || rejected.contains(id.as_str());
            if !found {
                missing.push(id.clone());
            }
        }
        if every_row {
            assert!(
                missing.is_empty(),
                "{what}: {} input rows neither written nor rejected, e.g. {:?}; stages {}",
                missing.len(),
                missing.first(),
                m["stages"]
            );
        }
    }
    gen::say(&format!(
        "fuzz: end to end (keep_original={keep_original}): {n} hostile rows through each augmenter in {:.1} s",
        started.elapsed().as_secs_f64()
    ));
}

/// With originals kept, every row of a hostile corpus is written or rejected, by every
/// augmenter, and the manifest agrees with the files.
#[test]
fn every_augmenter_accounts_for_every_row_of_a_hostile_corpus() {
    run(true, true);
}

/// Without originals the manifest still agrees with the files.
#[test]
fn every_augmenter_without_originals_writes_what_its_manifest_says() {
    run(false, false);
}

/// Without originals too, no row vanishes: a row no operation applies to goes to the rejects.
#[test]
fn every_augmenter_without_originals_accounts_for_every_row() {
    run(false, true);
}
