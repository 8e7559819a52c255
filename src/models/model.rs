//! [`Model`]: a student (network + variables + tokenizer + metadata), built by an
//! [`Architecture`] and evaluated here; its checkpoint folder is in [`super::folder`].

use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};

use super::arch::Architecture;
use super::init::{const_vb, reinit};
use super::tokenizer::TextTokenizer;
use super::Classifier;
use crate::error::{Error, Result};

/// Batch size of [`Model::logits`].
pub const EVAL_BATCH: usize = 64;

/// Metadata stored as `retort.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// Class names in logit order.
    pub label_names: Vec<String>,
    /// The architecture's name (`"cnn"`, `"bert"`).
    pub kind: String,
    /// Maximum tokens per text (specials included) used by [`Model::encode`].
    pub max_len: usize,
    /// Free JSON written by the trainer (hyper-parameters, data hashes, metrics...).
    #[serde(default)]
    pub training: serde_json::Value,
}

/// The architecture and its configuration, kept as the canonical `config.json` text (the
/// architecture parses it into its own typed config where it builds a network).
#[derive(Clone)]
pub struct ModelConfig {
    arch: &'static dyn Architecture,
    json: String,
}

impl ModelConfig {
    /// `json` must be what `arch` writes as `config.json`.
    pub fn new(arch: &'static dyn Architecture, json: String) -> Self {
        ModelConfig { arch, json }
    }

    /// The architecture.
    pub fn arch(&self) -> &'static dyn Architecture {
        self.arch
    }

    /// The `config.json` text.
    pub fn json(&self) -> &str {
        &self.json
    }
}

impl PartialEq for ModelConfig {
    fn eq(&self, other: &Self) -> bool {
        self.arch.name() == other.arch.name() && self.json == other.json
    }
}

impl std::fmt::Debug for ModelConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelConfig")
            .field("arch", &self.arch.name())
            .field("json", &self.json)
            .finish()
    }
}

/// A student model ready to train or predict.
pub struct Model {
    /// The network; its tensors are the variables of `varmap`.
    pub classifier: Box<dyn Classifier>,
    /// All trainable variables (give `varmap.all_vars()` to the optimiser).
    pub varmap: VarMap,
    /// The tokenizer the model was built for.
    pub tokenizer: TextTokenizer,
    /// Labels, kind, max_len and free training metadata.
    pub info: ModelInfo,
    /// The architecture and its configuration (written as `config.json`).
    pub config: ModelConfig,
    /// Where the variables live.
    pub device: Device,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("info", &self.info)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// A user error unless there are exactly `num_labels` (at least one) label names.
pub fn check_labels(label_names: &[String], num_labels: usize) -> Result<()> {
    if label_names.len() != num_labels {
        return Err(Error::user(format!(
            "class-count mismatch: {} label names but the model has {num_labels} classes",
            label_names.len()
        )));
    }
    if label_names.is_empty() {
        return Err(Error::user("a classifier needs at least one label"));
    }
    Ok(())
}

/// A user error when the tokenizer has more tokens than the model's `vocab_size`.
pub fn check_vocab(tokenizer: &TextTokenizer, vocab_size: usize) -> Result<()> {
    if tokenizer.vocab_size() > vocab_size {
        return Err(Error::user(format!(
            "the tokenizer has {} tokens but the model's vocab_size is {vocab_size}",
            tokenizer.vocab_size()
        )));
    }
    Ok(())
}

impl Model {
    /// A model of `config`'s architecture with seeded weights: the network is built on a new
    /// `VarMap` ([`Architecture::network`]), then every variable is drawn from `seed`.
    /// `info` gets the architecture's name as `kind` and no training metadata.
    pub fn build(
        config: ModelConfig,
        tokenizer: TextTokenizer,
        label_names: Vec<String>,
        max_len: usize,
        seed: u64,
        device: &Device,
    ) -> Result<Model> {
        let varmap = VarMap::new();
        let classifier = config
            .arch
            .network(&config.json, const_vb(&varmap, device))?;
        reinit(&varmap, seed)?;
        Ok(Model {
            classifier,
            varmap,
            tokenizer,
            info: ModelInfo {
                label_names,
                kind: config.arch.name().into(),
                max_len,
                training: serde_json::Value::Null,
            },
            config,
            device: device.clone(),
        })
    }

    /// Tokenizes `texts` (up to `info.max_len` tokens) into `(ids, mask)` u32 tensors `[B, L]`
    /// on the model's device.
    pub fn encode(&self, texts: &[&str]) -> Result<(Tensor, Tensor)> {
        let b = self.tokenizer.encode_batch(texts, self.info.max_len)?;
        let ids = Tensor::from_vec(b.ids, (b.batch, b.len), &self.device)?;
        let mask = Tensor::from_vec(b.mask, (b.batch, b.len), &self.device)?;
        Ok((ids, mask))
    }

    /// Evaluation-mode logits (no dropout), one row of `num_labels` per text, in batches of 64.
    pub fn logits(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(EVAL_BATCH) {
            let (ids, mask) = self.encode(chunk)?;
            let l = self.classifier.forward(&ids, &mask, None)?;
            out.extend(l.to_vec2::<f32>()?);
        }
        Ok(out)
    }

    /// Hex sha256 of a checkpoint folder (see [`super::files::content_hash`]).
    pub fn content_hash(folder: &std::path::Path) -> Result<String> {
        super::files::content_hash(folder)
    }
}
