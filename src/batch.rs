//! The unit of data flowing between stages, and the names of the columns every row carries.

use std::collections::BTreeMap;

use arrow::datatypes::Schema;
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};

/// Names of the provenance and content columns every row carries.
pub mod col {
    /// Unique row id: the input id for originals, `PARENT/STAGE/COPY` for augmented rows.
    pub const ID: &str = "id";
    /// The id of the original row an augmented row came from (null for originals).
    pub const PARENT_ID: &str = "parent_id";
    /// What made the row: `orig`, `synonym`, `perturb`, `shuffle`, ...
    pub const OP: &str = "op";
    /// A JSON object with the parameters of `op`.
    pub const OP_PARAMS: &str = "op_params";
    /// The seed the row was made with.
    pub const SEED: &str = "seed";
    /// The text.
    pub const TEXT: &str = "text";
    /// The gold label, when the corpus has one.
    pub const LABEL: &str = "label";
    /// Columns written by `retort` itself, in output order (the label follows when present).
    pub const PROVENANCE: [&str; 5] = [ID, PARENT_ID, OP, OP_PARAMS, SEED];
}

/// The `op` value of rows read from the input corpus.
pub const OP_ORIG: &str = "orig";

/// A batch of rows with its sequence number and the accounting of every stage it went through.
#[derive(Debug, Clone)]
pub struct Batch {
    /// The rows.
    pub data: RecordBatch,
    /// Position of the source batch this batch descends from; output order follows it.
    pub seq: u64,
    /// Per-stage accounting for the rows of this sequence number.
    pub ledger: Ledger,
}

/// One row that a stage could not process, kept with the reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reject {
    /// The stage that rejected the row.
    pub stage: String,
    /// Short machine-readable reason, e.g. `empty_text`.
    pub reason: String,
    /// Human-readable detail.
    pub detail: String,
    /// The row id, when it has one.
    pub id: Option<String>,
    /// The text, when it has one (kept whole: nothing is lost).
    pub text: Option<String>,
}

/// Row counts of one stage. Invariant: `rows_in == rows_changed + rows_unchanged + rows_rejected`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Tally {
    /// Rows the stage received (for a source: rows read).
    pub rows_in: u64,
    /// Input rows from which the stage made at least one new row.
    pub rows_changed: u64,
    /// Input rows passed on as they were, or to which no operation applied.
    pub rows_unchanged: u64,
    /// Input rows sent to the rejects with a reason.
    pub rows_rejected: u64,
    /// Requested copies that could not be made (no operation applied).
    pub copies_skipped: u64,
    /// Copies made but dropped because their text equalled the original or an earlier copy
    /// of the same row.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub copies_duplicate: u64,
    /// Rows written, by `op`.
    pub rows_out: BTreeMap<String, u64>,
    /// Rejected rows, by reason.
    pub rejected_by_reason: BTreeMap<String, u64>,
    /// Rows a stage made up (not input rows) and then dropped, by reason: e.g. generated
    /// texts that were empty, duplicates, or that the teacher did not confirm.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub generated_dropped: BTreeMap<String, u64>,
    /// Other totals a stage keeps, by name (e.g. `lm_positions` and `lm_label_bytes` of the
    /// `lm_teacher` stage, whose ratio is the bytes its soft labels take per token).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub counters: BTreeMap<String, u64>,
}

impl Tally {
    /// Adds another tally into this one.
    pub fn add(&mut self, other: &Tally) {
        self.rows_in += other.rows_in;
        self.rows_changed += other.rows_changed;
        self.rows_unchanged += other.rows_unchanged;
        self.rows_rejected += other.rows_rejected;
        self.copies_skipped += other.copies_skipped;
        self.copies_duplicate += other.copies_duplicate;
        for (k, v) in &other.rows_out {
            *self.rows_out.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.rejected_by_reason {
            *self.rejected_by_reason.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.generated_dropped {
            *self.generated_dropped.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.counters {
            *self.counters.entry(k.clone()).or_default() += v;
        }
    }

    /// Total rows written.
    pub fn rows_out_total(&self) -> u64 {
        self.rows_out.values().sum()
    }

    /// Whether every input row is accounted for.
    pub fn balanced(&self) -> bool {
        self.rows_in == self.rows_changed + self.rows_unchanged + self.rows_rejected
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// What one stage recorded for one emitted batch.
#[derive(Debug, Clone, Default)]
pub struct Entry {
    /// Row counts.
    pub tally: Tally,
    /// Rejected rows.
    pub rejects: Vec<Reject>,
}

/// Accounting carried along with a batch: one entry per (stage, emission number).
///
/// Where a stage's output reaches a sink along several paths, the sink sees the same entry
/// several times and counts it once, so totals are exact whatever the graph shape.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    entries: BTreeMap<(String, u64), std::sync::Arc<Entry>>,
}

impl Ledger {
    /// Records what `stage` did in its `emission`-th output batch.
    pub fn record(&mut self, stage: &str, emission: u64, entry: Entry) {
        self.entries
            .insert((stage.to_string(), emission), std::sync::Arc::new(entry));
    }

    /// Merges another ledger into this one (entries already present are kept once).
    pub fn merge(&mut self, other: &Ledger) {
        for (k, v) in &other.entries {
            self.entries.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }

    /// The entries, keyed by stage and emission number.
    pub fn entries(&self) -> impl Iterator<Item = (&(String, u64), &Entry)> {
        self.entries.iter().map(|(k, v)| (k, v.as_ref()))
    }
}

/// Counts the rows of `batch` by their `op` column (nothing when it has none).
pub fn count_ops(batch: &RecordBatch) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    let Some(ops) = batch
        .column_by_name(col::OP)
        .and_then(|c| c.as_any().downcast_ref::<arrow::array::StringArray>())
    else {
        return counts;
    };
    // Ops come in runs (an original, then its copies): add each run at once.
    let mut run: Option<(&str, u64)> = None;
    for op in ops.iter() {
        let op = op.unwrap_or("");
        match &mut run {
            Some((o, n)) if *o == op => *n += 1,
            _ => {
                if let Some((o, n)) = run.take() {
                    *counts.entry(o.to_string()).or_default() += n;
                }
                run = Some((op, 1));
            }
        }
    }
    if let Some((o, n)) = run {
        *counts.entry(o.to_string()).or_default() += n;
    }
    counts
}

/// The column names of `schema`, quoted and comma-separated, for error messages.
pub fn field_names(schema: &Schema) -> String {
    schema
        .fields()
        .iter()
        .map(|f| format!("`{}`", f.name()))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ledger_counts_shared_entries_once() {
        let mut a = Ledger::default();
        let t = Tally {
            rows_in: 3,
            ..Tally::default()
        };
        a.record(
            "src",
            0,
            Entry {
                tally: t.clone(),
                rejects: vec![],
            },
        );
        let b = a.clone();
        let mut merged = Ledger::default();
        merged.merge(&a);
        merged.merge(&b);
        assert_eq!(merged.entries().count(), 1);
        let mut total = Tally::default();
        for (_, e) in merged.entries() {
            total.add(&e.tally);
        }
        assert_eq!(total.rows_in, 3);
    }
}
