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
    let wordnet = retort::augment::wordnet::default_wordnet_dir();
    let mut rows: Vec<Row> = Vec::new();
    if args.wordnet_sentences > 0 {
        let texts =
            transfer::wordnet_sample(&wordnet, args.wordnet_sentences, args.seed, &exclude)?;
        rows.extend(
            texts
                .into_iter()
                .enumerate()
                .map(|(i, t)| (format!("wordnet-{i}"), t, None)),
        );
    }
    let sentences = rows.len();
    if args.replacement_copies > 0 {
        let replace = retort::augment::replace::Replace::new(&Default::default())?;
        let texts: Vec<&str> = train.examples.iter().map(|e| e.text.as_str()).collect();
        let copies = transfer::replacement_copies(
            &texts,
            &replace,
            args.replacement_copies,
            args.seed,
            &exclude,
        );
        rows.extend(
            copies
                .into_iter()
                .enumerate()
                .map(|(i, t)| (format!("replaced-{i}"), t, None)),
        );
    }
    write_rows(&args.out, &rows, Some(&train.label_names))?;
    eprintln!(
        "{sentences} WordNet sentences and {} replaced copies -> {}",
        rows.len() - sentences,
        args.out.display()
    );
    Ok(0)
}
