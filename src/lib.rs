//! `retort` prepares data for knowledge distillation.
//!
//! It streams Parquet text corpora through a graph of stages: augmentation (WordNet synonym
//! replacement, token perturbation, sentence shuffling, the EDA recipe), then writes Parquet
//! part files with a manifest. Every row carries its provenance (`id`, `parent_id`, `op`,
//! `op_params`, `seed`), every random choice is seeded per row, and every input row ends up in
//! the output or in `_rejects/` with a reason.
//!
//! Modules:
//! - [`pipeline`]: pipeline files, validation into a graph, the threaded runner;
//! - [`stage`] and [`registry`]: the stage traits and the one list of stage kinds;
//! - [`io`]: Parquet source and sink, manifests;
//! - [`augment`]: the augmenters and the adapter that makes them stages;
//! - [`models`]: student models (CNN, BERT), tokenizers, checkpoint folders;
//! - [`distill`]: teacher stage, losses, trainer, evaluation;
//! - [`cli`]: the command line.

pub mod assets;
pub mod augment;
pub mod batch;
pub mod batching;
pub mod cli;
pub mod device;
pub mod distill;
pub mod error;
pub mod export;
pub mod inspect;
pub mod io;
pub mod lm;
pub mod models;
pub mod pipeline;
pub mod progress;
pub mod registry;
pub mod seed;
pub mod stage;
pub mod translate;

pub use error::{Error, Result};
