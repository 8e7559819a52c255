//! The Marian engine: MarianMT (opus-mt) models run with candle-transformers' `marian` module,
//! loaded from a Hugging Face style folder, with batched greedy, beam or sampled decoding.
//!
//! A model folder holds `config.json` (Hugging Face `MarianConfig`), `model.safetensors`
//! (Hugging Face `MarianMTModel` tensor names) and the tokenizers in the `tokenizers` JSON
//! format: `source.tokenizer.json` and `target.tokenizer.json`, or one `tokenizer.json` used
//! for both sides. `docs/MARIAN.md` shows how to make them from an opus-mt download.
//!
//! Batching: candle's Marian has no padding mask, so only texts with exactly the same number
//! of source tokens share a forward pass. Every row of a batch is then computed as it would be
//! alone (the decoder's self-attention is causal and rows never attend to each other), and a
//! row that has finished keeps being fed tokens whose results are ignored. So a text's
//! translation does not depend on which texts it is batched with, on the batch size or on
//! the thread count (tests check this on the generated text).
//!
//! Sampling draws from a ChaCha8 generator seeded per text by the caller, one draw per output
//! token, so it is reproducible whatever the batching.

mod config;
mod decode;
mod pair;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::marian::MTModel;
use rayon::prelude::*;
use tokenizers::Tokenizer;

use crate::error::{Error, Result};

pub use config::{
    tensor_shapes, MarianConfig, CONFIG_FILE, SHARED_TOKENIZER, SOURCE_TOKENIZER, TARGET_TOKENIZER,
    WEIGHTS_FILE,
};
pub use decode::{Decoding, Generation};
pub use pair::MarianPair;

/// One translation direction: a model and its tokenizers.
pub struct Marian {
    model: MTModel,
    config: MarianConfig,
    source: Tokenizer,
    target: Tokenizer,
    device: Device,
    folder: PathBuf,
}

impl Marian {
    /// Loads a model folder (see the module docs) onto `device`, in f32: candle's Marian
    /// decoder adds an f32 causal mask to its attention scores, so it cannot run in half
    /// precision.
    pub fn load(folder: &Path, device: &Device) -> Result<Self> {
        let config = config::read_config(folder)?;
        let device = device.clone();
        let tensors = config::read_weights(folder, &config, &device)?;
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &device);
        let model = MTModel::new(&config.to_candle(), vb).map_err(|e| {
            Error::user(format!(
                "cannot build the Marian model from `{}`",
                folder.display()
            ))
            .with_source(e)
        })?;
        let (source, target) = config::read_tokenizers(folder, &config)?;
        Ok(Marian {
            model,
            config,
            source,
            target,
            device,
            folder: folder.to_path_buf(),
        })
    }

    /// The model's configuration.
    pub fn config(&self) -> &MarianConfig {
        &self.config
    }

    /// The folder the model was loaded from.
    pub fn folder(&self) -> &Path {
        &self.folder
    }

    /// Source token ids of `text`, ending with the end-of-sentence token. `Err` when the text is
    /// longer than the model takes.
    pub fn source_ids(&self, text: &str) -> std::result::Result<Vec<u32>, String> {
        let enc = self
            .source
            .encode(text, false)
            .map_err(|e| format!("cannot tokenize: {e}"))?;
        let mut ids = enc.get_ids().to_vec();
        ids.push(self.config.eos_token_id);
        if ids.len() > self.config.max_position_embeddings {
            return Err(format!(
                "the text is {} tokens, the model takes at most {}",
                ids.len(),
                self.config.max_position_embeddings
            ));
        }
        Ok(ids)
    }

    /// The text of generated target ids (special tokens dropped, spaces collapsed).
    pub fn target_text(&self, ids: &[u32]) -> std::result::Result<String, String> {
        let text = self
            .target
            .decode(ids, true)
            .map_err(|e| format!("cannot decode: {e}"))?;
        Ok(text.split_whitespace().collect::<Vec<_>>().join(" "))
    }

    fn ids_tensor(&self, rows: &[Vec<u32>]) -> candle_core::Result<Tensor> {
        let width = rows.first().map_or(0, Vec::len);
        if rows.iter().any(|r| r.len() != width) {
            candle_core::bail!("a Marian batch needs rows of one length");
        }
        let flat: Vec<u32> = rows.iter().flatten().copied().collect();
        Tensor::from_vec(flat, (rows.len(), width), &self.device)
    }

    /// Encoder output `[batch, source length, d_model]` for source ids of one length.
    pub fn encoder_output(&self, src: &[Vec<u32>]) -> Result<Tensor> {
        let mut model = self.model.clone();
        model.reset_kv_cache();
        Ok(model.encoder().forward(&self.ids_tensor(src)?, 0)?)
    }

    /// Decoder logits `[batch, prefix length, vocab]` for source ids of one length and decoder
    /// inputs of one length (starting with `decoder_start_token_id`).
    pub fn decoder_logits(&self, src: &[Vec<u32>], prefix: &[Vec<u32>]) -> Result<Tensor> {
        let mut model = self.model.clone();
        model.reset_kv_cache();
        let enc = model.encoder().forward(&self.ids_tensor(src)?, 0)?;
        Ok(model.decode(&self.ids_tensor(prefix)?, &enc, 0)?)
    }

    /// Translates `texts`: texts are grouped by source token length, `batch_size` to a forward
    /// pass, and the batches run in parallel on `pool`. `seeds[i]` seeds text `i`'s sampling.
    /// Each text gets its translation or the reason it failed.
    pub fn translate(
        &self,
        texts: &[String],
        seeds: &[u64],
        gen: &Generation,
        batch_size: usize,
        pool: &rayon::ThreadPool,
    ) -> Vec<std::result::Result<String, String>> {
        let mut results: Vec<std::result::Result<String, String>> =
            vec![Err(String::new()); texts.len()];
        let mut by_len: BTreeMap<usize, Vec<(usize, Vec<u32>)>> = BTreeMap::new();
        for (i, text) in texts.iter().enumerate() {
            match self.source_ids(text) {
                Ok(ids) => by_len.entry(ids.len()).or_default().push((i, ids)),
                Err(e) => results[i] = Err(e),
            }
        }
        let jobs: Vec<&[(usize, Vec<u32>)]> = by_len
            .values()
            .flat_map(|group| group.chunks(batch_size.max(1)))
            .collect();
        let done: Vec<Vec<(usize, std::result::Result<String, String>)>> = pool.install(|| {
            jobs.par_iter()
                .map(|job| {
                    let src: Vec<Vec<u32>> = job.iter().map(|(_, ids)| ids.clone()).collect();
                    let row_seeds: Vec<u64> = job
                        .iter()
                        .map(|(i, _)| seeds.get(*i).copied().unwrap_or(0))
                        .collect();
                    match self.generate(&src, &row_seeds, gen) {
                        Ok(out) => job
                            .iter()
                            .zip(out)
                            .map(|((i, _), ids)| (*i, self.target_text(&ids)))
                            .collect(),
                        Err(e) => job
                            .iter()
                            .map(|(i, _)| (*i, Err(format!("the model failed: {e}"))))
                            .collect(),
                    }
                })
                .collect()
        });
        for (i, r) in done.into_iter().flatten() {
            results[i] = r;
        }
        results
    }
}

#[cfg(test)]
mod tests;
