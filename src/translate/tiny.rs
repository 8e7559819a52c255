//! A tiny Marian model folder with random weights, for tests and for trying the `marian`
//! engine without real weights. Weights come from our own seeded generators
//! ([`crate::models::init`]), so the same settings always write the same folder.
//!
//! Layout as [`crate::translate::marian`] expects: `config.json`, `model.safetensors` and one
//! `tokenizer.json` (a word-level vocabulary with `</s>` = 0, `<unk>` = 1, words, and
//! `<pad>` last, which is also the decoder start token, as in opus-mt).

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use tokenizers::models::wordlevel::WordLevel;
use tokenizers::pre_tokenizers::whitespace::Whitespace;
use tokenizers::{AddedToken, Tokenizer};

use crate::error::{io_error, Error, Result};
use crate::models::init::{rng_for, sample, InitRule};
use crate::translate::marian::{
    tensor_shapes, MarianConfig, CONFIG_FILE, SHARED_TOKENIZER, WEIGHTS_FILE,
};

/// The words of the tiny vocabulary.
pub const TINY_WORDS: [&str; 38] = [
    "the", "a", "film", "movie", "is", "was", "good", "bad", "great", "dull", "and", "but", "not",
    "very", "plot", "acting", "story", "it", "this", "i", "liked", "hated", "fun", "slow", "long",
    "short", "funny", "sad", "music", "ending", "der", "die", "das", "ist", "gut", "schlecht",
    "und", ".",
];

/// Settings of a tiny model.
#[derive(Debug, Clone, Copy)]
pub struct TinyMarian {
    /// Seed of the weights.
    pub seed: u64,
    /// Encoder and decoder layers.
    pub layers: usize,
    /// Standard deviation of the random weights.
    pub std: f32,
    /// `final_logits_bias` of the end-of-sentence token: large values make generation stop
    /// at once, very negative ones make it never stop.
    pub eos_bias: f32,
}

impl Default for TinyMarian {
    fn default() -> Self {
        TinyMarian {
            seed: 0,
            layers: 1,
            std: 0.3,
            eos_bias: 0.0,
        }
    }
}

/// The tiny model's config: d_model 16, 2 heads, feed-forward 32, 64 positions.
pub fn tiny_config(layers: usize) -> MarianConfig {
    let vocab = TINY_WORDS.len() + 3;
    MarianConfig {
        vocab_size: vocab,
        decoder_vocab_size: Some(vocab),
        max_position_embeddings: 64,
        encoder_layers: layers,
        encoder_ffn_dim: 32,
        encoder_attention_heads: 2,
        decoder_layers: layers,
        decoder_ffn_dim: 32,
        decoder_attention_heads: 2,
        d_model: 16,
        activation_function: candle_nn::Activation::Swish,
        decoder_start_token_id: vocab as u32 - 1,
        scale_embedding: true,
        pad_token_id: vocab as u32 - 1,
        eos_token_id: 0,
        share_encoder_decoder_embeddings: true,
        model_type: Some("marian".into()),
    }
}

/// Writes a tiny model folder into `dir` (created if needed).
pub fn write_tiny_marian(dir: &Path, tiny: &TinyMarian) -> Result<MarianConfig> {
    fs_err::create_dir_all(dir)
        .map_err(|e| io_error(format!("cannot create `{}`", dir.display()), e))?;
    let cfg = tiny_config(tiny.layers);
    let json = serde_json::to_string_pretty(&cfg)
        .map_err(|e| Error::runtime("cannot write the tiny config").with_source(e))?;
    fs_err::write(dir.join(CONFIG_FILE), json)
        .map_err(|e| io_error("cannot write the tiny config", e))?;

    let mut tensors = HashMap::new();
    for (name, shape) in tensor_shapes(&cfg) {
        let n: usize = shape.iter().product();
        let values = if name == "final_logits_bias" {
            let mut v = vec![0.0; n];
            v[cfg.eos_token_id as usize] = tiny.eos_bias;
            v
        } else if name.contains("layer_norm.weight") {
            vec![1.0; n]
        } else if name.ends_with(".bias") {
            vec![0.0; n]
        } else {
            let rule = InitRule::Normal {
                mean: 0.0,
                std: tiny.std,
            };
            sample(rule, n, &mut rng_for(tiny.seed, &name))
        };
        tensors.insert(name, Tensor::from_vec(values, shape, &Device::Cpu)?);
    }
    candle_core::safetensors::save(&tensors, dir.join(WEIGHTS_FILE))?;

    let mut vocab: HashMap<String, u32> = HashMap::new();
    vocab.insert("</s>".into(), 0);
    vocab.insert("<unk>".into(), 1);
    for (i, w) in TINY_WORDS.iter().enumerate() {
        vocab.insert(w.to_string(), i as u32 + 2);
    }
    vocab.insert("<pad>".into(), cfg.pad_token_id);
    let model = WordLevel::builder()
        .vocab(vocab.into_iter().collect())
        .unk_token("<unk>".into())
        .build()
        .map_err(|e| Error::runtime(format!("cannot build the tiny tokenizer: {e}")))?;
    let mut tok = Tokenizer::new(model);
    tok.with_pre_tokenizer(Some(Whitespace {}));
    tok.add_special_tokens(vec![
        AddedToken::from("</s>", true),
        AddedToken::from("<pad>", true),
    ])
    .map_err(|e| Error::runtime(format!("cannot build the tiny tokenizer: {e}")))?;
    tok.save(dir.join(SHARED_TOKENIZER), true)
        .map_err(|e| Error::runtime(format!("cannot write the tiny tokenizer: {e}")))?;
    Ok(cfg)
}
