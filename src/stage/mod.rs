//! The three roles a stage can play (source, transform, sink) and what they share at run time.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use serde::Serialize;

pub mod kind;

use crate::batch::{Batch, Entry, Reject, Tally};
use crate::error::Result;

/// Settings of one run that every stage may need, fixed before any data flows.
#[derive(Debug, Clone, Serialize)]
pub struct RunSettings {
    /// The pipeline seed.
    pub seed: u64,
    /// Which shard of the input this run processes: `(index, count)`, index from 0.
    pub shard: Option<(u32, u32)>,
    /// Rows per batch read from the input.
    pub batch_size: usize,
    /// Worker threads for data-parallel work inside a stage.
    pub threads: usize,
    /// Where model stages run and at which precision (`--device`, `--precision`).
    pub placement: crate::models::device::Placement,
    /// Read input folders of unfinished runs too (`--allow-incomplete`).
    pub allow_incomplete: bool,
}

impl RunSettings {
    /// Settings for planning or running with `seed`: unsharded, 1,024-row batches, one worker
    /// thread, on the CPU. Callers change what they need with struct update syntax.
    pub fn with_seed(seed: u64) -> Self {
        RunSettings {
            seed,
            shard: None,
            batch_size: 1024,
            threads: 1,
            placement: Default::default(),
            allow_incomplete: false,
        }
    }

    /// Opens the device model stages run on, with the inference dtype resolved on it.
    pub fn compute(&self) -> crate::error::Result<crate::models::device::Compute> {
        self.placement.open()
    }

    /// The file-name tag of this shard, e.g. `shard-0001-of-0004`, or `None` when unsharded.
    pub fn shard_tag(&self) -> Option<String> {
        self.shard
            .map(|(i, n)| format!("shard-{:04}-of-{:04}", i + 1, n))
    }
}

/// What a sink needs to know to decide whether to resume, skip, or refuse an output folder.
#[derive(Debug, Clone)]
pub struct RunIdentity {
    /// Hash of everything that decides the output: resolved config, seed, shard, batch size,
    /// and the content of the inputs and model files.
    pub fingerprint: String,
    /// Hash of the configuration part alone (no file content): an output with the same
    /// configuration but another fingerprint is stale (its inputs or models changed) and is
    /// written again; one of another configuration is refused unless `--force`.
    pub config_fingerprint: String,
    /// The resolved pipeline, recorded in the manifest.
    pub config: serde_json::Value,
    /// Name of the pipeline.
    pub pipeline: String,
    /// Overwrite whatever a previous run left (`--force`).
    pub force: bool,
    /// Check every file of a finished output against its SHA-256 before calling it up to date
    /// (`--verify`).
    pub verify: bool,
}

/// Where a sink stands before the run starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkStart {
    /// A finished run with the same fingerprint is already there: nothing to do.
    Done,
    /// Start (or resume) at this sequence number; earlier ones are committed.
    From(u64),
}

/// Per-stage context handed to every call: identity, settings and the accounting of the
/// batch being processed.
pub struct StageContext {
    /// The stage id (its table name in the pipeline file).
    pub stage: String,
    /// Run settings.
    pub settings: Arc<RunSettings>,
    /// Thread pool for data-parallel work inside this stage.
    pub pool: Arc<rayon::ThreadPool>,
    /// Accounting of the batch being processed; the executor takes it after each call.
    pub entry: Entry,
}

impl StageContext {
    /// Creates a context for `stage`.
    pub fn new(stage: &str, settings: Arc<RunSettings>, pool: Arc<rayon::ThreadPool>) -> Self {
        StageContext {
            stage: stage.to_string(),
            settings,
            pool,
            entry: Entry::default(),
        }
    }

    /// Counts of the batch being processed.
    pub fn tally(&mut self) -> &mut Tally {
        &mut self.entry.tally
    }

    /// Sends one row to the rejects with a reason.
    pub fn reject(
        &mut self,
        reason: &str,
        detail: String,
        id: Option<String>,
        text: Option<String>,
    ) {
        self.entry.tally.rows_rejected += 1;
        *self
            .entry
            .tally
            .rejected_by_reason
            .entry(reason.to_string())
            .or_default() += 1;
        self.entry.rejects.push(Reject {
            stage: self.stage.clone(),
            reason: reason.to_string(),
            detail,
            id,
            text,
        });
    }

    /// Takes the accounting recorded since the last call.
    pub fn take_entry(&mut self) -> Entry {
        std::mem::take(&mut self.entry)
    }
}

/// Output collector of a transform: every batch emitted for one input batch.
///
/// The executor may give it a way to send batches downstream before the transform returns
/// ([`Emit::streaming`]), so that a transform making many rows from one input batch (an
/// augmenter with `copies = 1000`) holds one chunk in memory rather than all of them.
#[derive(Default)]
pub struct Emit<'a> {
    batches: Vec<RecordBatch>,
    forward: Option<&'a mut dyn FnMut(RecordBatch) -> bool>,
}

impl<'a> Emit<'a> {
    /// A collector whose [`Emit::flush`] hands batches to `forward` (which returns false once
    /// the run is stopping).
    pub fn streaming(forward: &'a mut dyn FnMut(RecordBatch) -> bool) -> Self {
        Emit {
            batches: Vec::new(),
            forward: Some(forward),
        }
    }

    /// Emits a batch of rows.
    pub fn push(&mut self, batch: RecordBatch) {
        self.batches.push(batch);
    }

    /// Sends what was emitted so far downstream now, when the executor streams; otherwise
    /// keeps it. Returns false when the run is stopping (the transform may return early).
    pub fn flush(&mut self) -> bool {
        let Some(forward) = self.forward.as_mut() else {
            return true;
        };
        for batch in std::mem::take(&mut self.batches) {
            if batch.num_rows() > 0 && !forward(batch) {
                return false;
            }
        }
        true
    }

    /// Takes what was emitted and not yet flushed.
    pub fn take(&mut self) -> Vec<RecordBatch> {
        std::mem::take(&mut self.batches)
    }
}

/// Produces batches, numbered from 0 by `seq`.
pub trait Source: Send {
    /// Schema of every batch this source produces.
    fn schema(&self) -> SchemaRef;
    /// The next batch, or `None` at the end.
    fn next_batch(&mut self, cx: &mut StageContext) -> Result<Option<Batch>>;
    /// Skips every batch before `seq` (used to resume a crashed run).
    fn skip_to(&mut self, seq: u64);
    /// Total input rows, when known (for progress).
    fn total_rows(&self) -> Option<u64> {
        None
    }
    /// A description of the inputs (names, sizes) that enters the run fingerprint.
    fn input_identity(&self) -> String;
}

/// Turns batches into batches.
pub trait Transform: Send {
    /// Schema of the output, given the input schema; errors name missing columns.
    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef>;
    /// Processes one batch.
    fn process(&mut self, batch: &Batch, out: &mut Emit, cx: &mut StageContext) -> Result<()>;
    /// Whether the stage's output depends on every input batch (it emits rows in `finish`
    /// drawn from all of them). A resumed run then reads the input again from the start;
    /// sinks skip what they already committed.
    fn needs_every_batch(&self) -> bool {
        false
    }
    /// The model files or folders the stage loaded (teacher, LM, Marian pair, ...): their
    /// content enters the run fingerprint, so a retrained model makes the output stale.
    fn model_paths(&self) -> Vec<std::path::PathBuf> {
        Vec::new()
    }
    /// Called once after the last batch.
    fn finish(&mut self, _out: &mut Emit, _cx: &mut StageContext) -> Result<()> {
        Ok(())
    }
}

/// What a sink wrote.
#[derive(Debug, Clone, Serialize)]
pub struct SinkReport {
    /// Output folder.
    pub path: String,
    /// Rows in the committed output.
    pub rows: u64,
    /// Part files.
    pub files: usize,
    /// Whether nothing was done because the output was already complete.
    pub up_to_date: bool,
    /// Rows written, by `op`.
    pub rows_by_op: std::collections::BTreeMap<String, u64>,
    /// Per-stage totals, as written to the manifest.
    pub stages: std::collections::BTreeMap<String, Tally>,
}

/// Consumes batches and commits them somewhere.
pub trait Sink: Send {
    /// Checks the sink can store rows of this schema.
    fn accepts(&self, input: &SchemaRef) -> Result<()>;
    /// Inspects the output location before the run and says where to start.
    fn start(&mut self, run: &RunIdentity, schema: &SchemaRef) -> Result<SinkStart>;
    /// Writes one batch.
    fn write(&mut self, batch: Batch, cx: &mut StageContext) -> Result<()>;
    /// Commits everything and writes the manifest.
    fn finish(self: Box<Self>, cx: &mut StageContext) -> Result<SinkReport>;
    /// The model files or folders the sink loads (`train`'s `init`), as for
    /// [`Transform::model_paths`].
    fn model_paths(&self) -> Vec<std::path::PathBuf> {
        Vec::new()
    }
}
