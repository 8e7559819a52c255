//! Row accounting of an augmenter stage on hostile batches: the stage is built from its kind
//! as a pipeline builds it, and fed batches with null ids, null texts, chained parents and
//! hostile text, under every `copies` / `keep_original` setting. Every input row must come out
//! (as itself, or as the parent of its copies) or go to the rejects, and the stage's counts
//! must add up to what it wrote.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Int64Array, StringArray, UInt64Array};
use arrow::datatypes::{Field, Schema};
use arrow::record_batch::RecordBatch;
use rand::Rng;
use retort::batch::{Batch, Ledger};
use retort::registry;
use retort::stage::kind::{BuildContext, Built};
use retort::stage::{Emit, RunSettings, StageContext};

use super::gen::{self, campaign, show, Gen};
use crate::common::{available, Dep};

/// The augmenter kinds and a config of each (besides `copies` / `keep_original`).
fn configs(g: &mut Gen) -> (&'static str, toml::Table) {
    let mut choices: Vec<(&str, &str)> = vec![
        ("shuffle", ""),
        ("perturb", "mode = \"swap\""),
        ("perturb", "mode = \"delete\"\np = 0.3"),
        ("perturb", "mode = \"delete\"\np = 0.05"),
    ];
    if available(Dep::WordNet) {
        choices.extend([
            ("perturb", "mode = \"insert\"\nn = 2"),
            ("synonym", ""),
            ("synonym", "p = 0.5\nuse_pos = false"),
            ("eda", "alpha = 0.2"),
            ("eda", "eda_compat = true"),
        ]);
    }
    let (kind, keys) = choices[g.random_range(0..choices.len())];
    (kind, keys.parse().unwrap())
}

fn string_col(b: &RecordBatch, name: &str) -> StringArray {
    b.column_by_name(name)
        .unwrap()
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap()
        .clone()
}

/// A hostile input batch as a source (or an earlier stage) emits it.
fn input_batch(g: &mut Gen) -> RecordBatch {
    let n = g.random_range(0..40);
    let mut ids = Vec::with_capacity(n);
    let mut parents = Vec::with_capacity(n);
    let mut texts = Vec::with_capacity(n);
    for i in 0..n {
        ids.push((g.random_range(0..20) != 0).then(|| format!("r{i}\u{301}/é")));
        parents.push((g.random_range(0..5) == 0).then(|| format!("root{i}")));
        texts.push(match g.random_range(0..20) {
            0 => None,
            1..=4 => Some(gen::plain_text(g)),
            _ => Some(gen::text(g)),
        });
    }
    let ops: Vec<&str> = parents
        .iter()
        .map(|p| if p.is_some() { "perturb" } else { "orig" })
        .collect();
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("id", Arc::new(StringArray::from(ids)) as ArrayRef),
        (
            "parent_id",
            Arc::new(StringArray::from(parents)) as ArrayRef,
        ),
        ("op", Arc::new(StringArray::from(ops)) as ArrayRef),
        (
            "op_params",
            Arc::new(StringArray::from(vec!["{}"; n])) as ArrayRef,
        ),
        (
            "seed",
            Arc::new(UInt64Array::from(vec![7u64; n])) as ArrayRef,
        ),
        ("text", Arc::new(StringArray::from(texts)) as ArrayRef),
        (
            "label",
            Arc::new(Int64Array::from_iter(
                (0..n).map(|i| (i % 3 != 2).then_some(i as i64 % 2)),
            )) as ArrayRef,
        ),
    ];
    let schema = Schema::new(
        columns
            .iter()
            .map(|(name, a)| Field::new(*name, a.data_type().clone(), true))
            .collect::<Vec<_>>(),
    );
    RecordBatch::try_new(Arc::new(schema), columns.into_iter().map(|c| c.1).collect()).unwrap()
}

/// What a case checks.
#[derive(Clone, Copy, PartialEq)]
enum Check {
    /// The counts add up to the rows written and rejected.
    Counts,
    /// Also: every input row is in the output or in the rejects.
    EveryRow,
    /// Also: no row gets two equal copies.
    EveryRowNoDuplicates,
}

/// One case: a stage of a random augmenter kind with `keep_original` as given (random when
/// `None`) processes a hostile batch.
fn one_case(g: &mut Gen, keep_original: Option<bool>, check: Check) {
    let (kind_name, mut table) = configs(g);
    let keep = keep_original.unwrap_or_else(|| g.random());
    let copies: i64 = [0, 1, 1, 2, 3, 5][g.random_range(0..6)];
    if copies == 0 && !keep {
        return; // refused by the config: nothing would be written
    }
    table.insert("copies".into(), copies.into());
    table.insert("keep_original".into(), keep.into());
    let what = format!("{kind_name} {table:?}");
    let settings = RunSettings::with_seed(g.random());
    let stage = "aug";
    let cx = BuildContext {
        stage,
        settings: &settings,
        after_model: false,
    };
    let kind = registry::find(kind_name).unwrap();
    let Built::Transform(mut t): Built = kind.build(&table, &cx).unwrap() else {
        panic!("{kind_name} is not a transform");
    };
    let data = input_batch(g);
    let n = data.num_rows();
    t.output_schema(&data.schema()).unwrap();
    let pool = Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap(),
    );
    let mut scx = StageContext::new(stage, Arc::new(settings.clone()), pool);
    let mut out = Emit::default();
    let batch = Batch {
        data: data.clone(),
        seq: 0,
        ledger: Ledger::default(),
    };
    t.process(&batch, &mut out, &mut scx)
        .unwrap_or_else(|e| panic!("{what}: {}", e.render()));
    let entry = scx.take_entry();
    let tally = &entry.tally;
    let tally_json = serde_json::to_value(tally).unwrap();
    let written: Vec<RecordBatch> = out.take();
    let rows_out: usize = written.iter().map(RecordBatch::num_rows).sum();

    // The counts.
    assert_eq!(tally.rows_in, n as u64, "{what}");
    assert_eq!(
        tally.rows_changed + tally.rows_unchanged + tally.rows_rejected,
        tally.rows_in,
        "{what}: {tally_json}"
    );
    assert_eq!(
        tally.rows_out.values().sum::<u64>(),
        rows_out as u64,
        "{what}"
    );
    assert_eq!(entry.rejects.len() as u64, tally.rows_rejected, "{what}");

    let in_ids = string_col(&data, "id");
    let in_parents = string_col(&data, "parent_id");
    let in_texts = string_col(&data, "text");
    let mut out_rows: HashMap<String, (Option<String>, String)> = HashMap::new();
    for b in &written {
        assert_eq!(b.schema(), data.schema(), "{what}: the schema changed");
        let (ids, parents, texts) = (
            string_col(b, "id"),
            string_col(b, "parent_id"),
            string_col(b, "text"),
        );
        for i in 0..b.num_rows() {
            assert!(
                ids.is_valid(i) && texts.is_valid(i),
                "{what}: a null id or text was written"
            );
            let parent = parents.is_valid(i).then(|| parents.value(i).to_string());
            let dup = out_rows.insert(
                ids.value(i).to_string(),
                (parent, texts.value(i).to_string()),
            );
            assert!(dup.is_none(), "{what}: id {:?} written twice", ids.value(i));
        }
    }
    let rejected: Vec<Option<&str>> = entry.rejects.iter().map(|r| r.id.as_deref()).collect();
    let rejected_ids: HashSet<&str> = rejected.iter().flatten().copied().collect();
    let null_ids = (0..n).filter(|&i| in_ids.is_null(i)).count();
    assert_eq!(
        rejected.iter().filter(|r| r.is_none()).count(),
        null_ids,
        "{what}: rows with a null id must each be one reject without id"
    );

    let mut made = 0u64;
    let mut processed = 0u64;
    let mut eligible = 0u64;
    for i in 0..n {
        if in_ids.is_null(i) {
            continue;
        }
        let id = in_ids.value(i);
        let prefix = format!("{id}/{stage}/");
        let copies_of: Vec<&(Option<String>, String)> = out_rows
            .iter()
            .filter(|(k, _)| k.starts_with(&prefix))
            .map(|(_, v)| v)
            .collect();
        let rejected = rejected_ids.contains(id);
        let original = out_rows.get(id);
        if !rejected {
            processed += 1;
        }
        if in_texts.is_valid(i) {
            eligible += 1;
        }
        made += copies_of.len() as u64;
        assert!(
            copies_of.len() as i64 <= copies,
            "{what}: too many copies of {id}"
        );
        let root = if in_parents.is_valid(i) {
            in_parents.value(i)
        } else {
            id
        };
        for (parent, text) in &copies_of {
            assert_eq!(
                parent.as_deref(),
                Some(root),
                "{what}: parent of a copy of {id}"
            );
            assert!(in_texts.is_valid(i));
            assert_ne!(
                text,
                in_texts.value(i),
                "{what}: a copy of {id} equals its original"
            );
        }
        if keep && !rejected {
            let (_, text) = original.unwrap_or_else(|| panic!("{what}: original {id} missing"));
            assert_eq!(text, in_texts.value(i), "{what}: original {id} changed");
        }
        if rejected {
            assert!(
                original.is_none() && copies_of.is_empty(),
                "{what}: {id} rejected and written"
            );
        }
        let text = if in_texts.is_valid(i) {
            in_texts.value(i)
        } else {
            ""
        };
        if check != Check::Counts {
            assert!(
                rejected || original.is_some() || !copies_of.is_empty(),
                "{what}: input row {id} ({}) is neither in the output nor in the rejects; tally {tally_json}",
                show(text)
            );
        }
        if check == Check::EveryRowNoDuplicates {
            let texts: HashSet<&str> = copies_of.iter().map(|c| c.1.as_str()).collect();
            assert_eq!(
                texts.len(),
                copies_of.len(),
                "{what}: two equal copies of {id} ({})",
                show(text)
            );
        }
    }
    // Every requested copy of a row that was not rejected is made, skipped or (once the adapter
    // drops duplicates) counted as a duplicate; a rejected row's copies may be counted as skipped.
    let duplicate = tally_json["copies_duplicate"].as_u64().unwrap_or(0);
    let accounted = made + tally.copies_skipped + duplicate;
    assert!(
        copies as u64 * processed <= accounted && accounted <= copies as u64 * eligible,
        "{what}: {made} copies made, {} skipped, {duplicate} duplicate, for {copies} copies of {processed} rows; tally {tally_json}",
        tally.copies_skipped
    );
}

/// The counts of an augmenter stage add up, whatever the settings and the text.
#[test]
fn augment_stage_counts_add_up_on_hostile_batches() {
    campaign("augment stage counts", 150, |g, _| {
        one_case(g, None, Check::Counts)
    });
}

/// With `keep_original = true` every input row is in the output or in the rejects.
#[test]
fn augment_stage_keeps_every_row_with_originals() {
    campaign("augment stage rows (keep_original)", 100, |g, _| {
        one_case(g, Some(true), Check::EveryRow)
    });
}

/// With `keep_original = false` too, every input row is in the output (as the parent of its
/// copies) or in the rejects with a reason: rows no operation applies to must not vanish.
#[test]
fn augment_stage_keeps_every_row_without_originals() {
    campaign("augment stage rows (no originals)", 100, |g, _| {
        one_case(g, Some(false), Check::EveryRow)
    });
}

/// No row gets two equal copies (a duplicate copy is dropped and counted, not written).
#[test]
fn augment_stage_writes_no_duplicate_copies() {
    campaign("augment stage duplicate copies", 100, |g, _| {
        one_case(g, None, Check::EveryRowNoDuplicates)
    });
}
