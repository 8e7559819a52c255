//! Commands that read files without running a pipeline: `inspect`, `export` and
//! `tokenizer-from-gguf`.

use std::path::PathBuf;

use clap::Args;

use retort::error::{Error, Result};

use super::{export, inspect};

/// The arguments of `retort export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Output folder (or Parquet file or glob).
    path: String,
    /// Columns to print, comma-separated, in this order (default: all).
    #[arg(long, value_delimiter = ',')]
    columns: Vec<String>,
    /// Stop after this many rows.
    #[arg(long)]
    limit: Option<usize>,
}

/// The arguments of `retort tokenizer-from-gguf`.
#[derive(Debug, Args)]
pub struct TokenizerFromGgufArgs {
    /// The GGUF model file.
    gguf: PathBuf,
    /// Where to write `tokenizer.json`.
    #[arg(long)]
    out: PathBuf,
}

/// The arguments of `retort inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
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
}

/// Runs `retort export PATH`: rows as JSON lines on stdout.
pub fn export(args: &ExportArgs) -> Result<i32> {
    let stdout = std::io::stdout();
    export::export(
        &args.path,
        &args.columns,
        args.limit,
        std::io::BufWriter::new(stdout.lock()),
    )?;
    Ok(0)
}

/// Runs `retort tokenizer-from-gguf FILE --out tokenizer.json`.
pub fn tokenizer_from_gguf(args: &TokenizerFromGgufArgs) -> Result<i32> {
    let (gguf, out) = (&args.gguf, &args.out);
    let content = retort::lm::gguf_tokenizer::read_gguf(gguf)?;
    let tokenizer = retort::lm::gguf_tokenizer::tokenizer_from_gguf(&content)?;
    tokenizer
        .save(out, false)
        .map_err(|e| Error::user(format!("cannot write `{}`: {e}", out.display())))?;
    eprintln!(
        "wrote {} ({} tokens)",
        out.display(),
        tokenizer.get_vocab_size(true)
    );
    Ok(0)
}

/// Runs `retort inspect PATH`: the summary as text or JSON.
pub fn inspect(args: &InspectArgs) -> Result<i32> {
    let report = inspect::inspect(&args.path, args.samples, args.op.as_deref())?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        print!("{}", report.render());
    }
    Ok(0)
}
