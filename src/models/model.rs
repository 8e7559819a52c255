//! [`Model`]: a student (network + variables + tokenizer + metadata), and [`Architecture`],
//! what builds one; checkpoint folders are in [`super::folder`].
//!
//! [`Architecture`]: what the trainer, the checkpoint folder, the predictor and the teacher
//! need from a student architecture. Each architecture implements it in its own file
//! (`cnn.rs`, `bert.rs`); the one list of them is [`super::architectures::ARCHITECTURES`].
//!
//! # Adding an architecture
//!
//! Write one file with its config (serde, mirroring `config.json`), its network (built from a
//! `VarBuilder`, tensor names from the builder's path) and a unit struct implementing
//! [`Architecture`]; add that struct to `ARCHITECTURES`. Nothing else names an architecture:
//! `student = "..."` in a training config, `kind` in `retort.json` and `model_type` in
//! `config.json` are all resolved through the list.
//!
//! # Classifier-specific parts, and a causal-LM student
//!
//! [`Architecture::network`] and [`Architecture::inference_network`] return a
//! [`Classifier`] (features, head, `num_labels`), and [`Architecture::model_for_config`] takes
//! class names: those are the classifier-specific parts. Everything else (name, `model_type`,
//! learning-rate default, config text, seeded construction on a `VarMap`, checkpoint files,
//! content hash) is shape-agnostic. A llama-shaped causal-LM student trained with CE + KD over
//! token distributions would implement the same name / `model_type` / learning-rate /
//! `new_student` / `model_for_config` hooks (its "labels" being the vocabulary, its `config.json`
//! a Hugging Face `LlamaConfig`), and return its network through a sibling of `Classifier`
//! (logits `[B, L, V]` for every position, with a key-value cache for inference): the two
//! network methods would then return an enum of the two network traits, or the LM would get
//! its own `network` methods next to these, leaving the classifier ones unimplemented
//! (returning a user error that says the architecture is a language model).

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use serde::{Deserialize, Serialize};

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
    /// Calibration temperature fitted on held-out rows (`retort calibrate`): retort divides
    /// this model's logits by it wherever it reads them (`eval`, `teacher`, experiments).
    /// Absent: temperature 1. A PyTorch reader of the weights divides by it too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
}

impl ModelInfo {
    /// Divides each row of `logits` by the calibration temperature, when there is one.
    pub fn calibrate(&self, logits: &mut [Vec<f32>]) {
        if let Some(t) = self.temperature {
            let t = t as f32;
            logits.iter_mut().flatten().for_each(|v| *v /= t);
        }
    }
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
    /// Refuses a model with NaN or infinite weights, naming the first such variable: its
    /// predictions would be meaningless.
    pub fn check_finite(&self) -> Result<()> {
        let vars = self.varmap.data().lock().unwrap_or_else(|e| e.into_inner());
        let mut names: Vec<&String> = vars.keys().collect();
        names.sort();
        for name in names {
            let values: Vec<f32> = vars[name]
                .as_tensor()
                .to_dtype(DType::F32)?
                .flatten_all()?
                .to_vec1()?;
            if values.iter().any(|v| !v.is_finite()) {
                return Err(Error::user(format!(
                    "the model's weights are not finite (`{name}` holds NaN or infinite values)"
                ))
                .with_hint(
                    "retrain the model; a NaN training loss usually comes from NaN soft labels",
                ));
            }
        }
        Ok(())
    }

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
                temperature: None,
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

    /// Evaluation-mode logits (no dropout), one row of `num_labels` per text, in batches of 64,
    /// divided by the calibration temperature of `info` when it has one.
    pub fn logits(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(EVAL_BATCH) {
            let (ids, mask) = self.encode(chunk)?;
            let l = self.classifier.forward(&ids, &mask, None)?;
            out.extend(l.to_vec2::<f32>()?);
        }
        self.info.calibrate(&mut out);
        Ok(out)
    }

    /// Hex sha256 of a checkpoint folder (see [`super::files::content_hash`]).
    pub fn content_hash(folder: &std::path::Path) -> Result<String> {
        super::files::content_hash(folder)
    }
}

/// What a fresh trainable student is built from (the training settings that concern the
/// architecture, and the training data).
#[derive(Debug, Clone, Copy)]
pub struct StudentSpec<'a> {
    /// The training texts (a WordPiece tokenizer is trained on them when there is no `init`).
    pub texts: &'a [&'a str],
    /// Class names in logit order.
    pub label_names: &'a [String],
    /// A Hugging Face folder to start from (its tokenizer, and whatever weights fit).
    pub init: Option<&'a Path>,
    /// Vocabulary of the WordPiece tokenizer trained when there is no `init` folder.
    pub vocab_size: usize,
    /// Maximum tokens per text (for architectures that take it from the settings).
    pub max_len: usize,
    /// Embedding width (for architectures that take it from the settings).
    pub embed_dim: usize,
    /// Seed of the initial weights.
    pub seed: u64,
    /// Where the variables live.
    pub device: &'a Device,
}

impl StudentSpec<'_> {
    /// The `init` folder's `tokenizer.json`, else a WordPiece tokenizer of `vocab_size`
    /// trained on the texts.
    pub fn tokenizer(&self) -> Result<TextTokenizer> {
        match self.init {
            Some(folder) => TextTokenizer::from_file(folder.join(super::files::TOKENIZER_FILE)),
            None => TextTokenizer::train_wordpiece(self.texts, self.vocab_size),
        }
    }
}

/// A student architecture (see the module docs). Implementations are unit structs listed in
/// [`super::architectures::ARCHITECTURES`]; callers hold them as `&'static dyn Architecture`.
pub trait Architecture: Sync {
    /// The name used by `student = "..."` and stored as `kind` in `retort.json` (`"cnn"`).
    fn name(&self) -> &'static str;

    /// One line for help texts.
    fn summary(&self) -> &'static str;

    /// The `model_type` of its `config.json` (`"retort-cnn"`, `"bert"`).
    fn model_type(&self) -> &'static str;

    /// Peak learning rate when the training config sets none.
    fn default_learning_rate(&self) -> f64;

    /// Whether `retort experiment` starts this architecture from all-MiniLM-L6-v2 (when
    /// fetched) if no `init` folder is given.
    fn starts_from_minilm(&self) -> bool {
        false
    }

    /// A fresh student with seeded weights for training (tokenizer choice, `init` folder,
    /// optional hooks such as copying embeddings from a Hugging Face folder).
    fn new_student(&self, spec: &StudentSpec<'_>) -> Result<Model>;

    /// A model shaped by the `config.json` text `config_json`, with seed-0 weights (the
    /// checkpoint loader then overwrites them). `label_names`: from `retort.json`; `None`
    /// when the folder has none (an architecture may take them from its config, or refuse).
    fn model_for_config(
        &self,
        config_json: &str,
        tokenizer: TextTokenizer,
        label_names: Option<Vec<String>>,
        device: &Device,
    ) -> Result<Model>;

    /// The trainable network on the variables of `vb` (differentiable ops, f32), from the
    /// canonical `config.json` text.
    fn network(&self, config_json: &str, vb: VarBuilder) -> Result<Box<dyn Classifier>>;

    /// The dtype its inference network computes in when `asked` is requested (an
    /// architecture may keep f32): what [`Self::inference_network`] returns with its network.
    fn inference_dtype(&self, asked: DType) -> DType {
        asked
    }

    /// The network for inference on `vb`'s device, and the dtype it actually computes in
    /// given the requested `dtype` ([`Self::inference_dtype`]).
    fn inference_network(
        &self,
        config_json: &str,
        vb: VarBuilder,
        dtype: DType,
    ) -> Result<(Box<dyn Classifier>, DType)>;
}

impl std::fmt::Debug for dyn Architecture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
