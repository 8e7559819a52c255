//! The executor seam: planning a run ([`crate::pipeline::plan`]) is separate from executing
//! it. An [`Executor`] takes a validated plan and runs it to completion; what it returns
//! ([`RunReport`]) and how a run is identified ([`fingerprint`]) are the same whoever runs it.

use std::sync::Arc;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::batch::Tally;
use crate::error::Result;
use crate::pipeline::plan::Plan;
use crate::stage::{RunSettings, SinkReport};

/// Runs a validated plan to completion.
///
/// [`crate::pipeline::local::LocalExecutor`] runs every stage of the plan in this process, one
/// thread per stage. An executor that runs a plan elsewhere (a Slurm array, Kubernetes jobs)
/// is another implementation in its own file, not a change to the local one. It would:
///
/// 1. split the run into N shards: shard `i` of `N` is the same plan run with
///    `RunSettings::shard = Some((i, N))`, which reads row group `k` when `k mod N = i`
///    (the resolved pipeline is `plan.config`, so a worker can rebuild the plan from it);
/// 2. submit one job per shard that is not complete yet (a finished shard leaves
///    `_SUCCESS.shard-IIII-of-NNNN.json` in every sink folder, and a rerun of it is a no-op);
///    each job runs the local executor on its shard, so resume, rejects and manifests work
///    per shard exactly as for a local run;
/// 3. wait for every shard's marker, then merge the shards' manifests (row counts and per-stage
///    tallies add up; part files already share the sink folders) into one [`RunReport`].
///
/// Pipeline stages know nothing about executors.
pub trait Executor {
    /// Runs `plan` with `settings`, reporting as `opts` says, and returns what the run did.
    /// The plan's built stages are consumed.
    fn execute(
        &self,
        plan: Plan,
        settings: Arc<RunSettings>,
        opts: &RunOptions,
    ) -> Result<RunReport>;
}

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

/// Hash of everything that decides a run's output: the resolved pipeline, its seed, the shard,
/// the batch size, the sources' input files and, when the plan has a model stage, the
/// numerics (device and precision).
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
