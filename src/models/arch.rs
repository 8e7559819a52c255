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

use candle_core::{DType, Device};
use candle_nn::VarBuilder;

use super::model::Model;
use super::tokenizer::TextTokenizer;
use super::Classifier;
use crate::error::Result;

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

    /// The network for inference on `vb`'s device, and the dtype it actually computes in
    /// given the requested `dtype` (an architecture may keep f32).
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
