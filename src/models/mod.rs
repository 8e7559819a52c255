//! Student models for knowledge distillation: a fast word-CNN and a BERT-shaped encoder,
//! both trainable with candle on CPU, plus their tokenizer and checkpoint folders.
//!
//! Every model is built on a [`candle_nn::VarMap`] and initialised from our own seeded RNG
//! ([`init::reinit`]), because candle's CPU RNG cannot be seeded. Dropout masks come from a
//! [`DropoutRng`] that the caller (the trainer) owns and passes in, so training is reproducible.

pub mod architectures;
pub mod batching;
pub mod bert;
pub mod cnn;
pub mod device;
pub mod files;
pub mod folder;
pub mod infer;
pub mod init;
pub mod model;
pub mod tokenizer;
pub mod weights;
pub mod wordpiece;

use candle_core::{Device, Tensor};
use rand::Rng;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::error::{Error, Result};

pub use architectures::{StudentKind, ARCHITECTURES};
pub use bert::{BertClassifier, BertConfig};
pub use cnn::{CnnClassifier, CnnConfig};
pub use model::{Architecture, StudentSpec};
pub use model::{Model, ModelConfig, ModelInfo};
pub use tokenizer::TextTokenizer;

impl From<candle_core::Error> for Error {
    fn from(e: candle_core::Error) -> Self {
        Error::runtime("tensor operation failed").with_source(e)
    }
}

/// Seeded source of dropout masks: wraps a [`ChaCha8Rng`] and turns it into Bernoulli keep-masks
/// (as tensors built with `Tensor::from_vec`), so dropout never touches candle's unseeded RNG.
///
/// The state lives with whoever owns the value (the trainer); each call advances it.
#[derive(Debug, Clone)]
pub struct DropoutRng {
    rng: ChaCha8Rng,
}

impl DropoutRng {
    /// A new mask source seeded by `seed`.
    pub fn new(seed: u64) -> Self {
        DropoutRng {
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// Wraps an existing ChaCha8 generator (e.g. one derived per epoch).
    pub fn from_rng(rng: ChaCha8Rng) -> Self {
        DropoutRng { rng }
    }

    /// Access to the underlying generator (e.g. for MixUp coefficients drawn from the same stream).
    pub fn rng_mut(&mut self) -> &mut ChaCha8Rng {
        &mut self.rng
    }

    /// A keep-mask with the shape `dims`: each entry is `1 / (1 - p)` with probability `1 - p`,
    /// else 0 (inverted dropout, so evaluation needs no rescaling). `p` must be in `[0, 1)`.
    pub fn mask(&mut self, dims: &[usize], p: f32, device: &Device) -> Result<Tensor> {
        if !(0.0..1.0).contains(&p) {
            return Err(Error::user(format!(
                "dropout probability must be in [0, 1), got {p}"
            )));
        }
        let n: usize = dims.iter().product();
        let scale = 1.0 / (1.0 - p);
        let data: Vec<f32> = (0..n)
            .map(|_| {
                if self.rng.random::<f32>() < p {
                    0.0
                } else {
                    scale
                }
            })
            .collect();
        Ok(Tensor::from_vec(data, dims, device)?)
    }

    /// Applies dropout with probability `p` to `xs` (f32). `p == 0` returns `xs` unchanged and
    /// consumes no randomness.
    pub fn apply(&mut self, xs: &Tensor, p: f32) -> Result<Tensor> {
        if p == 0.0 {
            return Ok(xs.clone());
        }
        let mask = self.mask(xs.dims(), p, xs.device())?;
        Ok(xs.mul(&mask)?)
    }
}

/// Applies dropout when `rng` is `Some` (training) and is the identity when `None` (evaluation).
pub fn maybe_dropout(xs: &Tensor, p: f32, rng: Option<&mut DropoutRng>) -> Result<Tensor> {
    match rng {
        Some(r) => r.apply(xs, p),
        None => Ok(xs.clone()),
    }
}

/// The common interface of every student: features, head and logits.
pub trait Classifier: Send + Sync {
    /// Pooled sentence representation `[B, H]` from token ids `[B, L]` (u32) and the attention
    /// mask `[B, L]` (u32, 1 = real token). `dropout`: `Some(rng)` in training, `None` in evaluation.
    fn features(
        &self,
        ids: &Tensor,
        mask: &Tensor,
        dropout: Option<&mut DropoutRng>,
    ) -> Result<Tensor>;

    /// Logits `[B, C]` from features `[B, H]` (MixUp mixes features, then calls this).
    fn head(&self, features: &Tensor, dropout: Option<&mut DropoutRng>) -> Result<Tensor>;

    /// Logits `[B, C]`: `head(features(ids, mask))`, both with the same dropout stream.
    fn forward(
        &self,
        ids: &Tensor,
        mask: &Tensor,
        mut dropout: Option<&mut DropoutRng>,
    ) -> Result<Tensor> {
        let f = self.features(ids, mask, dropout.as_deref_mut())?;
        self.head(&f, dropout)
    }

    /// Number of classes `C`.
    fn num_labels(&self) -> usize;

    /// Width `H` of the features.
    fn feature_dim(&self) -> usize;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropout_mask_is_seeded_and_scaled() {
        let dev = Device::Cpu;
        let a = DropoutRng::new(3).mask(&[4, 50], 0.5, &dev).unwrap();
        let b = DropoutRng::new(3).mask(&[4, 50], 0.5, &dev).unwrap();
        let c = DropoutRng::new(4).mask(&[4, 50], 0.5, &dev).unwrap();
        let va: Vec<f32> = a.flatten_all().unwrap().to_vec1().unwrap();
        let vb: Vec<f32> = b.flatten_all().unwrap().to_vec1().unwrap();
        let vc: Vec<f32> = c.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(va, vb);
        assert_ne!(va, vc);
        assert!(va.iter().all(|&x| x == 0.0 || x == 2.0));
        let kept = va.iter().filter(|&&x| x > 0.0).count();
        assert!((60..140).contains(&kept), "kept {kept}");
    }

    #[test]
    fn dropout_edge_cases() {
        let dev = Device::Cpu;
        let x = Tensor::ones((2, 3), candle_core::DType::F32, &dev).unwrap();
        let mut r = DropoutRng::new(0);
        let y = r.apply(&x, 0.0).unwrap();
        assert_eq!(y.sum_all().unwrap().to_scalar::<f32>().unwrap(), 6.0);
        assert!(r.mask(&[2], 1.0, &dev).is_err());
        let z = maybe_dropout(&x, 0.9, None).unwrap();
        assert_eq!(z.sum_all().unwrap().to_scalar::<f32>().unwrap(), 6.0);
    }
}
