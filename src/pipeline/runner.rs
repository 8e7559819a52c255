//! Runs a plan: one thread per stage, bounded channels between them, a deterministic merge
//! of each stage's inputs by sequence number.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use crossbeam_channel::{bounded, Receiver, Sender};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::batch::{Batch, Ledger, Tally};
use crate::error::{Error, Result};
use crate::pipeline::plan::Plan;
use crate::stage::kind::Built;
use crate::stage::{
    Emit, RunIdentity, RunSettings, Sink, SinkReport, SinkStart, Source, StageContext, Transform,
};

/// Batches buffered on each edge of the graph: memory stays flat whatever the corpus size.
const CHANNEL_BATCHES: usize = 4;

/// How a run reports to the terminal.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Show a progress bar (only on a terminal).
    pub progress: bool,
    /// Overwrite what a previous, different run left in the output folders.
    pub force: bool,
}

/// Per-stage line of the run summary.
#[derive(Debug, Clone, Serialize)]
pub struct StageSummary {
    /// Stage id.
    pub stage: String,
    /// Stage kind.
    pub kind: String,
    /// Row counts (over the whole output, including parts committed by an earlier attempt).
    pub tally: Tally,
    /// Seconds the stage spent in its own work in this run (not waiting on channels). For a
    /// sink, the final commit on the main thread is not included.
    pub busy_seconds: f64,
    /// Input rows per busy second in this run.
    pub rows_per_second: f64,
}

/// What a run did.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// Pipeline name.
    pub pipeline: String,
    /// True when every sink was already complete and nothing ran.
    pub up_to_date: bool,
    /// Fingerprint of the run.
    pub fingerprint: String,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Per-stage summary, in plan order.
    pub stages: Vec<StageSummary>,
    /// What each sink wrote.
    pub sinks: Vec<SinkReport>,
}

/// Hash of everything that decides a run's output.
pub fn fingerprint(plan: &Plan, settings: &RunSettings, inputs: &[String]) -> String {
    let doc = serde_json::json!({
        "tool": env!("CARGO_PKG_VERSION"),
        "config": plan.config,
        "seed": plan.seed,
        "shard": settings.shard,
        "batch_size": settings.batch_size,
        "inputs": inputs,
        // Model stages compute differently on a GPU or at another precision.
        "numerics": plan
            .stages
            .iter()
            .any(|s| s.kind.needs().models)
            .then(|| settings.placement.numerics()),
    });
    let digest = Sha256::digest(doc.to_string().as_bytes());
    hex::encode(&digest[..16])
}

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
struct Failure {
    abort: AtomicBool,
    first: Mutex<Option<Error>>,
}

impl Failure {
    fn record(&self, stage: &str, e: Error) {
        self.abort.store(true, Ordering::SeqCst);
        let mut first = self.first.lock().unwrap_or_else(|p| p.into_inner());
        if first.is_none() {
            *first = Some(e.context(format!("stage `{stage}`")));
        }
    }
    fn aborted(&self) -> bool {
        self.abort.load(Ordering::SeqCst)
    }
}

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

fn run_source(
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

fn run_transform(
    t: &mut dyn Transform,
    schema: &SchemaRef,
    cx: &mut StageContext,
    inputs: Vec<Receiver<Batch>>,
    out: &[Sender<Batch>],
    failure: &Failure,
    busy: &mut Duration,
) -> Result<()> {
    let mut merger = Merger::new(inputs);
    let mut emit = Emit::default();
    let mut emission = 0u64;
    let mut last_seq = 0u64;
    while let Some(batch) = merger.next() {
        if failure.aborted() {
            return Ok(());
        }
        last_seq = batch.seq;
        let t0 = Instant::now();
        t.process(&batch, &mut emit, cx)?;
        let data = concat(schema, emit.take())?;
        *busy += t0.elapsed();
        let mut ledger = batch.ledger;
        let entry = cx.take_entry();
        ledger.record(&cx.stage, emission, entry);
        emission += 1;
        if !send_all(
            out,
            Batch {
                data,
                seq: batch.seq,
                ledger,
            },
        ) {
            return Ok(());
        }
    }
    let t0 = Instant::now();
    t.finish(&mut emit, cx)?;
    *busy += t0.elapsed();
    let extra = emit.take();
    let entry = cx.take_entry();
    if !extra.is_empty() || entry.tally != Tally::default() || !entry.rejects.is_empty() {
        let data = concat(schema, extra)?;
        let mut ledger = Ledger::default();
        ledger.record(&cx.stage, emission, entry);
        send_all(
            out,
            Batch {
                data,
                seq: last_seq + 1,
                ledger,
            },
        );
    }
    Ok(())
}

fn run_sink(
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

/// What a stage thread hands back: its position, busy time and, for a sink, the sink itself
/// (finished on the main thread once every stage has succeeded).
type StageOutcome = (usize, Duration, Option<Box<dyn Sink>>);

enum Running {
    Source(Box<dyn Source>),
    Transform(Box<dyn Transform>),
    Sink(Box<dyn Sink>),
}

/// Runs a validated plan to completion.
pub fn run(mut plan: Plan, settings: Arc<RunSettings>, opts: &RunOptions) -> Result<RunReport> {
    let started = Instant::now();
    let pool = Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(settings.threads.max(1))
            .thread_name(|i| format!("retort-worker-{i}"))
            .build()
            .map_err(|e| Error::runtime("cannot start worker threads").with_source(e))?,
    );
    let mut stages: Vec<Running> = plan
        .stages
        .iter_mut()
        .map(
            |s| match s.built.take().expect("plan stages are built once") {
                Built::Source(x) => Running::Source(x),
                Built::Transform(x) => Running::Transform(x),
                Built::Sink(x) => Running::Sink(x),
            },
        )
        .collect();

    let inputs: Vec<String> = stages
        .iter()
        .filter_map(|s| match s {
            Running::Source(src) => Some(src.input_identity()),
            _ => None,
        })
        .collect();
    let identity = RunIdentity {
        fingerprint: fingerprint(&plan, &settings, &inputs),
        config: plan.config.clone(),
        pipeline: plan.name.clone(),
        force: opts.force,
    };

    // Ask every sink where to start.
    let mut resume: Option<u64> = None;
    let mut all_done = true;
    for (i, s) in stages.iter_mut().enumerate() {
        if let Running::Sink(sink) = s {
            match sink
                .start(&identity, &plan.stages[i].schema)
                .map_err(|e| e.context(format!("stage `{}`", plan.stages[i].id)))?
            {
                SinkStart::Done => {}
                SinkStart::From(seq) => {
                    all_done = false;
                    resume = Some(resume.map_or(seq, |r: u64| r.min(seq)));
                }
            }
        }
    }
    let total_rows: u64 = stages
        .iter()
        .filter_map(|s| match s {
            Running::Source(src) => src.total_rows(),
            _ => None,
        })
        .sum();
    let bar = crate::progress::bar(total_rows, "rows", opts.progress && !all_done);
    let rereads = stages
        .iter()
        .any(|s| matches!(s, Running::Transform(t) if t.needs_every_batch()));
    if let Some(seq) = resume.filter(|_| !rereads) {
        for s in stages.iter_mut() {
            if let Running::Source(src) = s {
                src.skip_to(seq);
            }
        }
    }

    let failure = Failure::default();
    let mut busy: Vec<Duration> = vec![Duration::ZERO; stages.len()];
    let mut finished_sinks: Vec<(usize, Box<dyn Sink>)> = Vec::new();
    if !all_done {
        // One channel per edge.
        let mut senders: Vec<Vec<Sender<Batch>>> = (0..stages.len()).map(|_| vec![]).collect();
        let mut receivers: Vec<Vec<Receiver<Batch>>> = (0..stages.len()).map(|_| vec![]).collect();
        for (i, st) in plan.stages.iter().enumerate() {
            for &j in &st.inputs {
                let (tx, rx) = bounded(CHANNEL_BATCHES);
                senders[j].push(tx);
                receivers[i].push(rx);
            }
        }
        let results: Vec<StageOutcome> = std::thread::scope(|scope| {
            let mut handles = Vec::new();
            for (i, (stage, (tx, rx))) in stages
                .drain(..)
                .zip(senders.into_iter().zip(receivers))
                .enumerate()
            {
                let id = plan.stages[i].id.clone();
                let schema = plan.stages[i].schema.clone();
                let (settings, pool, failure, bar) =
                    (settings.clone(), pool.clone(), &failure, &bar);
                let handle = std::thread::Builder::new()
                    .name(format!("stage-{id}"))
                    .spawn_scoped(scope, move || {
                        let mut cx = StageContext::new(&id, settings, pool);
                        let mut busy = Duration::ZERO;
                        let mut kept_sink = None;
                        let result = match stage {
                            Running::Source(mut src) => {
                                run_source(src.as_mut(), &mut cx, &tx, failure, bar, &mut busy)
                            }
                            Running::Transform(mut t) => run_transform(
                                t.as_mut(),
                                &schema,
                                &mut cx,
                                rx,
                                &tx,
                                failure,
                                &mut busy,
                            ),
                            Running::Sink(mut sink) => {
                                let r = run_sink(sink.as_mut(), &mut cx, rx, failure, &mut busy);
                                kept_sink = Some(sink);
                                r
                            }
                        };
                        drop(tx);
                        if let Err(e) = result {
                            failure.record(&id, e);
                        }
                        (i, busy, kept_sink)
                    })
                    .expect("spawn stage thread");
                handles.push(handle);
            }
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| (usize::MAX, Duration::ZERO, None))
                })
                .collect()
        });
        bar.finish_and_clear();
        if results.iter().any(|r| r.0 == usize::MAX) {
            failure.record("?", Error::runtime("a stage thread panicked"));
        }
        if let Some(e) = failure
            .first
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            return Err(e);
        }
        for (i, d, sink) in results {
            busy[i] = d;
            if let Some(sink) = sink {
                finished_sinks.push((i, sink));
            }
        }
    } else {
        for (i, s) in stages.into_iter().enumerate() {
            if let Running::Sink(sink) = s {
                finished_sinks.push((i, sink));
            }
        }
    }

    // Commit: every sink writes its last part and its manifest.
    let mut sinks = Vec::new();
    let sink_ids: Vec<usize> = finished_sinks.iter().map(|(i, _)| *i).collect();
    for (i, sink) in finished_sinks {
        let mut cx = StageContext::new(&plan.stages[i].id, settings.clone(), pool.clone());
        let report = sink
            .finish(&mut cx)
            .map_err(|e| e.context(format!("stage `{}`", plan.stages[i].id)))?;
        sinks.push(report);
    }

    let mut tallies: BTreeMap<String, Tally> = BTreeMap::new();
    for (r, i) in sinks.iter().zip(&sink_ids) {
        // A sink writes every row it receives.
        let rows = r.rows;
        tallies.insert(
            plan.stages[*i].id.clone(),
            Tally {
                rows_in: rows,
                rows_unchanged: rows,
                rows_out: r.rows_by_op.clone(),
                ..Tally::default()
            },
        );
    }
    for r in &sinks {
        for (stage, t) in &r.stages {
            tallies.entry(stage.clone()).or_insert_with(|| t.clone());
        }
    }
    let stages = plan
        .stages
        .iter()
        .enumerate()
        .map(|(i, st)| {
            let tally = tallies.get(&st.id).cloned().unwrap_or_default();
            let secs = busy[i].as_secs_f64();
            StageSummary {
                stage: st.id.clone(),
                kind: st.kind.name().to_string(),
                rows_per_second: if secs > 0.0 {
                    tally.rows_in as f64 / secs
                } else {
                    0.0
                },
                tally,
                busy_seconds: secs,
            }
        })
        .collect();
    Ok(RunReport {
        pipeline: plan.name.clone(),
        up_to_date: all_done,
        fingerprint: identity.fingerprint,
        seconds: started.elapsed().as_secs_f64(),
        stages,
        sinks,
    })
}
