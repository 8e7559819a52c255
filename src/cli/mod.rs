//! The command line: the parser, the list of subcommands, and a dispatch to one function per
//! command. Each command group lives in its own file: `pipeline` (run, validate, graph,
//! stage), `docs` (stages, describe), `training` (train, eval, selfdistill, experiment),
//! `recipe` (split, transfer-set) and `data` (inspect, export, tokenizer-from-gguf); `args`
//! holds the flags they share.

mod args;
mod data;
mod docs;
mod export;
mod inspect;
mod pipeline;
mod recipe;
mod training;

use std::ffi::OsString;

use clap::{Parser, Subcommand};

use retort::error::Result;

/// Prepare data for knowledge distillation: augment Parquet text corpora, reproducibly.
#[derive(Debug, Parser)]
#[command(name = "retort", version, about, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The subcommands; each variant's doc comment is its line in `retort --help`.
#[derive(Debug, Subcommand)]
enum Command {
    /// Run a pipeline file.
    Run {
        #[command(flatten)]
        pipeline: pipeline::PipelineArgs,
        #[command(flatten)]
        runtime: pipeline::RuntimeArgs,
    },
    /// Check a pipeline file and report every problem at once.
    Validate {
        #[command(flatten)]
        pipeline: pipeline::PipelineArgs,
    },
    /// Print a pipeline's graph in Graphviz DOT.
    Graph {
        #[command(flatten)]
        pipeline: pipeline::PipelineArgs,
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
    Stage(pipeline::StageArgs),
    /// Train a student on labelled and/or soft-labelled Parquet rows.
    Train(training::TrainArgs),
    /// Self-distillation: generation 0 trains on the gold labels of an EDA-augmented corpus,
    /// each next generation on gold + soft labels from earlier generations; each is evaluated.
    Selfdistill(training::SelfdistillArgs),
    /// Compare `gold`, `augmented`, `self-distill` and `ensemble` on a train/test pair over
    /// several seeds; writes results.json, results.md, curves.json and results.svg.
    Experiment(training::ExperimentArgs),
    /// Evaluate a model folder on labelled Parquet rows: accuracy, macro-F1, NLL, ECE.
    Eval(training::EvalArgs),
    /// Fit a model's temperature on held-out labelled rows (temperature scaling) and save it
    /// in its `retort.json`, so that its probabilities mean what they say.
    Calibrate(training::CalibrateArgs),
    /// Carve a dev split from labelled training rows (stratified, seeded; the same split
    /// `retort experiment` holds out): writes OUT/train.parquet and OUT/dev.parquet.
    Split(recipe::SplitArgs),
    /// Write new inputs for a teacher to label (WordNet example sentences and copies of the
    /// training rows with words replaced), for `pipelines/recommended.toml`.
    TransferSet(recipe::TransferSetArgs),
    /// Print rows of Parquet output as JSON lines (one object per row), for `jq` and scripts.
    Export(data::ExportArgs),
    /// Write the tokenizer stored in a GGUF file's metadata as a Hugging Face
    /// `tokenizer.json` (to build a safetensors folder of the same model).
    TokenizerFromGguf(data::TokenizerFromGgufArgs),
    /// Summarise an output folder: rows by op, labels, rejects, samples, bytes per row.
    Inspect(data::InspectArgs),
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
        Command::Run { pipeline, runtime } => pipeline::run(&pipeline, &runtime),
        Command::Validate { pipeline } => pipeline::validate(&pipeline),
        Command::Graph { pipeline } => pipeline::graph(&pipeline),
        Command::Stages { markdown } => docs::stages(markdown),
        Command::Describe { kind } => docs::describe(&kind),
        Command::Stage(args) => pipeline::stage(&args),
        Command::Train(args) => training::train(&args),
        Command::Selfdistill(args) => training::selfdistill(args),
        Command::Experiment(args) => training::experiment(args),
        Command::Eval(args) => training::eval(&args),
        Command::Calibrate(args) => training::calibrate(&args),
        Command::Split(args) => recipe::split(&args),
        Command::TransferSet(args) => recipe::transfer_set(&args),
        Command::Export(args) => data::export(&args),
        Command::TokenizerFromGguf(args) => data::tokenizer_from_gguf(&args),
        Command::Inspect(args) => data::inspect(&args),
    }
}
