//! Commands that plan or run a pipeline: `run`, `validate`, `graph` and `stage`, with the
//! runtime flags they share and the summary printed after a run.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use retort::error::{Error, Result};
use retort::pipeline::executor::{Executor, RunOptions, RunReport};
use retort::pipeline::local::LocalExecutor;
use retort::pipeline::plan::{self, Plan};
use retort::pipeline::spec::{self, PipelineSpec, StageSpec};
use retort::registry;
use retort::stage::kind::Role;
use retort::stage::RunSettings;

use super::args::{parse_key_value, ModelArgs};
use super::docs::unknown_kind;

/// A pipeline file and the variables that fill it.
#[derive(Debug, Args)]
pub struct PipelineArgs {
    /// The pipeline file (TOML).
    pipeline: PathBuf,
    /// Set a pipeline variable: `--var input=data/train.parquet` fills `${input}`.
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = parse_key_value)]
    vars: Vec<(String, String)>,
}

impl PipelineArgs {
    /// Loads the file with its variables; returns the spec and how errors name it.
    fn load(&self) -> Result<(PipelineSpec, String)> {
        let spec = spec::load(&self.pipeline, &self.vars)?;
        Ok((spec, format!("`{}`", self.pipeline.display())))
    }

    /// Loads and validates the file with its own seed and default settings.
    fn plan(&self) -> Result<(Plan, String)> {
        let (spec, origin) = self.load()?;
        let settings = RunSettings::with_seed(spec.seed);
        let plan = plan::build(&spec, &settings, &origin)?;
        Ok((plan, origin))
    }
}

/// Flags of every command that runs stages.
#[derive(Debug, Args)]
pub struct RuntimeArgs {
    /// Process only shard I of N (I from 1): a deterministic share of the input row groups,
    /// written to its own parts and manifest.
    #[arg(long, value_name = "I/N", value_parser = parse_shard)]
    shard: Option<(u32, u32)>,
    /// Worker threads for data-parallel work (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Rows per batch read from the input.
    #[arg(long, default_value_t = 1024)]
    batch_size: usize,
    #[command(flatten)]
    models: ModelArgs,
    /// Overwrite output folders that hold another run's files.
    #[arg(long)]
    force: bool,
    /// Before calling a finished output up to date, check every file it lists against the
    /// SHA-256 in its `_SUCCESS.json` (not only its size); a mismatch is refused.
    #[arg(long)]
    verify: bool,
    /// Read input folders whose run has not finished (no `_SUCCESS.json`): only the rows
    /// committed so far.
    #[arg(long)]
    allow_incomplete: bool,
    /// No progress bar and no summary.
    #[arg(long, short)]
    quiet: bool,
    /// Print the run summary as JSON on stdout.
    #[arg(long)]
    json: bool,
}

/// The arguments of `retort stage`.
#[derive(Debug, Args)]
pub struct StageArgs {
    /// The stage kind, e.g. `synonym`.
    kind: String,
    /// Input: a Parquet file, a folder of them (such as an earlier stage's output) or a glob.
    #[arg(long)]
    input: String,
    /// Output folder.
    #[arg(long)]
    output: String,
    /// Set a key of the stage: `--set copies=4`; `source.KEY=...` and `sink.KEY=...` set
    /// keys of the Parquet source and sink.
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    sets: Vec<(String, String)>,
    /// Pipeline seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[command(flatten)]
    runtime: RuntimeArgs,
}

fn parse_shard(s: &str) -> std::result::Result<(u32, u32), String> {
    let (i, n) = s
        .split_once('/')
        .ok_or_else(|| format!("`{s}` is not I/N (for example 1/4)"))?;
    let i: u32 = i
        .trim()
        .parse()
        .map_err(|_| format!("`{i}` is not a shard number"))?;
    let n: u32 = n
        .trim()
        .parse()
        .map_err(|_| format!("`{n}` is not a shard count"))?;
    if n == 0 || i == 0 || i > n {
        return Err(format!(
            "shard `{s}` is out of range: shards are numbered 1 to N (for example 1/4 ... 4/4)"
        ));
    }
    Ok((i - 1, n))
}

/// Runs `retort run FILE`.
pub fn run(pipeline: &PipelineArgs, runtime: &RuntimeArgs) -> Result<i32> {
    let (spec, origin) = pipeline.load()?;
    execute(&spec, &origin, runtime)
}

/// Runs `retort validate FILE`: one line naming every stage, or every problem.
pub fn validate(pipeline: &PipelineArgs) -> Result<i32> {
    let (plan, origin) = pipeline.plan()?;
    println!(
        "{origin} is valid: {} stage{} ({})",
        plan.stages.len(),
        if plan.stages.len() == 1 { "" } else { "s" },
        plan.stages
            .iter()
            .map(|s| format!("{}: {}", s.id, s.kind.name()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(0)
}

/// Runs `retort graph FILE`: the plan in Graphviz DOT.
pub fn graph(pipeline: &PipelineArgs) -> Result<i32> {
    let (plan, _) = pipeline.plan()?;
    print!("{}", plan.to_dot());
    Ok(0)
}

/// Runs `retort stage KIND`: one transform between a Parquet source and sink.
pub fn stage(args: &StageArgs) -> Result<i32> {
    let spec = single_stage_spec(&args.kind, &args.input, &args.output, &args.sets, args.seed)?;
    execute(
        &spec,
        &format!("`retort stage {}`", args.kind),
        &args.runtime,
    )
}

/// Settings of a run from the runtime flags; refuses zero batch sizes and thread counts.
fn run_settings(spec: &PipelineSpec, rt: &RuntimeArgs) -> Result<RunSettings> {
    let placement = rt.models.placement()?;
    if rt.batch_size == 0 {
        return Err(Error::user("`--batch-size` must be at least 1"));
    }
    let threads = rt.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    if threads == 0 {
        return Err(Error::user("`--threads` must be at least 1"));
    }
    Ok(RunSettings {
        seed: spec.seed,
        shard: rt.shard,
        batch_size: rt.batch_size,
        threads,
        placement,
        allow_incomplete: rt.allow_incomplete,
    })
}

/// Plans and runs a pipeline, then prints its summary (text on stderr or JSON on stdout).
fn execute(spec: &PipelineSpec, origin: &str, rt: &RuntimeArgs) -> Result<i32> {
    let settings = run_settings(spec, rt)?;
    let plan = plan::build(spec, &settings, origin)?;
    let opts = RunOptions {
        progress: !rt.quiet && std::io::stderr().is_terminal(),
        force: rt.force,
        verify: rt.verify,
    };
    let report = LocalExecutor.execute(plan, Arc::new(settings), &opts)?;
    if rt.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else if !rt.quiet {
        eprint!("{}", summary_text(&report));
    }
    for warning in loss_warnings(&report) {
        eprintln!("warning: {warning}");
    }
    Ok(0)
}

/// Builds `source -> KIND -> sink` for `retort stage`.
fn single_stage_spec(
    kind: &str,
    input: &str,
    output: &str,
    sets: &[(String, String)],
    seed: u64,
) -> Result<PipelineSpec> {
    let k = registry::find(kind).ok_or_else(|| unknown_kind(kind))?;
    if k.role() != Role::Transform {
        return Err(Error::user(format!(
            "`{kind}` is a {}; `retort stage` runs a transform between a Parquet source and sink",
            k.role()
        )));
    }
    let mut source = toml::Table::new();
    source.insert("path".into(), toml::Value::String(input.into()));
    let mut sink = toml::Table::new();
    sink.insert("path".into(), toml::Value::String(output.into()));
    let mut own = toml::Table::new();
    for (key, raw) in sets {
        let value = spec::typed_scalar(raw);
        if let Some(k) = key.strip_prefix("source.") {
            source.insert(k.into(), value);
        } else if let Some(k) = key.strip_prefix("sink.") {
            sink.insert(k.into(), value);
        } else {
            own.insert(key.clone(), value);
        }
    }
    let stage = |id: &str, kind: &str, inputs: &[&str], config: toml::Table| StageSpec {
        id: id.into(),
        kind: kind.into(),
        inputs: inputs.iter().map(|s| s.to_string()).collect(),
        config,
    };
    Ok(PipelineSpec {
        name: kind.to_string(),
        seed,
        stages: vec![
            stage("input", "parquet_source", &[], source),
            stage(kind, kind, &["input"], own),
            stage("output", "parquet_sink", &[kind], sink),
        ],
        problems: vec![],
    })
}

/// One line for every stage that sent more than half of its input rows to the rejects:
/// printed even with `--quiet`, since such a run usually does not do what was meant.
pub fn loss_warnings(r: &RunReport) -> Vec<String> {
    let mut lines = Vec::new();
    for st in &r.stages {
        let t = &st.tally;
        if t.rows_in == 0 || t.rows_rejected * 2 <= t.rows_in {
            continue;
        }
        let reasons = t
            .rejected_by_reason
            .iter()
            .map(|(reason, n)| format!("{reason}: {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        let rejects = r
            .sinks
            .first()
            .map(|s| format!(" (see {}/_rejects/)", s.path))
            .unwrap_or_default();
        lines.push(format!(
            "stage `{}` kept {} of its {} input rows and rejected {} ({reasons}){rejects}",
            st.stage,
            t.rows_in - t.rows_rejected,
            t.rows_in,
            t.rows_rejected,
        ));
    }
    lines
}

/// The per-stage summary printed after a run.
pub fn summary_text(r: &RunReport) -> String {
    let mut s = String::new();
    if r.up_to_date {
        s.push_str(&format!(
            "pipeline `{}` is up to date: nothing to do\n",
            r.pipeline
        ));
    } else {
        s.push_str(&format!(
            "pipeline `{}` finished in {:.2} s\n",
            r.pipeline, r.seconds
        ));
    }
    s.push_str(&format!(
        "{:<14} {:<15} {:>10} {:>10} {:>9} {:>10} {:>8} {:>10}\n",
        "stage", "kind", "rows in", "rows out", "rejected", "unchanged", "busy s", "rows/s"
    ));
    for st in &r.stages {
        let t = &st.tally;
        s.push_str(&format!(
            "{:<14} {:<15} {:>10} {:>10} {:>9} {:>10} {:>8.2} {:>10.0}\n",
            st.stage,
            st.kind,
            t.rows_in,
            t.rows_out_total(),
            t.rows_rejected,
            t.rows_unchanged,
            st.busy_seconds,
            st.rows_per_second
        ));
    }
    for sink in &r.sinks {
        s.push_str(&format!(
            "wrote {} rows in {} file{} to {}\n",
            sink.rows,
            sink.files,
            if sink.files == 1 { "" } else { "s" },
            sink.path
        ));
    }
    s
}
