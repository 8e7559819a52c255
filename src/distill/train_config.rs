//! The trainer's settings ([`TrainConfig`]): every key of `retort train --set`, its default and
//! its range.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Which student architecture to train: a name from [`crate::models::ARCHITECTURES`].
pub use crate::models::architectures::StudentKind;

/// Training settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Student architecture: one of the names listed as its type (`models::ARCHITECTURES`).
    #[serde(default = "default_student")]
    pub student: StudentKind,
    /// A Hugging Face BERT folder: a `bert` student starts from its weights; a `cnn` student
    /// uses its tokenizer and copies its input embeddings. Unset: a WordPiece tokenizer is
    /// trained on the training texts and weights start from the seed.
    #[serde(default)]
    pub init: Option<PathBuf>,
    /// Passes over the training rows.
    #[serde(default = "default_epochs")]
    pub epochs: usize,
    /// Rows per step.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Peak learning rate (default 1e-3 for `cnn`, 5e-5 for `bert`).
    #[serde(default)]
    pub learning_rate: Option<f64>,
    /// AdamW weight decay.
    #[serde(default = "default_weight_decay")]
    pub weight_decay: f64,
    /// Fraction of the steps spent warming the learning rate up linearly (then linear decay).
    #[serde(default = "default_warmup")]
    pub warmup: f64,
    /// Temperature of the KL term.
    #[serde(default = "default_temperature")]
    pub temperature: f64,
    /// Divide the teacher's logits by this before the KL temperature: the teacher's own
    /// calibration temperature (see `distill::calibrate`), below 1 for an under-confident
    /// teacher. Unset: 1.
    #[serde(default)]
    pub teacher_temperature: Option<f64>,
    /// Weight of the gold cross-entropy where a row has both targets.
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    /// Decay of an exponential moving average of the weights (e.g. 0.999); checkpoints then
    /// hold the averaged weights. Unset: no EMA.
    #[serde(default)]
    pub ema: Option<f64>,
    /// MixUp: mix two rows' representations and their targets with λ ~ Beta(a, a). Unset: off.
    #[serde(default)]
    pub mixup: Option<f64>,
    /// Weight of the consistency term: KL of the student on an augmented row to its
    /// stop-gradient prediction on the parent, when both are in the batch (batches then keep
    /// a row's family together). 0: off.
    #[serde(default)]
    pub consistency: f64,
    /// Seed of initialisation, order, dropout and MixUp.
    #[serde(default)]
    pub seed: u64,
    /// Maximum tokens per text.
    #[serde(default = "default_max_len")]
    pub max_len: usize,
    /// Vocabulary of the WordPiece tokenizer trained when there is no `init` folder.
    #[serde(default = "default_vocab")]
    pub vocab_size: usize,
    /// Embedding width of the CNN student (ignored with `init`: the folder's hidden size).
    #[serde(default = "default_embed_dim")]
    pub embed_dim: usize,
    /// Weights of the gold cross-entropy by class: `none` (every row 1) or `balanced` (a row
    /// of class c weighs `rows / (classes · rows of c)`, counted over the labelled training
    /// rows), for skewed labels.
    #[serde(default)]
    pub class_weights: ClassWeights,
    /// Keep only the last K `epoch-NN` checkpoints (`final` is always kept). Unset: keep all.
    #[serde(default)]
    pub keep_epochs: Option<usize>,
    /// Where training runs: set from `--device`/`--precision`, not a key. Weights stay f32.
    #[serde(skip)]
    #[schemars(skip)]
    pub placement: crate::models::device::Placement,
}

/// How the gold cross-entropy weighs the classes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ClassWeights {
    /// Every row weighs 1.
    #[default]
    None,
    /// Each class weighs the same in total: `rows / (classes · rows of the class)`.
    Balanced,
}

impl ClassWeights {
    /// The weight of each class given the gold labels of the training rows (classes with no
    /// row weigh 1).
    pub fn weights(self, labels: impl Iterator<Item = usize>, classes: usize) -> Vec<f32> {
        match self {
            ClassWeights::None => vec![1.0; classes],
            ClassWeights::Balanced => {
                let mut counts = vec![0usize; classes];
                for l in labels.filter(|&l| l < classes) {
                    counts[l] += 1;
                }
                let present = counts.iter().filter(|&&c| c > 0).count().max(1);
                let total: usize = counts.iter().sum();
                counts
                    .iter()
                    .map(|&c| {
                        if c == 0 {
                            1.0
                        } else {
                            total as f32 / (present as f32 * c as f32)
                        }
                    })
                    .collect()
            }
        }
    }
}

fn default_student() -> StudentKind {
    StudentKind::default()
}
fn default_epochs() -> usize {
    5
}
fn default_batch_size() -> usize {
    32
}
fn default_weight_decay() -> f64 {
    0.01
}
fn default_warmup() -> f64 {
    0.1
}
fn default_temperature() -> f64 {
    2.0
}
fn default_alpha() -> f64 {
    0.5
}
fn default_max_len() -> usize {
    64
}
fn default_vocab() -> usize {
    8000
}
fn default_embed_dim() -> usize {
    128
}

impl Default for TrainConfig {
    fn default() -> Self {
        toml::from_str("").expect("every field has a default")
    }
}

impl TrainConfig {
    /// Checks ranges, naming the key at fault.
    pub fn validate(&self) -> Result<()> {
        let bad = |key: &str, why: &str| Err(Error::user(format!("`{key}` {why}")));
        if self.epochs == 0 {
            return bad("epochs", "must be at least 1");
        }
        if self.batch_size == 0 {
            return bad("batch_size", "must be at least 1");
        }
        if !(0.0..=1.0).contains(&self.alpha) {
            return bad("alpha", "must be between 0 and 1");
        }
        if self.temperature <= 0.0 {
            return bad("temperature", "must be positive");
        }
        if self
            .teacher_temperature
            .is_some_and(|t| t <= 0.0 || !t.is_finite())
        {
            return bad("teacher_temperature", "must be positive");
        }
        if !(0.0..1.0).contains(&self.warmup) {
            return bad("warmup", "must be in [0, 1)");
        }
        if let Some(d) = self.ema {
            if !(0.0..1.0).contains(&d) {
                return bad("ema", "must be in [0, 1)");
            }
        }
        if let Some(a) = self.mixup {
            if a <= 0.0 {
                return bad("mixup", "must be positive (the Beta(a, a) parameter)");
            }
        }
        if self.consistency < 0.0 {
            return bad("consistency", "must be ≥ 0");
        }
        if self.keep_epochs == Some(0) {
            return bad(
                "keep_epochs",
                "must be at least 1 (or unset to keep every epoch)",
            );
        }
        Ok(())
    }

    /// The peak learning rate: the setting, or the architecture's default.
    pub(crate) fn lr(&self) -> f64 {
        self.learning_rate
            .unwrap_or_else(|| self.student.arch().default_learning_rate())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balanced_weights_give_each_class_the_same_total() {
        // 6 rows of class 0, 2 of class 1, none of class 2.
        let labels = [0, 0, 0, 0, 0, 0, 1, 1];
        let w = ClassWeights::Balanced.weights(labels.into_iter(), 3);
        assert_eq!(w, vec![8.0 / 12.0, 8.0 / 4.0, 1.0]);
        assert!((6.0 * w[0] - 2.0 * w[1]).abs() < 1e-6);
        assert_eq!(
            ClassWeights::None.weights(labels.into_iter(), 3),
            vec![1.0; 3]
        );
        let cfg: TrainConfig = toml::from_str("class_weights = \"balanced\"").unwrap();
        assert_eq!(cfg.class_weights, ClassWeights::Balanced);
        assert!(toml::from_str::<TrainConfig>("class_weights = \"equal\"").is_err());
    }
}
