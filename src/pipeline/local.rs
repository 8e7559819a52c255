//! The local executor: every stage of a plan on its own thread in this process, bounded
//! channels between them, a deterministic merge of each stage's inputs by sequence number.
//!
//! A run reads as its steps: [`LocalExecutor::execute`] builds the run identity and asks the
//! sinks where to start, wires one channel per edge, spawns the stage threads, collects their
//! failures, commits the sinks and summarises what each stage did.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::datatypes::SchemaRef;
use crossbeam_channel::{bounded, Receiver, Sender};

use crate::batch::{Batch, Tally};
use crate::error::{Error, Result};
use crate::io::hash_cache::HashCache;
use crate::pipeline::executor::{
    fingerprint, Executor, RunOptions, RunReads, RunReport, StageSummary,
};
use crate::pipeline::plan::Plan;
use crate::pipeline::stage_loop::{run_sink, run_source, run_transform, Failure};
use crate::stage::kind::Built;
use crate::stage::{
    RunIdentity, RunSettings, Sink, SinkReport, SinkStart, Source, StageContext, Transform,
};

/// Batches buffered on each edge of the graph: memory stays flat whatever the corpus size.
const CHANNEL_BATCHES: usize = 4;

/// Runs a plan in this process, one thread per stage.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalExecutor;

impl Executor for LocalExecutor {
    fn execute(
        &self,
        mut plan: Plan,
        settings: Arc<RunSettings>,
        opts: &RunOptions,
    ) -> Result<RunReport> {
        let started = Instant::now();
        let pool = worker_pool(settings.threads)?;
        let mut stages = take_stages(&mut plan);
        let identity = run_identity(&plan, &settings, &stages, opts)?;
        let start = start_sinks(&plan, &mut stages, &identity)?;
        let (busy, finished) = if start.all_done {
            (vec![Duration::ZERO; stages.len()], sinks_of(stages))
        } else {
            let bar = crate::progress::bar(total_rows(&stages), "rows", opts.progress);
            position_sources(&mut stages, start.resume);
            let failure = Failure::default();
            let wires = wire_channels(&plan);
            let labels = labels(&plan);
            let threads = StageThreads {
                labels: &labels,
                settings: &settings,
                pool: &pool,
                failure: &failure,
                bar: &bar,
            };
            let outcomes = threads.run(stages, wires);
            bar.finish_and_clear();
            collect_failures(&failure, outcomes, plan.stages.len())?
        };
        let sinks = commit_sinks(&plan, finished, &settings, &pool)?;
        Ok(RunReport {
            pipeline: plan.name.clone(),
            up_to_date: start.all_done,
            fingerprint: identity.fingerprint,
            seconds: started.elapsed().as_secs_f64(),
            stages: summarise(&plan, &busy, &sinks),
            sinks: sinks.into_iter().map(|(_, report)| report).collect(),
        })
    }
}

/// A built stage, moved out of the plan to run on its thread.
enum Running {
    Source(Box<dyn Source>),
    Transform(Box<dyn Transform>),
    Sink(Box<dyn Sink>),
}

/// What a stage thread hands back: its position, busy time and, for a sink, the sink itself
/// (finished on the main thread once every stage has succeeded). `None` when it panicked.
type StageOutcome = Option<(usize, Duration, Option<Box<dyn Sink>>)>;

/// A sink waiting for its commit, with its position in the plan.
type FinishedSink = (usize, Box<dyn Sink>);

/// The input and output edges of one stage.
type Wires = (Vec<Sender<Batch>>, Vec<Receiver<Batch>>);

/// The rayon pool of `threads` workers that stages use for work inside a batch.
fn worker_pool(threads: usize) -> Result<Arc<rayon::ThreadPool>> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .thread_name(|i| format!("retort-worker-{i}"))
        .build()
        .map_err(|e| Error::runtime("cannot start worker threads").with_source(e))?;
    Ok(Arc::new(pool))
}

/// Moves the built stages out of the plan, in plan order.
fn take_stages(plan: &mut Plan) -> Vec<Running> {
    plan.stages
        .iter_mut()
        .map(
            |s| match s.built.take().expect("plan stages are built once") {
                Built::Source(x) => Running::Source(x),
                Built::Transform(x) => Running::Transform(x),
                Built::Sink(x) => Running::Sink(x),
            },
        )
        .collect()
}

/// The run's identity: its fingerprints (with the content of the sources' input files and of
/// the models the stages load) and resolved config.
fn run_identity(
    plan: &Plan,
    settings: &RunSettings,
    stages: &[Running],
    opts: &RunOptions,
) -> Result<RunIdentity> {
    let cache = HashCache::in_cache_dir();
    let mut reads = RunReads::default();
    for (s, st) in stages.iter().zip(&plan.stages) {
        let models = match s {
            Running::Source(src) => {
                reads.inputs.push(src.input_identity());
                continue;
            }
            Running::Transform(t) => t.model_paths(),
            Running::Sink(k) => k.model_paths(),
        };
        reads.add_models(&st.id, &models, &cache)?;
    }
    let fp = fingerprint(plan, settings, &reads);
    Ok(RunIdentity {
        fingerprint: fp.run,
        config_fingerprint: fp.config,
        config: plan.config.clone(),
        pipeline: plan.name.clone(),
        force: opts.force,
        verify: opts.verify,
    })
}

/// Where the sinks said the run starts.
struct Start {
    /// The lowest sequence number a sink still needs, when one needs any.
    resume: Option<u64>,
    /// Every sink is already complete: nothing runs.
    all_done: bool,
}

/// Asks every sink where to start (done, or from which sequence number).
fn start_sinks(plan: &Plan, stages: &mut [Running], identity: &RunIdentity) -> Result<Start> {
    let mut start = Start {
        resume: None,
        all_done: true,
    };
    for (i, s) in stages.iter_mut().enumerate() {
        let Running::Sink(sink) = s else { continue };
        let st = &plan.stages[i];
        let from = sink
            .start(identity, &st.schema)
            .map_err(|e| e.context(format!("stage `{}`", st.id)))?;
        if let SinkStart::From(seq) = from {
            start.all_done = false;
            start.resume = Some(start.resume.map_or(seq, |r| r.min(seq)));
        }
    }
    Ok(start)
}

/// Rows the sources will read (for the progress bar).
fn total_rows(stages: &[Running]) -> u64 {
    stages
        .iter()
        .filter_map(|s| match s {
            Running::Source(src) => src.total_rows(),
            _ => None,
        })
        .sum()
}

/// Lets the sources skip what every sink has committed, unless a transform must see every
/// batch (then the sinks skip the sequence numbers they already hold).
fn position_sources(stages: &mut [Running], resume: Option<u64>) {
    let rereads = stages
        .iter()
        .any(|s| matches!(s, Running::Transform(t) if t.needs_every_batch()));
    let Some(seq) = resume.filter(|_| !rereads) else {
        return;
    };
    for s in stages.iter_mut() {
        if let Running::Source(src) = s {
            src.skip_to(seq);
        }
    }
}

/// One bounded channel per edge of the graph: per stage, its output senders and input
/// receivers (in the order its inputs are written).
fn wire_channels(plan: &Plan) -> Vec<Wires> {
    let mut wires: Vec<Wires> = (0..plan.stages.len()).map(|_| (vec![], vec![])).collect();
    for (i, st) in plan.stages.iter().enumerate() {
        for &j in &st.inputs {
            let (tx, rx) = bounded(CHANNEL_BATCHES);
            wires[j].0.push(tx);
            wires[i].1.push(rx);
        }
    }
    wires
}

/// What a stage thread needs to know about its stage (the plan itself stays on the main
/// thread: its built stages cannot be shared).
struct Label {
    id: String,
    schema: SchemaRef,
}

fn labels(plan: &Plan) -> Vec<Label> {
    plan.stages
        .iter()
        .map(|st| Label {
            id: st.id.clone(),
            schema: st.schema.clone(),
        })
        .collect()
}

/// What every stage thread shares.
struct StageThreads<'a> {
    labels: &'a [Label],
    settings: &'a Arc<RunSettings>,
    pool: &'a Arc<rayon::ThreadPool>,
    failure: &'a Failure,
    bar: &'a indicatif::ProgressBar,
}

impl StageThreads<'_> {
    /// Spawns one thread per stage and waits for all of them.
    fn run(&self, stages: Vec<Running>, wires: Vec<Wires>) -> Vec<StageOutcome> {
        std::thread::scope(|scope| {
            let handles: Vec<_> = stages
                .into_iter()
                .zip(wires)
                .enumerate()
                .map(|(i, (stage, wires))| {
                    std::thread::Builder::new()
                        .name(format!("stage-{}", self.labels[i].id))
                        .spawn_scoped(scope, move || self.run_stage(i, stage, wires))
                        .expect("spawn stage thread")
                })
                .collect();
            handles.into_iter().map(|h| h.join().ok()).collect()
        })
    }

    /// The body of stage `i`'s thread: runs its loop and records its failure.
    fn run_stage(
        &self,
        i: usize,
        stage: Running,
        (tx, rx): Wires,
    ) -> (usize, Duration, Option<Box<dyn Sink>>) {
        let st = &self.labels[i];
        let mut cx = StageContext::new(&st.id, self.settings.clone(), self.pool.clone());
        let mut busy = Duration::ZERO;
        let mut kept_sink = None;
        let failure = self.failure;
        let result = match stage {
            Running::Source(mut src) => {
                run_source(src.as_mut(), &mut cx, &tx, failure, self.bar, &mut busy)
            }
            Running::Transform(mut t) => {
                let schema = &st.schema;
                run_transform(t.as_mut(), schema, &mut cx, rx, &tx, failure, &mut busy)
            }
            Running::Sink(mut sink) => {
                let r = run_sink(sink.as_mut(), &mut cx, rx, failure, &mut busy);
                kept_sink = Some(sink);
                r
            }
        };
        drop(tx);
        if let Err(e) = result {
            failure.record(&st.id, e);
        }
        (i, busy, kept_sink)
    }
}

/// The first failure of the run, if any; otherwise each stage's busy time and the sinks to
/// commit.
fn collect_failures(
    failure: &Failure,
    outcomes: Vec<StageOutcome>,
    stages: usize,
) -> Result<(Vec<Duration>, Vec<FinishedSink>)> {
    if outcomes.iter().any(Option::is_none) {
        failure.record("?", Error::runtime("a stage thread panicked"));
    }
    if let Some(e) = failure.take() {
        return Err(e);
    }
    let mut busy = vec![Duration::ZERO; stages];
    let mut sinks = Vec::new();
    for (i, d, sink) in outcomes.into_iter().flatten() {
        busy[i] = d;
        if let Some(sink) = sink {
            sinks.push((i, sink));
        }
    }
    Ok((busy, sinks))
}

/// The sinks of a run where nothing needed to run.
fn sinks_of(stages: Vec<Running>) -> Vec<FinishedSink> {
    stages
        .into_iter()
        .enumerate()
        .filter_map(|(i, s)| match s {
            Running::Sink(sink) => Some((i, sink)),
            _ => None,
        })
        .collect()
}

/// Commits every sink: its last part and its manifest. Reports are in plan order.
fn commit_sinks(
    plan: &Plan,
    finished: Vec<FinishedSink>,
    settings: &Arc<RunSettings>,
    pool: &Arc<rayon::ThreadPool>,
) -> Result<Vec<(usize, SinkReport)>> {
    finished
        .into_iter()
        .map(|(i, sink)| {
            let id = &plan.stages[i].id;
            let mut cx = StageContext::new(id, settings.clone(), pool.clone());
            let report = sink
                .finish(&mut cx)
                .map_err(|e| e.context(format!("stage `{id}`")))?;
            Ok((i, report))
        })
        .collect()
}

/// Per-stage lines of the report: a sink's own row count, every other stage's tally as the
/// sinks recorded it, and the busy time of this run.
fn summarise(plan: &Plan, busy: &[Duration], sinks: &[(usize, SinkReport)]) -> Vec<StageSummary> {
    let mut tallies: BTreeMap<String, Tally> = BTreeMap::new();
    for (i, r) in sinks {
        // A sink writes every row it receives.
        let tally = Tally {
            rows_in: r.rows,
            rows_unchanged: r.rows,
            rows_out: r.rows_by_op.clone(),
            ..Tally::default()
        };
        tallies.insert(plan.stages[*i].id.clone(), tally);
    }
    for (_, r) in sinks {
        for (stage, t) in &r.stages {
            tallies.entry(stage.clone()).or_insert_with(|| t.clone());
        }
    }
    plan.stages
        .iter()
        .zip(busy)
        .map(|(st, busy)| {
            let tally = tallies.get(&st.id).cloned().unwrap_or_default();
            let secs = busy.as_secs_f64();
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
        .collect()
}
