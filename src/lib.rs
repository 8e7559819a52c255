//! `retort` prepares data for knowledge distillation.
//!
//! It streams Parquet text corpora through a graph of stages (augmentation, pseudo-data,
//! teachers that write soft labels, a trainer) and writes Parquet part files with a manifest.
//! Every row carries its provenance (`id`, `parent_id`, `op`, `op_params`, `seed`), every random
//! choice is seeded per row, and every input row ends up in the output or in `_rejects/` with a
//! reason. The command line lives in the binary (`src/cli/`); this library is what it calls.
//!
//! Modules, one line each:
//! - [`assets`]: where the cache folder and the model assets (`make assets`) are;
//! - [`augment`]: the augmenters (synonym, perturb, shuffle, EDA) and their stage kinds;
//! - [`batch`]: a batch of rows with its sequence number and accounting (`Ledger`, `Tally`);
//! - [`distill`]: teacher and train stages, losses, the trainer, self-distillation, experiments;
//! - [`error`]: the one error type (user errors exit 1, runtime errors exit 2) with hints;
//! - [`io`]: Parquet source and sink, input file lists, manifests;
//! - [`lm`]: causal language models: decoder, GGUF tokenizer, `generate` and `lm_teacher`;
//! - [`models`]: students (CNN, BERT), tokenizers, checkpoint folders, devices, inference;
//! - [`pipeline`]: pipeline files, planning into a graph, executing a plan;
//! - [`progress`]: progress bars on a terminal;
//! - [`registry`]: the one list of stage kinds;
//! - [`seed`]: per-stage, per-row and per-copy seeds;
//! - [`stage`]: the source, transform and sink traits, and what a stage kind is ([`stage::kind`]);
//! - [`testing`]: test support: the dependencies a test needs, and visible skips;
//! - [`translate`]: back-translation with Apertium or MarianMT models.

pub mod assets;
pub mod augment;
pub mod batch;
pub mod distill;
pub mod error;
pub mod io;
pub mod lm;
pub mod models;
pub mod pipeline;
pub mod progress;
pub mod registry;
pub mod seed;
pub mod stage;
pub mod testing;
pub mod translate;

pub use error::{Error, Result};
