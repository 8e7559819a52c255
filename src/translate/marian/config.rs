//! A Marian model folder: its file names, `config.json` (read and checked against what
//! candle's Marian supports), the weights' names and shapes, and the tokenizers.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_transformers::models::marian::Config;
use serde::{Deserialize, Serialize};
use tokenizers::Tokenizer;

use crate::error::{Error, Result};

/// The model configuration file of a folder.
pub const CONFIG_FILE: &str = "config.json";
/// The weights file of a folder.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// Tokenizer of the source language.
pub const SOURCE_TOKENIZER: &str = "source.tokenizer.json";
/// Tokenizer of the target language.
pub const TARGET_TOKENIZER: &str = "target.tokenizer.json";
/// One tokenizer for both sides (used when the two above are absent).
pub const SHARED_TOKENIZER: &str = "tokenizer.json";

const FOLDER_HINT: &str = "a Marian model folder holds config.json, model.safetensors and \
    source.tokenizer.json + target.tokenizer.json (or one tokenizer.json); docs/MARIAN.md shows \
    how to make them from an opus-mt download";

fn default_max_positions() -> usize {
    1024
}
fn default_share() -> bool {
    true
}

/// The fields of a Hugging Face `MarianConfig` (config.json) that retort reads; others are
/// ignored. Defaults are Hugging Face's where it has one that opus-mt models rely on.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct MarianConfig {
    /// Size of the (shared) vocabulary.
    pub vocab_size: usize,
    /// Size of the decoder's vocabulary; must equal `vocab_size` when set.
    #[serde(default)]
    pub decoder_vocab_size: Option<usize>,
    /// Longest sequence the position embeddings cover.
    #[serde(default = "default_max_positions")]
    pub max_position_embeddings: usize,
    /// Encoder layers.
    pub encoder_layers: usize,
    /// Encoder feed-forward width.
    pub encoder_ffn_dim: usize,
    /// Encoder attention heads.
    pub encoder_attention_heads: usize,
    /// Decoder layers.
    pub decoder_layers: usize,
    /// Decoder feed-forward width.
    pub decoder_ffn_dim: usize,
    /// Decoder attention heads.
    pub decoder_attention_heads: usize,
    /// Hidden size.
    pub d_model: usize,
    /// Activation (`swish` for opus-mt).
    #[serde(default)]
    pub activation_function: candle_nn::Activation,
    /// First decoder input (the pad token for opus-mt).
    pub decoder_start_token_id: u32,
    /// Multiply embeddings by `sqrt(d_model)`.
    #[serde(default)]
    pub scale_embedding: bool,
    /// Padding token; never generated.
    pub pad_token_id: u32,
    /// End of sentence: appended to every source, and ends generation.
    pub eos_token_id: u32,
    /// Encoder and decoder share their embeddings (the only layout supported).
    #[serde(default = "default_share")]
    pub share_encoder_decoder_embeddings: bool,
    /// `marian` when present.
    #[serde(default)]
    pub model_type: Option<String>,
}

impl MarianConfig {
    /// Checks what candle's Marian supports.
    fn check(&self) -> std::result::Result<(), String> {
        if let Some(t) = &self.model_type {
            if t != "marian" {
                return Err(format!("`model_type` is `{t}`, expected `marian`"));
            }
        }
        if self
            .decoder_vocab_size
            .is_some_and(|d| d != self.vocab_size)
        {
            return Err(format!(
                "`decoder_vocab_size` ({}) differs from `vocab_size` ({}): separate decoder \
                 vocabularies are not supported",
                self.decoder_vocab_size.unwrap_or_default(),
                self.vocab_size
            ));
        }
        if !self.share_encoder_decoder_embeddings {
            return Err(
                "`share_encoder_decoder_embeddings` is false: only models whose encoder \
                        and decoder share embeddings are supported"
                    .into(),
            );
        }
        let heads_ok = |h: usize| h > 0 && self.d_model.is_multiple_of(h);
        if !heads_ok(self.encoder_attention_heads) || !heads_ok(self.decoder_attention_heads) {
            return Err("`d_model` must be a multiple of the attention heads".into());
        }
        if !self.d_model.is_multiple_of(2) {
            return Err("`d_model` must be even".into());
        }
        let ids = [
            self.pad_token_id,
            self.eos_token_id,
            self.decoder_start_token_id,
        ];
        if ids.iter().any(|&i| i as usize >= self.vocab_size) {
            return Err(
                "`pad_token_id`, `eos_token_id` and `decoder_start_token_id` must be \
                        below `vocab_size`"
                    .into(),
            );
        }
        Ok(())
    }

    /// candle-transformers' config.
    pub(super) fn to_candle(&self) -> Config {
        Config {
            vocab_size: self.vocab_size,
            decoder_vocab_size: Some(self.vocab_size),
            max_position_embeddings: self.max_position_embeddings,
            encoder_layers: self.encoder_layers,
            encoder_ffn_dim: self.encoder_ffn_dim,
            encoder_attention_heads: self.encoder_attention_heads,
            decoder_layers: self.decoder_layers,
            decoder_ffn_dim: self.decoder_ffn_dim,
            decoder_attention_heads: self.decoder_attention_heads,
            use_cache: true,
            is_encoder_decoder: true,
            activation_function: self.activation_function,
            d_model: self.d_model,
            decoder_start_token_id: self.decoder_start_token_id,
            scale_embedding: self.scale_embedding,
            pad_token_id: self.pad_token_id,
            eos_token_id: self.eos_token_id,
            forced_eos_token_id: self.eos_token_id,
            share_encoder_decoder_embeddings: true,
        }
    }
}

/// Names and shapes of the tensors candle's Marian reads, in Hugging Face `MarianMTModel`
/// naming (position embeddings are computed, not read).
pub fn tensor_shapes(cfg: &MarianConfig) -> Vec<(String, Vec<usize>)> {
    let d = cfg.d_model;
    let mut out = vec![
        ("final_logits_bias".to_string(), vec![1, cfg.vocab_size]),
        ("model.shared.weight".to_string(), vec![cfg.vocab_size, d]),
    ];
    let attention = |p: &str, out: &mut Vec<(String, Vec<usize>)>| {
        for proj in ["q_proj", "k_proj", "v_proj", "out_proj"] {
            out.push((format!("{p}.{proj}.weight"), vec![d, d]));
            out.push((format!("{p}.{proj}.bias"), vec![d]));
        }
        out.push((format!("{p}_layer_norm.weight"), vec![d]));
        out.push((format!("{p}_layer_norm.bias"), vec![d]));
    };
    let sides = [
        ("encoder", cfg.encoder_layers, cfg.encoder_ffn_dim),
        ("decoder", cfg.decoder_layers, cfg.decoder_ffn_dim),
    ];
    for (side, layers, ffn) in sides {
        for l in 0..layers {
            let p = format!("model.{side}.layers.{l}");
            attention(&format!("{p}.self_attn"), &mut out);
            if side == "decoder" {
                attention(&format!("{p}.encoder_attn"), &mut out);
            }
            out.push((format!("{p}.fc1.weight"), vec![ffn, d]));
            out.push((format!("{p}.fc1.bias"), vec![ffn]));
            out.push((format!("{p}.fc2.weight"), vec![d, ffn]));
            out.push((format!("{p}.fc2.bias"), vec![d]));
            out.push((format!("{p}.final_layer_norm.weight"), vec![d]));
            out.push((format!("{p}.final_layer_norm.bias"), vec![d]));
        }
    }
    out
}

fn missing(path: &Path, what: &str) -> Error {
    Error::user(format!("`{}` does not exist: {what}", path.display())).with_hint(FOLDER_HINT)
}

fn load_tokenizer(path: &Path) -> Result<Tokenizer> {
    Tokenizer::from_file(path).map_err(|e| {
        Error::user(format!(
            "`{}` is not a tokenizer in the `tokenizers` JSON format: {e}",
            path.display()
        ))
        .with_hint("convert the opus-mt sentencepiece files as docs/MARIAN.md shows")
    })
}

/// Reads and checks `config.json` of `folder` (which must exist).
pub(super) fn read_config(folder: &Path) -> Result<MarianConfig> {
    if !folder.is_dir() {
        return Err(missing(folder, "expected a Marian model folder"));
    }
    let config_path = folder.join(CONFIG_FILE);
    if !config_path.is_file() {
        return Err(missing(&config_path, "the model's Hugging Face config"));
    }
    let text = fs_err::read_to_string(&config_path).map_err(|e| {
        Error::user(format!("cannot read `{}`", config_path.display())).with_source(e)
    })?;
    let config: MarianConfig = serde_json::from_str(&text).map_err(|e| {
        Error::user(format!(
            "`{}` is not a Marian config: {e}",
            config_path.display()
        ))
        .with_hint("use the config.json that comes with the opus-mt model")
    })?;
    config
        .check()
        .map_err(|e| Error::user(format!("`{}`: {e}", config_path.display())))?;
    Ok(config)
}

/// Reads the weights of `folder` onto `device`, completed and checked against `config`.
pub(super) fn read_weights(
    folder: &Path,
    config: &MarianConfig,
    device: &Device,
) -> Result<HashMap<String, Tensor>> {
    let weights_path = folder.join(WEIGHTS_FILE);
    if !weights_path.is_file() {
        return Err(missing(
            &weights_path,
            "the model's weights (a pytorch_model.bin can be converted, see docs/MARIAN.md)",
        ));
    }
    let tensors = crate::models::folder::read_safetensors(&weights_path, device)?;
    complete_tensors(tensors, config, &weights_path, device)
}

/// The source and target tokenizers of `folder` (two files, or one shared), checked against
/// `config`.
pub(super) fn read_tokenizers(
    folder: &Path,
    config: &MarianConfig,
) -> Result<(Tokenizer, Tokenizer)> {
    let (source, target) = {
        let (s, t) = (folder.join(SOURCE_TOKENIZER), folder.join(TARGET_TOKENIZER));
        let shared = folder.join(SHARED_TOKENIZER);
        if s.is_file() && t.is_file() {
            (load_tokenizer(&s)?, load_tokenizer(&t)?)
        } else if shared.is_file() {
            let tok = load_tokenizer(&shared)?;
            (tok.clone(), tok)
        } else {
            return Err(Error::user(format!(
                "`{}` has no tokenizer: expected `{SOURCE_TOKENIZER}` and \
                 `{TARGET_TOKENIZER}`, or one `{SHARED_TOKENIZER}`",
                folder.display()
            ))
            .with_hint(FOLDER_HINT));
        }
    };
    for (side, tok) in [("source", &source), ("target", &target)] {
        check_tokenizer(tok, config)
            .map_err(|e| Error::user(format!("`{}`: {side} tokenizer: {e}", folder.display()))
                .with_hint("the tokenizer ids must be the model's (vocab.json); convert as docs/MARIAN.md shows"))?;
    }
    Ok((source, target))
}

/// Fills in what Hugging Face checkpoints may leave out and checks every tensor candle reads
/// is there with the right shape.
fn complete_tensors(
    mut tensors: HashMap<String, Tensor>,
    cfg: &MarianConfig,
    path: &Path,
    device: &Device,
) -> Result<HashMap<String, Tensor>> {
    // Checkpoints saved with tied weights may keep only one of the embedding copies.
    if !tensors.contains_key("model.shared.weight") {
        for alt in [
            "model.encoder.embed_tokens.weight",
            "model.decoder.embed_tokens.weight",
            "lm_head.weight",
        ] {
            if let Some(t) = tensors.get(alt).cloned() {
                tensors.insert("model.shared.weight".into(), t);
                break;
            }
        }
    }
    if !tensors.contains_key("final_logits_bias") {
        tensors.insert(
            "final_logits_bias".into(),
            Tensor::zeros((1, cfg.vocab_size), DType::F32, device)?,
        );
    }
    let mut problems = Vec::new();
    for (name, shape) in tensor_shapes(cfg) {
        match tensors.get(&name) {
            None => problems.push(format!("`{name}` is missing")),
            Some(t) if t.dims() != shape.as_slice() => problems.push(format!(
                "`{name}` has shape {:?}, config.json implies {shape:?}",
                t.dims()
            )),
            Some(_) => {}
        }
    }
    if !problems.is_empty() {
        let n = problems.len();
        problems.truncate(5);
        return Err(Error::user(format!(
            "`{}` does not match a Marian model ({n} problems): {}",
            path.display(),
            problems.join("; ")
        ))
        .with_hint(
            "the weights must use Hugging Face MarianMTModel names and match config.json; \
             save them with `MarianMTModel.save_pretrained(folder, safe_serialization=True)`",
        ));
    }
    Ok(tensors)
}

/// The tokenizer's special tokens agree with the model's ids.
fn check_tokenizer(tok: &Tokenizer, cfg: &MarianConfig) -> std::result::Result<(), String> {
    if tok.get_vocab_size(true) > cfg.vocab_size {
        return Err(format!(
            "{} tokens, the model has only {}",
            tok.get_vocab_size(true),
            cfg.vocab_size
        ));
    }
    for (name, id) in [("</s>", cfg.eos_token_id), ("<pad>", cfg.pad_token_id)] {
        if let Some(t) = tok.token_to_id(name) {
            if t != id {
                return Err(format!("`{name}` has id {t}, but config.json says {id}"));
            }
        }
    }
    Ok(())
}
