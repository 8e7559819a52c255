//! The command line: subcommands and how their results are printed.

mod export;
mod inspect;

use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};

use retort::distill::{self, train::TrainConfig};
use retort::error::{Error, Result};
use retort::models::device::{DeviceSpec, Placement, Precision};
use retort::pipeline::plan;
use retort::pipeline::runner::{Executor, LocalExecutor, RunOptions, RunReport};
use retort::pipeline::spec::{self, PipelineSpec, StageSpec};
use retort::registry;
use retort::stage::kind::{self, Role};
use retort::stage::RunSettings;

/// Prepare data for knowledge distillation: augment Parquet text corpora, reproducibly.
#[derive(Debug, Parser)]
#[command(name = "retort", version, about, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a pipeline file.
    Run {
        #[command(flatten)]
        pipeline: PipelineArgs,
        #[command(flatten)]
        runtime: RuntimeArgs,
    },
    /// Check a pipeline file and report every problem at once.
    Validate {
        #[command(flatten)]
        pipeline: PipelineArgs,
    },
    /// Print a pipeline's graph in Graphviz DOT.
    Graph {
        #[command(flatten)]
        pipeline: PipelineArgs,
    },
    /// List the stage kinds.
    Stages {
        /// Print the list as the Markdown table the README holds.
        #[arg(long)]
        markdown: bool,
    },
    /// Show a stage kind's keys and a complete example pipeline.
    Describe {
        /// The stage kind, e.g. `synonym`.
        kind: String,
    },
    /// Run one transform stage alone: INPUT -> KIND -> OUTPUT (for Makefile chaining).
    Stage {
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
    },
    /// Train a student on labelled and/or soft-labelled Parquet rows.
    Train {
        /// Training rows: a Parquet file, folder or glob (repeat to combine several).
        #[arg(long, required = true)]
        data: Vec<String>,
        /// Output folder: `epoch-NN/` checkpoints, `final/`, `train_log.json`.
        #[arg(long)]
        out: PathBuf,
        /// Labelled rows to evaluate after every epoch.
        #[arg(long)]
        eval: Option<String>,
        /// A training setting: `--set epochs=3`, `--set student=bert`, `--set mixup=0.4`
        /// (`retort train --help-keys` lists them).
        #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_key_value)]
        sets: Vec<(String, String)>,
        /// List the training settings and exit.
        #[arg(long)]
        help_keys: bool,
        #[command(flatten)]
        models: ModelArgs,
        /// No progress bar.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Self-distillation: generation 0 trains on the gold labels of an EDA-augmented corpus,
    /// each next generation on gold + soft labels from earlier generations; each is evaluated.
    Selfdistill {
        /// Labelled training rows: a Parquet file, folder or glob.
        #[arg(long)]
        data: String,
        /// Output folder: `augmented/`, `gen-K/` (soft labels and student), `generations.json`.
        #[arg(long)]
        out: PathBuf,
        /// Labelled rows to evaluate every generation on.
        #[arg(long)]
        eval: Option<String>,
        /// Generations after generation 0.
        #[arg(long, default_value_t = 2)]
        generations: usize,
        /// Teacher of each generation: `previous`, `all` (every earlier generation) or
        /// `last:K` (the last K epoch checkpoints of the previous generation).
        #[arg(long, default_value = "previous", value_parser = parse_ensemble)]
        ensemble: distill::selfdistill::EnsembleMode,
        /// EDA strength.
        #[arg(long, default_value_t = 0.1)]
        alpha: f64,
        /// EDA copies per row (0: no augmentation).
        #[arg(long, default_value_t = 4)]
        copies: u32,
        /// Each generation after 0 trains on fresh EDA copies that its teacher has not seen.
        #[arg(long)]
        fresh_copies: bool,
        /// A training setting, as for `retort train`.
        #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_key_value)]
        sets: Vec<(String, String)>,
        #[command(flatten)]
        models: ModelArgs,
        /// No progress bar.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Compare `gold`, `augmented`, `self-distill` and `ensemble` on a train/test pair over
    /// several seeds; writes results.json, results.md, curves.json and results.svg.
    Experiment {
        /// Labelled training rows: a Parquet file, folder or glob.
        #[arg(long)]
        train: String,
        /// Labelled test rows.
        #[arg(long)]
        test: String,
        /// Output folder; rerunning with the same settings reuses every finished step.
        #[arg(long)]
        out: PathBuf,
        /// Student architecture: `cnn` (fast) or `bert` (all-MiniLM-L6-v2 from `make assets`
        /// when present, else a tiny BERT from scratch).
        #[arg(long, default_value = "cnn")]
        student: String,
        /// Seeds to repeat every setting with.
        #[arg(long, default_value_t = 3)]
        seeds: usize,
        /// EDA strength (default: by training size, as the EDA paper recommends).
        #[arg(long)]
        alpha: Option<f64>,
        /// EDA copies per row (default: by training size, as the EDA paper recommends).
        #[arg(long)]
        copies: Option<u32>,
        /// Self-distillation generations after generation 0.
        #[arg(long, default_value_t = 2)]
        generations: usize,
        /// Each generation after 0 trains on fresh EDA copies that its teacher has not seen.
        #[arg(long)]
        fresh_copies: bool,
        /// Passes over the augmented rows; `gold` trains for the same number of steps
        /// (`epochs × (1 + copies)` passes over the original rows).
        #[arg(long, default_value_t = 2)]
        epochs: usize,
        /// A training setting, as for `retort train`.
        #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_key_value)]
        sets: Vec<(String, String)>,
        #[command(flatten)]
        models: ModelArgs,
        /// No progress output.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Evaluate a model folder on labelled Parquet rows: accuracy, macro-F1, NLL, ECE.
    Eval {
        /// The model folder (a checkpoint written by `retort train`).
        model: PathBuf,
        /// Labelled rows: a Parquet file, folder or glob.
        #[arg(long)]
        data: String,
        /// Where to write `metrics.json` (default: print only).
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        models: ModelArgs,
    },
    /// Print rows of Parquet output as JSON lines (one object per row), for `jq` and scripts.
    Export {
        /// Output folder (or Parquet file or glob).
        path: String,
        /// Columns to print, comma-separated, in this order (default: all).
        #[arg(long, value_delimiter = ',')]
        columns: Vec<String>,
        /// Stop after this many rows.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Write the tokenizer stored in a GGUF file's metadata as a Hugging Face
    /// `tokenizer.json` (to build a safetensors folder of the same model).
    TokenizerFromGguf {
        /// The GGUF model file.
        gguf: PathBuf,
        /// Where to write `tokenizer.json`.
        #[arg(long)]
        out: PathBuf,
    },
    /// Summarise an output folder: rows by op, labels, rejects, samples, bytes per row.
    Inspect {
        /// Output folder (or Parquet file or glob).
        path: String,
        /// Sample rows to show.
        #[arg(long, default_value_t = 6)]
        samples: usize,
        /// Show samples of this `op` only (e.g. `pseudo`).
        #[arg(long)]
        op: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
struct PipelineArgs {
    /// The pipeline file (TOML).
    pipeline: PathBuf,
    /// Set a pipeline variable: `--var input=data/train.parquet` fills `${input}`.
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = parse_key_value)]
    vars: Vec<(String, String)>,
}

/// Where models run.
#[derive(Debug, Args)]
struct ModelArgs {
    /// Device for models: `cpu`, `cuda` or `cuda:N` (needs a build with the `cuda` feature:
    /// `make build-cuda`).
    #[arg(long, default_value = "cpu", value_parser = parse_device)]
    device: DeviceSpec,
    /// Inference precision: `auto` (f32 on the CPU, bf16 on a GPU), `f32`, `bf16` or `f16`.
    /// Training keeps f32 weights.
    #[arg(long, default_value = "auto", value_parser = parse_precision)]
    precision: Precision,
}

impl ModelArgs {
    /// Checks the build can use the device (a CPU build refuses CUDA) and opens it, so a
    /// missing GPU is reported before any work starts.
    fn placement(&self) -> Result<Placement> {
        let p = Placement {
            device: self.device,
            precision: self.precision,
        };
        p.open()?;
        Ok(p)
    }
}

/// A parse error as one line for clap: the message, then the hint.
fn one_line(e: Error) -> String {
    match e.hint() {
        Some(h) => format!("{e}; {h}"),
        None => e.to_string(),
    }
}

fn parse_device(s: &str) -> std::result::Result<DeviceSpec, String> {
    s.parse::<DeviceSpec>().map_err(one_line)
}

fn parse_precision(s: &str) -> std::result::Result<Precision, String> {
    s.parse::<Precision>().map_err(one_line)
}

#[derive(Debug, Args)]
struct RuntimeArgs {
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
    /// No progress bar and no summary.
    #[arg(long, short)]
    quiet: bool,
    /// Print the run summary as JSON on stdout.
    #[arg(long)]
    json: bool,
}

fn parse_key_value(s: &str) -> std::result::Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not NAME=VALUE"))?;
    if k.is_empty() {
        return Err(format!("`{s}` has an empty name"));
    }
    Ok((k.trim().to_string(), v.to_string()))
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

/// Parses arguments and runs the command; returns the exit code.
pub fn run<I, T>(args: I) -> Result<i32>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 1 } else { 0 };
            let _ = e.print();
            return Ok(code);
        }
    };
    match cli.command {
        Command::Run { pipeline, runtime } => {
            let spec = spec::load(&pipeline.pipeline, &pipeline.vars)?;
            let origin = format!("`{}`", pipeline.pipeline.display());
            execute(&spec, &origin, &runtime)
        }
        Command::Validate { pipeline } => {
            let spec = spec::load(&pipeline.pipeline, &pipeline.vars)?;
            let settings = RunSettings::with_seed(spec.seed);
            let origin = format!("`{}`", pipeline.pipeline.display());
            let plan = plan::build(&spec, &settings, &origin)?;
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
        Command::Graph { pipeline } => {
            let spec = spec::load(&pipeline.pipeline, &pipeline.vars)?;
            let settings = RunSettings::with_seed(spec.seed);
            let plan = plan::build(
                &spec,
                &settings,
                &format!("`{}`", pipeline.pipeline.display()),
            )?;
            print!("{}", plan.to_dot());
            Ok(0)
        }
        Command::Stages { markdown } => {
            print!(
                "{}",
                if markdown {
                    stages_markdown()
                } else {
                    stages_text()
                }
            );
            Ok(0)
        }
        Command::Describe { kind } => {
            print!("{}", describe_text(&kind)?);
            Ok(0)
        }
        Command::Stage {
            kind,
            input,
            output,
            sets,
            seed,
            runtime,
        } => {
            let spec = single_stage_spec(&kind, &input, &output, &sets, seed)?;
            execute(&spec, &format!("`retort stage {kind}`"), &runtime)
        }
        Command::Train {
            data,
            out,
            eval,
            sets,
            help_keys,
            models,
            quiet,
        } => {
            if help_keys {
                print!("{}", keys_text(&kind::keys_of::<TrainConfig>()));
                return Ok(0);
            }
            let mut cfg = train_config(&sets)?;
            cfg.placement = models.placement()?;
            let device = cfg.placement.open()?.device;
            let train_data = load_many(&data)?;
            let eval_data = eval
                .as_deref()
                .map(|p| distill::data::load(p, "text", "label", Some(&train_data.label_names)))
                .transpose()?;
            let mut student = distill::train::new_student(&cfg, &train_data, &device)?;
            let report = distill::train::train(
                &cfg,
                &mut student,
                &train_data,
                eval_data.as_ref(),
                &out,
                !quiet,
            )?;
            println!("{}", train_summary(&report));
            Ok(0)
        }
        Command::Selfdistill {
            data,
            out,
            eval,
            generations,
            ensemble,
            alpha,
            copies,
            fresh_copies,
            sets,
            models,
            quiet,
        } => {
            let mut train = train_config(&sets)?;
            train.placement = models.placement()?;
            let cfg = distill::selfdistill::SelfDistillConfig {
                generations,
                ensemble,
                alpha,
                copies,
                fresh_copies,
                train,
            };
            let gens = distill::selfdistill::run(&cfg, &data, eval.as_deref(), &out, !quiet)?;
            print!("{}", distill::selfdistill::table_text(&gens));
            Ok(0)
        }
        Command::Experiment {
            train,
            test,
            out,
            student,
            seeds,
            alpha,
            copies,
            generations,
            fresh_copies,
            epochs,
            mut sets,
            models,
            quiet,
        } => {
            sets.insert(0, ("student".into(), student));
            sets.insert(1, ("epochs".into(), epochs.to_string()));
            sets.insert(2, ("keep_epochs".into(), "1".into()));
            let mut student = train_config(&sets)?;
            student.placement = models.placement()?;
            distill::experiment::default_init(&mut student, !quiet);
            let rows = distill::data::load(&train, "text", "label", None)?
                .examples
                .len();
            let (auto_alpha, auto_copies) = distill::experiment::eda_defaults(rows);
            let cfg = distill::experiment::ExperimentConfig {
                train,
                test,
                seeds,
                alpha: alpha.unwrap_or(auto_alpha),
                copies: copies.unwrap_or(auto_copies),
                generations,
                fresh_copies,
                student,
            };
            if !quiet {
                eprintln!(
                    "{rows} training rows: EDA α = {} with {} copies, {} generation(s), {} seed(s)",
                    cfg.alpha, cfg.copies, cfg.generations, cfg.seeds
                );
            }
            let report = distill::experiment::run(&cfg, &out, !quiet)?;
            print!("{}", distill::experiment::results_markdown(&report));
            println!(
                "wrote {0}/results.json, {0}/results.md, {0}/curves.json, {0}/results.svg",
                out.display()
            );
            Ok(0)
        }
        Command::Eval {
            model,
            data,
            out,
            models,
        } => {
            let device = models.placement()?.open()?.device;
            let m = retort::models::folder::Model::load(&model, &device)?;
            let ds = distill::data::load(&data, "text", "label", Some(&m.info.label_names))?;
            let metrics = distill::train::evaluate(&m, &ds)?;
            if let Some(out) = out {
                retort::io::manifest::write_json_atomic(&out, &metrics)?;
            }
            println!(
                "{}",
                serde_json::to_string_pretty(&metrics).unwrap_or_default()
            );
            Ok(0)
        }
        Command::Export {
            path,
            columns,
            limit,
        } => {
            let stdout = std::io::stdout();
            export::export(
                &path,
                &columns,
                limit,
                std::io::BufWriter::new(stdout.lock()),
            )?;
            Ok(0)
        }
        Command::TokenizerFromGguf { gguf, out } => {
            let content = retort::lm::gguf_tokenizer::read_gguf(&gguf)?;
            let tokenizer = retort::lm::gguf_tokenizer::tokenizer_from_gguf(&content)?;
            tokenizer
                .save(&out, false)
                .map_err(|e| Error::user(format!("cannot write `{}`: {e}", out.display())))?;
            eprintln!(
                "wrote {} ({} tokens)",
                out.display(),
                tokenizer.get_vocab_size(true)
            );
            Ok(0)
        }
        Command::Inspect {
            path,
            samples,
            op,
            json,
        } => {
            let report = inspect::inspect(&path, samples, op.as_deref())?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).unwrap_or_default()
                );
            } else {
                print!("{}", report.render());
            }
            Ok(0)
        }
    }
}

fn execute(spec: &PipelineSpec, origin: &str, rt: &RuntimeArgs) -> Result<i32> {
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
    let settings = RunSettings {
        seed: spec.seed,
        shard: rt.shard,
        batch_size: rt.batch_size,
        threads,
        placement,
    };
    let plan = plan::build(spec, &settings, origin)?;
    let opts = RunOptions {
        progress: !rt.quiet && std::io::stderr().is_terminal(),
        force: rt.force,
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
    let k = registry::find(kind).ok_or_else(|| {
        let mut e = Error::user(format!("unknown stage kind `{kind}`"));
        if let Some(n) = registry::nearest(kind, registry::STAGE_KINDS.iter().map(|k| k.name())) {
            e = e.with_hint(format!("did you mean `{n}`?"));
        } else {
            e = e.with_hint("run `retort stages` to list them");
        }
        e
    })?;
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

/// The text of `retort stages`.
pub fn stages_text() -> String {
    let mut s = String::new();
    for k in registry::STAGE_KINDS {
        s.push_str(&format!(
            "{:<16} {:<10} {}\n",
            k.name(),
            k.role().to_string(),
            k.summary()
        ));
    }
    s.push_str("\nRun `retort describe KIND` for a kind's keys and a complete example.\n");
    s
}

/// The README's table of stage kinds (`retort stages --markdown`); a test keeps the README
/// equal to it.
pub fn stages_markdown() -> String {
    let mut s = String::from("| kind | role | needs | what it does |\n|---|---|---|---|\n");
    for k in registry::STAGE_KINDS {
        let needs = k.needs().describe();
        s.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            k.name(),
            k.role(),
            if needs.is_empty() { "-" } else { &needs },
            k.summary()
        ));
    }
    s
}

/// The text of `retort describe KIND`.
pub fn describe_text(kind: &str) -> Result<String> {
    let k = registry::find(kind).ok_or_else(|| {
        let e = Error::user(format!("unknown stage kind `{kind}`"));
        match registry::nearest(kind, registry::STAGE_KINDS.iter().map(|k| k.name())) {
            Some(n) => e.with_hint(format!("did you mean `{n}`?")),
            None => e.with_hint("run `retort stages` to list them"),
        }
    })?;
    let mut s = format!("{} ({})\n  {}\n\nkeys:\n", k.name(), k.role(), k.summary());
    let mut keys = vec![kind::KeyDoc {
        name: "kind".into(),
        ty: "string".into(),
        default: None,
        required: true,
        doc: format!("`{}`", k.name()),
    }];
    if k.role() != Role::Source {
        keys.push(kind::KeyDoc {
            name: "inputs".into(),
            ty: "array of string".into(),
            default: None,
            required: true,
            doc: "The stages whose rows this stage reads.".into(),
        });
    }
    keys.extend(k.keys());
    s.push_str(&keys_text(&keys));
    s.push_str("\nexample (run it with `retort run FILE --var input=... --var output=...`):\n\n");
    s.push_str(&k.example());
    Ok(s)
}

/// One entry per key: name, type, default and documentation.
fn keys_text(keys: &[kind::KeyDoc]) -> String {
    let mut s = String::new();
    for key in keys {
        let default = match (&key.default, key.required) {
            (Some(d), _) => format!(" (default {d})"),
            (None, true) => " (required)".into(),
            (None, false) => " (optional)".into(),
        };
        s.push_str(&format!(
            "  {} : {}{default}\n      {}\n",
            key.name, key.ty, key.doc
        ));
    }
    s
}

/// Training settings from `--set KEY=VALUE` flags.
fn train_config(sets: &[(String, String)]) -> Result<TrainConfig> {
    let mut table = toml::Table::new();
    for (k, v) in sets {
        table.insert(k.clone(), spec::typed_scalar(v));
    }
    let cfg: TrainConfig = kind::parse_table(&table).map_err(|e| {
        Error::user(format!("`--set`: {e}"))
            .with_hint("`retort train --help-keys` lists the settings")
    })?;
    cfg.validate()?;
    Ok(cfg)
}

fn parse_ensemble(s: &str) -> std::result::Result<distill::selfdistill::EnsembleMode, String> {
    s.parse()
}

/// Reads several training inputs; they must agree on classes.
fn load_many(paths: &[String]) -> Result<distill::data::Dataset> {
    let mut all: Option<distill::data::Dataset> = None;
    for p in paths {
        let expected = all.as_ref().map(|d| d.label_names.clone());
        let d = distill::data::load(p, "text", "label", expected.as_deref())?;
        match &mut all {
            Some(a) => a.examples.extend(d.examples),
            None => all = Some(d),
        }
    }
    all.ok_or_else(|| Error::user("give at least one `--data`"))
}

fn train_summary(r: &distill::train::TrainReport) -> String {
    let mut s = format!(
        "trained on {} rows ({} with gold labels, {} with teacher logits)\n{:>5} {:>10} {:>9} {:>9} {:>9} {:>8} {:>8}\n",
        r.rows, r.labelled, r.soft_labelled, "epoch", "loss", "accuracy", "macro-F1", "NLL", "ECE", "seconds"
    );
    for e in &r.epochs {
        let m = e
            .eval
            .map(|m| {
                format!(
                    "{:>9.4} {:>9.4} {:>9.4} {:>8.4}",
                    m.accuracy, m.macro_f1, m.nll, m.ece
                )
            })
            .unwrap_or_else(|| format!("{:>9} {:>9} {:>9} {:>8}", "-", "-", "-", "-"));
        s.push_str(&format!(
            "{:>5} {:>10.4} {m} {:>8.1}\n",
            e.epoch, e.loss, e.seconds
        ));
    }
    s.push_str(&format!("final model: {}", r.final_model.display()));
    s
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
