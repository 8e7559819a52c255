//! What one stage thread of the local executor does: a source's emit loop, a transform's
//! process loop and a sink's write loop, the deterministic merge of a stage's inputs by
//! sequence number, and the shared failure flag that stops every loop.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use crossbeam_channel::{Receiver, Sender};

use crate::batch::{Batch, Ledger, Tally};
use crate::error::{Error, Result};
use crate::stage::{Emit, Sink, Source, StageContext, Transform};

/// Merges a stage's input channels in (sequence, input position) order.
struct Merger {
    rx: Vec<Receiver<Batch>>,
    heads: Vec<Option<Batch>>,
    open: Vec<bool>,
}

impl Merger {
    fn new(rx: Vec<Receiver<Batch>>) -> Self {
        let n = rx.len();
        Merger {
            rx,
            heads: (0..n).map(|_| None).collect(),
            open: vec![true; n],
        }
    }

    fn next(&mut self) -> Option<Batch> {
        for i in 0..self.rx.len() {
            if self.open[i] && self.heads[i].is_none() {
                match self.rx[i].recv() {
                    Ok(b) => self.heads[i] = Some(b),
                    Err(_) => self.open[i] = false,
                }
            }
        }
        let pick = (0..self.heads.len())
            .filter(|&i| self.heads[i].is_some())
            .min_by_key(|&i| (self.heads[i].as_ref().map(|b| b.seq), i))?;
        self.heads[pick].take()
    }
}

/// Shared failure state: the first error wins and every stage is asked to stop.
#[derive(Default)]
pub struct Failure {
    abort: AtomicBool,
    first: Mutex<Option<Error>>,
}

impl Failure {
    /// Records `e` as stage `stage`'s failure (kept only if it is the first) and asks every
    /// stage to stop.
    pub fn record(&self, stage: &str, e: Error) {
        self.abort.store(true, Ordering::SeqCst);
        let mut first = self.first.lock().unwrap_or_else(|p| p.into_inner());
        if first.is_none() {
            *first = Some(e.context(format!("stage `{stage}`")));
        }
    }

    /// Whether a stage has failed.
    pub fn aborted(&self) -> bool {
        self.abort.load(Ordering::SeqCst)
    }

    /// The first failure, if any (taken: a second call returns `None`).
    pub fn take(&self) -> Option<Error> {
        self.first.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// Sends `batch` on every output edge; false when a receiver has gone (the run is stopping).
fn send_all(senders: &[Sender<Batch>], batch: Batch) -> bool {
    let Some((last, rest)) = senders.split_last() else {
        return true;
    };
    for s in rest {
        if s.send(batch.clone()).is_err() {
            return false;
        }
    }
    last.send(batch).is_ok()
}

/// Emits a source's batches, each with its ledger entry, until the source ends or the run
/// stops. Adds the source's own time to `busy`.
pub fn run_source(
    src: &mut dyn Source,
    cx: &mut StageContext,
    out: &[Sender<Batch>],
    failure: &Failure,
    bar: &indicatif::ProgressBar,
    busy: &mut Duration,
) -> Result<()> {
    let mut emission = 0u64;
    while !failure.aborted() {
        let t0 = Instant::now();
        let next = src.next_batch(cx)?;
        *busy += t0.elapsed();
        let Some(mut batch) = next else {
            break;
        };
        let entry = cx.take_entry();
        bar.inc(entry.tally.rows_in);
        let stage = cx.stage.clone();
        batch.ledger.record(&stage, emission, entry);
        emission += 1;
        if !send_all(out, batch) {
            break;
        }
    }
    Ok(())
}

fn concat(schema: &SchemaRef, batches: Vec<RecordBatch>) -> Result<RecordBatch> {
    match batches.len() {
        0 => Ok(RecordBatch::new_empty(schema.clone())),
        1 => Ok(batches.into_iter().next().expect("one batch")),
        _ => Ok(arrow::compute::concat_batches(schema, &batches)?),
    }
}

/// Runs a transform over its merged inputs: one output batch per input batch (or several,
/// when the transform flushes chunks early), with the same sequence number, then whatever `finish` emits as one batch after the last. Adds the
/// transform's own time to `busy`.
pub fn run_transform(
    t: &mut dyn Transform,
    schema: &SchemaRef,
    cx: &mut StageContext,
    inputs: Vec<Receiver<Batch>>,
    out: &[Sender<Batch>],
    failure: &Failure,
    busy: &mut Duration,
) -> Result<()> {
    let mut merger = Merger::new(inputs);
    let mut emission = 0u64;
    let mut last_seq = 0u64;
    while let Some(batch) = merger.next() {
        if failure.aborted() {
            return Ok(());
        }
        last_seq = batch.seq;
        let seq = batch.seq;
        // Chunks flushed early travel with the same sequence number and no ledger; the
        // batch sent last carries the ledger, so sinks count it once the whole batch is in.
        let mut forward = |data: RecordBatch| {
            let ledger = Ledger::default();
            send_all(out, Batch { data, seq, ledger })
        };
        let mut emit = Emit::streaming(&mut forward);
        let t0 = Instant::now();
        t.process(&batch, &mut emit, cx)?;
        let data = concat(schema, emit.take())?;
        *busy += t0.elapsed();
        let mut ledger = batch.ledger;
        let entry = cx.take_entry();
        ledger.record(&cx.stage, emission, entry);
        emission += 1;
        if !send_all(out, Batch { data, seq, ledger }) {
            return Ok(());
        }
    }
    let mut emit = Emit::default();
    let t0 = Instant::now();
    t.finish(&mut emit, cx)?;
    *busy += t0.elapsed();
    let extra = emit.take();
    let entry = cx.take_entry();
    if !extra.is_empty() || entry.tally != Tally::default() || !entry.rejects.is_empty() {
        let data = concat(schema, extra)?;
        let mut ledger = Ledger::default();
        ledger.record(&cx.stage, emission, entry);
        let seq = last_seq + 1;
        send_all(out, Batch { data, seq, ledger });
    }
    Ok(())
}

/// Writes a sink's merged inputs until they end or the run stops. The sink is finished later,
/// on the main thread, once every stage has succeeded. Adds the sink's own time to `busy`.
pub fn run_sink(
    sink: &mut dyn Sink,
    cx: &mut StageContext,
    inputs: Vec<Receiver<Batch>>,
    failure: &Failure,
    busy: &mut Duration,
) -> Result<()> {
    let mut merger = Merger::new(inputs);
    while let Some(batch) = merger.next() {
        if failure.aborted() {
            return Ok(());
        }
        let t0 = Instant::now();
        sink.write(batch, cx)?;
        *busy += t0.elapsed();
    }
    Ok(())
}
