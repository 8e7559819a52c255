//! Commands that prepare the recommended recipe's files for a pipeline or a Makefile chain
//! (`pipelines/recommended.toml`): `split` (a dev split carved from the training rows) and
//! `transfer-set` (new inputs for a teacher to label).

use std::collections::HashSet;
use std::path::PathBuf;

use clap::Args;

use retort::distill::dev_split::{normalized, DevSplit};
use retort::distill::rows_file::{write_rows, Row};
use retort::distill::{data, transfer};
use retort::error::Result;

/// The arguments of `retort split`.
#[derive(Debug, Args)]
pub struct SplitArgs {
    /// Labelled training rows: a Parquet file, folder or glob.
    #[arg(long)]
    data: String,
    /// Output folder: `train.parquet` and `dev.parquet` (columns `id`, `text`, `label`).
    #[arg(long)]
    out: PathBuf,
    /// Fraction of each class held out as the dev split.
    #[arg(long, value_name = "F", default_value_t = 0.15)]
    dev_fraction: f64,
    /// Seed of the split.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Rows whose texts are never held out (a test set): a Parquet file, folder or glob.
    #[arg(long, value_name = "FILE")]
    exclude: Option<String>,
}

/// The arguments of `retort transfer-set`.
#[derive(Debug, Args)]
pub struct TransferSetArgs {
    /// The training rows the replaced copies are made from (not the dev split).
    #[arg(long)]
    train: String,
    /// Output Parquet file: `id`, `text` and a null `label` (the training rows' class names),
    /// so that a pipeline reads it beside the training rows.
    #[arg(long)]
    out: PathBuf,
    /// WordNet example sentences to include (0: none).
    #[arg(long, value_name = "N", default_value_t = transfer::DEFAULT_WORDNET_SENTENCES)]
    wordnet_sentences: usize,
    /// Copies of each training row with words replaced by WordNet words of the same part of
    /// speech (0: none).
    #[arg(long, value_name = "N", default_value_t = transfer::DEFAULT_REPLACEMENT_COPIES)]
    replacement_copies: u32,
    /// Seed of the sample and of the copies.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Texts never to include (a test set): a Parquet file, folder or glob.
    #[arg(long, value_name = "FILE")]
    exclude: Option<String>,
}

fn excluded_texts(path: Option<&str>) -> Result<HashSet<String>> {
    let Some(path) = path else {
        return Ok(HashSet::new());
    };
    let rows = data::load(path, "text", "label", None)?;
    Ok(rows.examples.iter().map(|e| normalized(&e.text)).collect())
}

fn rows_of(data: &data::Dataset) -> Vec<Row> {
    data.examples
        .iter()
        .map(|e| (e.id.clone(), e.text.clone(), e.label))
        .collect()
}

/// Runs `retort split`: the dev split `retort experiment` carves, as two files.
pub fn split(args: &SplitArgs) -> Result<i32> {
    let rows = data::load(&args.data, "text", "label", None)?;
    let exclude = excluded_texts(args.exclude.as_deref())?;
    let split = DevSplit::carve(&rows.examples, args.dev_fraction, args.seed, &exclude)?;
    let (train, dev) = (split.train_part(&rows), split.dev_rows(&rows));
    let names = Some(rows.label_names.as_slice());
    write_rows(&args.out.join("train.parquet"), &rows_of(&train), names)?;
    write_rows(&args.out.join("dev.parquet"), &rows_of(&dev), names)?;
    eprintln!(
        "{} training rows, {} dev rows -> {}",
        train.examples.len(),
        dev.examples.len(),
        args.out.display()
    );
    Ok(0)
}

/// Runs `retort transfer-set`: WordNet sentences and replaced copies of the training rows.
pub fn transfer_set(args: &TransferSetArgs) -> Result<i32> {
    let train = data::load(&args.train, "text", "label", None)?;
    let exclude = excluded_texts(args.exclude.as_deref())?;
    let texts: Vec<&str> = train.examples.iter().map(|e| e.text.as_str()).collect();
    let (sentences, replaced) = transfer::new_inputs(
        &texts,
        args.wordnet_sentences,
        args.replacement_copies,
        args.seed,
        &exclude,
    )?;
    let (n_sentences, n_replaced) = (sentences.len(), replaced.len());
    let named =
        |prefix: &'static str| move |(i, t): (usize, String)| (format!("{prefix}-{i}"), t, None);
    let rows: Vec<Row> = sentences
        .into_iter()
        .enumerate()
        .map(named("wordnet"))
        .chain(replaced.into_iter().enumerate().map(named("replaced")))
        .collect();
    write_rows(&args.out, &rows, Some(&train.label_names))?;
    eprintln!(
        "{n_sentences} WordNet sentences and {n_replaced} replaced copies -> {}",
        args.out.display()
    );
    Ok(0)
}
