//! The executor seam: planning a run ([`crate::pipeline::plan`]) is separate from executing
//! it. An [`Executor`] takes a validated plan and runs it to completion; what it returns
//! ([`RunReport`]) and how a run is identified ([`fingerprint`]) are the same whoever runs it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::batch::Tally;
use crate::error::Result;
use crate::io::hash_cache::HashCache;
use crate::io::identity::{model_identity, normalise_path};
use crate::pipeline::plan::Plan;
use crate::stage::kind::Role;
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
    /// Check every file of a finished output against its SHA-256 before calling it up to date.
    pub verify: bool,
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

/// What a run reads besides its configuration, each as a content identity (see
/// [`crate::io::identity`]).
#[derive(Debug, Clone, Default)]
pub struct RunReads {
    /// Each source's input files, in plan order.
    pub inputs: Vec<String>,
    /// Each model file or folder a stage loads, in plan order.
    pub models: Vec<ModelRead>,
}

/// One model a stage loads.
#[derive(Debug, Clone)]
pub struct ModelRead {
    /// The stage id.
    pub stage: String,
    /// The path the stage was given (or resolved, for an asset).
    pub path: PathBuf,
    /// Its content identity.
    pub identity: String,
}

impl RunReads {
    /// Adds the identities of the models `stage` loads, hashing large files through `cache`.
    pub fn add_models(&mut self, stage: &str, paths: &[PathBuf], cache: &HashCache) -> Result<()> {
        for path in paths {
            let identity =
                model_identity(path, cache).map_err(|e| e.context(format!("stage `{stage}`")))?;
            self.models.push(ModelRead {
                stage: stage.to_string(),
                path: path.clone(),
                identity,
            });
        }
        Ok(())
    }
}

/// The two hashes that identify a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    /// The configuration alone: resolved pipeline (paths normalised), seed, shard, batch size,
    /// numerics and tool version.
    pub config: String,
    /// The configuration and the content of everything the run reads.
    pub run: String,
}

/// Hash of everything that decides a run's output: the resolved pipeline (its input, output and
/// model paths normalised, so `./x` and `x` are one configuration), its seed, the shard, the
/// batch size, when the plan has a model stage the numerics (device and precision), and what
/// the run reads (`reads`: input files, model files).
pub fn fingerprint(plan: &Plan, settings: &RunSettings, reads: &RunReads) -> Fingerprint {
    let doc = serde_json::json!({
        "tool": env!("CARGO_PKG_VERSION"),
        "config": normalised_config(plan, &reads.models),
        "seed": plan.seed,
        "shard": settings.shard,
        "batch_size": settings.batch_size,
        // Model stages compute differently on a GPU or at another precision.
        "numerics": plan
            .stages
            .iter()
            .any(|s| s.kind.needs().models)
            .then(|| settings.placement.numerics()),
    });
    let config = short_hash(&doc);
    let models: Vec<Value> = reads
        .models
        .iter()
        .map(|m| serde_json::json!({ "stage": m.stage, "content": m.identity }))
        .collect();
    let run = short_hash(&serde_json::json!({
        "config": config,
        "inputs": reads.inputs,
        "models": models,
    }));
    Fingerprint { config, run }
}

/// The first 16 bytes of the SHA-256 of a JSON document, in hex.
fn short_hash(doc: &Value) -> String {
    let digest = Sha256::digest(doc.to_string().as_bytes());
    hex::encode(&digest[..16])
}

/// The resolved pipeline with the paths it names normalised: sources' and sinks' `path`, and
/// every value that is the path of a model a stage reported loading.
fn normalised_config(plan: &Plan, models: &[ModelRead]) -> Value {
    let mut config = plan.config.clone();
    for st in &plan.stages {
        let Some(table) = config
            .get_mut("stages")
            .and_then(|s| s.get_mut(&st.id))
            .and_then(Value::as_object_mut)
        else {
            continue;
        };
        let io = matches!(st.kind.role(), Role::Source | Role::Sink);
        let model_paths: Vec<&Path> = models
            .iter()
            .filter(|m| m.stage == st.id)
            .map(|m| m.path.as_path())
            .collect();
        for (key, value) in table.iter_mut() {
            let is_path = |s: &str| (io && key == "path") || model_paths.contains(&Path::new(s));
            normalise_strings(value, &is_path);
        }
    }
    config
}

/// Normalises every string of `value` (or of an array) that `is_path` accepts.
fn normalise_strings(value: &mut Value, is_path: &dyn Fn(&str) -> bool) {
    match value {
        Value::String(s) if is_path(s) => *s = normalise_path(s),
        Value::Array(items) => items.iter_mut().for_each(|v| normalise_strings(v, is_path)),
        _ => {}
    }
}
