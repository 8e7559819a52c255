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

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, IndexOp, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::marian::{Config, MTModel};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
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
        let heads_ok = |h: usize| h > 0 && self.d_model % h == 0;
        if !heads_ok(self.encoder_attention_heads) || !heads_ok(self.decoder_attention_heads) {
            return Err("`d_model` must be a multiple of the attention heads".into());
        }
        if self.d_model % 2 != 0 {
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
    fn to_candle(&self) -> Config {
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

/// How each output token is chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decoding {
    /// The most likely token.
    Greedy,
    /// Beam search with this many beams; a hypothesis scores the sum of its log-probabilities
    /// divided by its length (with the end-of-sentence token). A text stops when `size`
    /// hypotheses have ended.
    Beam {
        /// Beams.
        size: usize,
    },
    /// A token drawn from the softmax of the logits divided by `temperature`.
    Sample {
        /// Softmax temperature (> 0).
        temperature: f64,
    },
}

/// Generation settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Generation {
    /// Token choice.
    pub decoding: Decoding,
    /// Most tokens generated per text (the end-of-sentence token not counted).
    pub max_new_tokens: usize,
}

/// One translation direction: a model and its tokenizers.
pub struct Marian {
    model: MTModel,
    config: MarianConfig,
    source: Tokenizer,
    target: Tokenizer,
    device: Device,
    folder: PathBuf,
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

impl Marian {
    /// Loads a model folder (see the module docs) onto `device`, in f32: candle's Marian
    /// decoder adds an f32 causal mask to its attention scores, so it cannot run in half
    /// precision.
    pub fn load(folder: &Path, device: &Device) -> Result<Self> {
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
        let weights_path = folder.join(WEIGHTS_FILE);
        if !weights_path.is_file() {
            return Err(missing(
                &weights_path,
                "the model's weights (a pytorch_model.bin can be converted, see docs/MARIAN.md)",
            ));
        }
        let device = device.clone();
        let tensors = crate::models::folder::read_safetensors(&weights_path, &device)?;
        let tensors = complete_tensors(tensors, &config, &weights_path, &device)?;
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &device);
        let model = MTModel::new(&config.to_candle(), vb).map_err(|e| {
            Error::user(format!(
                "cannot build the Marian model from `{}`",
                folder.display()
            ))
            .with_source(e)
        })?;
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
            check_tokenizer(tok, &config)
                .map_err(|e| Error::user(format!("`{}`: {side} tokenizer: {e}", folder.display()))
                    .with_hint("the tokenizer ids must be the model's (vocab.json); convert as docs/MARIAN.md shows"))?;
        }
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

    /// Generates target ids (without end-of-sentence) for source ids of one length; `seeds[i]`
    /// seeds row `i`'s sampling.
    pub fn generate(
        &self,
        src: &[Vec<u32>],
        seeds: &[u64],
        gen: &Generation,
    ) -> Result<Vec<Vec<u32>>> {
        if src.is_empty() {
            return Ok(Vec::new());
        }
        // The decoder positions must stay inside the position table.
        let max_new = gen
            .max_new_tokens
            .min(self.config.max_position_embeddings.saturating_sub(1));
        Ok(match gen.decoding {
            Decoding::Beam { size } => self.beam(src, size.max(1), max_new)?,
            _ => self.stepwise(src, seeds, gen.decoding, max_new)?,
        })
    }

    /// Greedy or sampled decoding with the key/value cache.
    fn stepwise(
        &self,
        src: &[Vec<u32>],
        seeds: &[u64],
        decoding: Decoding,
        max_new: usize,
    ) -> candle_core::Result<Vec<Vec<u32>>> {
        let b = src.len();
        let mut model = self.model.clone();
        // candle's encoder layers cache their keys and values too: start clean.
        model.reset_kv_cache();
        let enc = model.encoder().forward(&self.ids_tensor(src)?, 0)?;
        let mut rngs: Vec<ChaCha8Rng> = (0..b)
            .map(|i| ChaCha8Rng::seed_from_u64(seeds.get(i).copied().unwrap_or(0)))
            .collect();
        let (eos, pad) = (self.config.eos_token_id, self.config.pad_token_id);
        let mut out = vec![Vec::new(); b];
        let mut done = vec![false; b];
        let mut last = vec![self.config.decoder_start_token_id; b];
        for step in 0..max_new {
            let input = Tensor::from_vec(last.clone(), (b, 1), &self.device)?;
            let logits = model
                .decode(&input, &enc, step)?
                .squeeze(1)?
                .to_dtype(DType::F32)?
                .to_vec2::<f32>()?;
            for (i, mut row) in logits.into_iter().enumerate() {
                if done[i] {
                    last[i] = eos;
                    continue;
                }
                row[pad as usize] = f32::NEG_INFINITY;
                let tok = match decoding {
                    Decoding::Sample { temperature } => sample(&row, temperature, &mut rngs[i]),
                    _ => argmax(&row),
                };
                if tok == eos {
                    done[i] = true;
                } else {
                    out[i].push(tok);
                }
                last[i] = tok;
            }
            if done.iter().all(|&d| d) {
                break;
            }
        }
        Ok(out)
    }

    /// Beam search. candle's cache cannot be reordered between beams, so every step runs the
    /// decoder over the whole prefix (quadratic in the output length, fine for sentences).
    fn beam(
        &self,
        src: &[Vec<u32>],
        k: usize,
        max_new: usize,
    ) -> candle_core::Result<Vec<Vec<u32>>> {
        struct Hyp {
            tokens: Vec<u32>,
            score: f64,
        }
        let b = src.len();
        let mut model = self.model.clone();
        model.reset_kv_cache();
        let enc = model.encoder().forward(&self.ids_tensor(src)?, 0)?;
        let rows: Vec<u32> = (0..b as u32)
            .flat_map(|i| std::iter::repeat_n(i, k))
            .collect();
        let enc = enc.index_select(&Tensor::new(rows, &self.device)?, 0)?;
        let (eos, pad, start) = (
            self.config.eos_token_id,
            self.config.pad_token_id,
            self.config.decoder_start_token_id,
        );
        let mut alive: Vec<Vec<Hyp>> = (0..b)
            .map(|_| {
                vec![Hyp {
                    tokens: Vec::new(),
                    score: 0.0,
                }]
            })
            .collect();
        let mut ended: Vec<Vec<(Vec<u32>, f64)>> = (0..b).map(|_| Vec::new()).collect();
        let mut done = vec![false; b];
        for step in 0..max_new {
            let mut input = Vec::with_capacity(b * k * (step + 1));
            for hyps in &alive {
                for j in 0..k {
                    // Empty slots (and finished texts) repeat a live hypothesis; ignored below.
                    let h = hyps.get(j).or(hyps.first());
                    input.push(start);
                    match h {
                        Some(h) => input.extend(&h.tokens),
                        None => input.extend(std::iter::repeat_n(eos, step)),
                    }
                }
            }
            let input = Tensor::from_vec(input, (b * k, step + 1), &self.device)?;
            model.decoder().reset_kv_cache();
            let logits = model
                .decode(&input, &enc, 0)?
                .i((.., step, ..))?
                .to_dtype(DType::F32)?
                .to_vec2::<f32>()?;
            for i in 0..b {
                if done[i] {
                    continue;
                }
                let mut cands: Vec<(f64, usize, u32)> = Vec::new();
                for (j, h) in alive[i].iter().enumerate() {
                    let mut row = logits[i * k + j].clone();
                    row[pad as usize] = f32::NEG_INFINITY;
                    for (tok, lp) in top_log_probs(&row, 2 * k) {
                        cands.push((h.score + lp, j, tok));
                    }
                }
                cands.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
                let mut next = Vec::with_capacity(k);
                for (score, j, tok) in cands {
                    let mut tokens = alive[i][j].tokens.clone();
                    if tok == eos {
                        let len = (tokens.len() + 1) as f64;
                        ended[i].push((tokens, score / len));
                    } else {
                        tokens.push(tok);
                        next.push(Hyp { tokens, score });
                        if next.len() == k {
                            break;
                        }
                    }
                }
                alive[i] = next;
                if ended[i].len() >= k || alive[i].is_empty() {
                    done[i] = true;
                }
            }
            if done.iter().all(|&d| d) {
                break;
            }
        }
        Ok((0..b)
            .map(|i| {
                let mut all = std::mem::take(&mut ended[i]);
                if !done[i] {
                    for h in alive[i].drain(..) {
                        let len = h.tokens.len().max(1) as f64;
                        all.push((h.tokens, h.score / len));
                    }
                }
                // Best score; on a tie, the first found.
                let mut best: Option<(Vec<u32>, f64)> = None;
                for (t, s) in all {
                    if best.as_ref().is_none_or(|b| s > b.1) {
                        best = Some((t, s));
                    }
                }
                best.map(|b| b.0).unwrap_or_default()
            })
            .collect())
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

/// Index of the largest value (the first on a tie).
fn argmax(row: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best as u32
}

/// A token drawn from `softmax(row / temperature)` with one draw from `rng`.
fn sample(row: &[f32], temperature: f64, rng: &mut ChaCha8Rng) -> u32 {
    let t = temperature.max(1e-6);
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let weights: Vec<f64> = row.iter().map(|&v| ((v as f64 - max) / t).exp()).collect();
    let total: f64 = weights.iter().sum();
    let mut u = rng.random::<f64>() * total;
    let mut last_positive = 0;
    for (i, w) in weights.iter().enumerate() {
        if *w > 0.0 {
            last_positive = i;
            if u < *w {
                return i as u32;
            }
            u -= w;
        }
    }
    last_positive as u32
}

/// The `n` most likely tokens with their log-probabilities (ties: lower id first).
fn top_log_probs(row: &[f32], n: usize) -> Vec<(u32, f64)> {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let log_total = row
        .iter()
        .map(|&v| (v as f64 - max).exp())
        .sum::<f64>()
        .ln()
        + max;
    let mut idx: Vec<u32> = (0..row.len() as u32).collect();
    idx.sort_by(|&a, &b| row[b as usize].total_cmp(&row[a as usize]).then(a.cmp(&b)));
    idx.into_iter()
        .take(n)
        .filter(|&i| row[i as usize].is_finite())
        .map(|i| (i, row[i as usize] as f64 - log_total))
        .collect()
}

/// A forward (language → pivot) and a backward (pivot → language) model.
pub struct MarianPair {
    /// Language → pivot.
    pub forward: Marian,
    /// Pivot → language.
    pub backward: Marian,
}

/// Seed of one direction of a round trip, from the copy's seed.
fn direction_seed(seed: u64, direction: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64_with_seed(direction.as_bytes(), seed)
}

impl MarianPair {
    /// Loads both folders onto `device`; errors name the direction.
    pub fn load(forward: &Path, backward: &Path, device: &Device) -> Result<Self> {
        Ok(MarianPair {
            forward: Marian::load(forward, device).map_err(|e| e.context("`forward_model`"))?,
            backward: Marian::load(backward, device).map_err(|e| e.context("`backward_model`"))?,
        })
    }

    /// Translates every text into the pivot and back. Text `i` is sampled with generators
    /// seeded from `seeds[i]` (one per direction). Each text gets its round trip or the reason
    /// it failed.
    pub fn round_trip(
        &self,
        texts: &[String],
        seeds: &[u64],
        gen: &Generation,
        batch_size: usize,
        pool: &rayon::ThreadPool,
    ) -> Vec<std::result::Result<String, String>> {
        let there_seeds: Vec<u64> = seeds
            .iter()
            .map(|&s| direction_seed(s, "forward"))
            .collect();
        let there = self
            .forward
            .translate(texts, &there_seeds, gen, batch_size, pool);
        let (mut pivot_texts, mut back_seeds, mut which) = (Vec::new(), Vec::new(), Vec::new());
        for (i, r) in there.iter().enumerate() {
            if let Ok(t) = r {
                pivot_texts.push(t.clone());
                back_seeds.push(direction_seed(seeds[i], "backward"));
                which.push(i);
            }
        }
        let back = self
            .backward
            .translate(&pivot_texts, &back_seeds, gen, batch_size, pool);
        let mut out: Vec<std::result::Result<String, String>> = there
            .into_iter()
            .map(|r| {
                r.and(Err(String::new()))
                    .map_err(|e| format!("forward: {e}"))
            })
            .collect();
        for (i, r) in which.into_iter().zip(back) {
            out[i] = r.map_err(|e| format!("backward: {e}"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::tiny::{write_tiny_marian, TinyMarian, TINY_WORDS};

    fn tiny(eos_bias: f32) -> (tempfile::TempDir, Marian) {
        let dir = tempfile::tempdir().unwrap();
        let t = TinyMarian {
            seed: 5,
            layers: 2,
            eos_bias,
            ..TinyMarian::default()
        };
        write_tiny_marian(dir.path(), &t).unwrap();
        let m = Marian::load(dir.path(), &Device::Cpu).unwrap();
        (dir, m)
    }

    /// 24 texts of 1 to 6 words (several of each length), some with unknown words.
    fn texts() -> Vec<String> {
        (0..24)
            .map(|i| {
                let n = 1 + i % 6;
                let mut words: Vec<&str> = (0..n)
                    .map(|j| TINY_WORDS[(i * 7 + j * 3) % TINY_WORDS.len()])
                    .collect();
                if i % 5 == 0 {
                    words.push("zebra");
                }
                words.join(" ")
            })
            .collect()
    }

    fn pool(threads: usize) -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
    }

    fn gen(decoding: Decoding, max_new_tokens: usize) -> Generation {
        Generation {
            decoding,
            max_new_tokens,
        }
    }

    const SAMPLE: Decoding = Decoding::Sample { temperature: 0.9 };

    #[test]
    fn encoder_and_decoder_have_the_right_shapes() {
        let (_d, m) = tiny(0.0);
        let src = vec![vec![2, 3, 4, 0], vec![5, 6, 7, 0], vec![8, 9, 10, 0]];
        let enc = m.encoder_output(&src).unwrap();
        assert_eq!(enc.dims(), &[3, 4, 16]);
        let start = m.config().decoder_start_token_id;
        let prefix = vec![vec![start, 2], vec![start, 3], vec![start, 4]];
        let logits = m.decoder_logits(&src, &prefix).unwrap();
        assert_eq!(logits.dims(), &[3, 2, TINY_WORDS.len() + 3]);
        // Source ids end with `</s>`; unknown words are `<unk>`.
        assert_eq!(m.source_ids("the film zebra").unwrap(), vec![2, 4, 1, 0]);
    }

    #[test]
    fn generation_stops_at_eos_and_at_max_new_tokens() {
        let src = vec![vec![2, 3, 0], vec![4, 5, 0]];
        let (_d, stops) = tiny(100.0);
        for d in [Decoding::Greedy, SAMPLE, Decoding::Beam { size: 3 }] {
            let out = stops.generate(&src, &[1, 2], &gen(d, 10)).unwrap();
            assert_eq!(out, vec![Vec::<u32>::new(); 2], "{d:?}");
        }
        let (_d, never) = tiny(-100.0);
        for d in [Decoding::Greedy, SAMPLE, Decoding::Beam { size: 3 }] {
            let out = never.generate(&src, &[1, 2], &gen(d, 7)).unwrap();
            for o in &out {
                assert_eq!(o.len(), 7, "{d:?}");
                assert!(!o.contains(&0) && !o.contains(&never.config().pad_token_id));
            }
        }
        // A model that can stop stays within the limit.
        let (_d, m) = tiny(0.0);
        for o in m.generate(&src, &[1, 2], &gen(SAMPLE, 5)).unwrap() {
            assert!(o.len() <= 5);
        }
    }

    #[test]
    fn output_does_not_depend_on_batch_size_or_threads() {
        let (_d, m) = tiny(0.0);
        let texts = texts();
        let seeds: Vec<u64> = (0..texts.len() as u64).map(|i| i * 31 + 7).collect();
        for d in [SAMPLE, Decoding::Greedy, Decoding::Beam { size: 2 }] {
            let g = gen(d, 8);
            let base = m.translate(&texts, &seeds, &g, 16, &pool(2));
            assert!(base.iter().all(Result::is_ok), "{base:?}");
            // Not trivially equal: the texts differ from each other.
            let distinct: std::collections::HashSet<&String> =
                base.iter().map(|r| r.as_ref().unwrap()).collect();
            assert!(distinct.len() > 4, "{d:?}: {base:?}");
            eprintln!("{d:?}: {:?}", &base[..4]);
            assert_eq!(
                base,
                m.translate(&texts, &seeds, &g, 16, &pool(2)),
                "{d:?} again"
            );
            assert_eq!(
                base,
                m.translate(&texts, &seeds, &g, 1, &pool(2)),
                "{d:?} batch 1"
            );
            assert_eq!(
                base,
                m.translate(&texts, &seeds, &g, 3, &pool(1)),
                "{d:?} 1 thread"
            );
            // Alone, and with the texts in another order.
            let rev: Vec<String> = texts.iter().rev().cloned().collect();
            let rev_seeds: Vec<u64> = seeds.iter().rev().copied().collect();
            let mut back = m.translate(&rev, &rev_seeds, &g, 16, &pool(2));
            back.reverse();
            assert_eq!(base, back, "{d:?} reversed");
        }
    }

    #[test]
    fn other_seeds_sample_other_texts() {
        let (_d, m) = tiny(-2.0);
        let texts = vec!["the film was good".to_string(); 8];
        let g = gen(Decoding::Sample { temperature: 2.0 }, 8);
        let seeds: Vec<u64> = (0..8).map(|c| crate::seed::copy_seed(42, c)).collect();
        let out: Vec<String> = m
            .translate(&texts, &seeds, &g, 8, &pool(1))
            .into_iter()
            .map(Result::unwrap)
            .collect();
        let distinct: std::collections::HashSet<&String> = out.iter().collect();
        assert_eq!(distinct.len(), 8, "{out:?}");
        // Greedy ignores the seed.
        let greedy = m.translate(&texts, &seeds, &gen(Decoding::Greedy, 8), 8, &pool(1));
        assert!(greedy.iter().all(|g| g == &greedy[0]));
    }

    #[test]
    fn beam_of_one_is_greedy() {
        let (_d, m) = tiny(0.0);
        let texts = texts();
        let seeds = vec![0; texts.len()];
        let greedy = m.translate(&texts, &seeds, &gen(Decoding::Greedy, 8), 8, &pool(1));
        let beam = m.translate(
            &texts,
            &seeds,
            &gen(Decoding::Beam { size: 1 }, 8),
            8,
            &pool(1),
        );
        assert_eq!(greedy, beam);
    }

    #[test]
    fn round_trip_goes_there_and_back() {
        let dir = tempfile::tempdir().unwrap();
        let (f, b) = (dir.path().join("f"), dir.path().join("b"));
        write_tiny_marian(
            &f,
            &TinyMarian {
                seed: 1,
                ..TinyMarian::default()
            },
        )
        .unwrap();
        write_tiny_marian(
            &b,
            &TinyMarian {
                seed: 2,
                ..TinyMarian::default()
            },
        )
        .unwrap();
        let pair = MarianPair::load(&f, &b, &Device::Cpu).unwrap();
        let mut texts = texts();
        texts.push(vec!["film"; 80].join(" "));
        let seeds: Vec<u64> = (0..texts.len() as u64).collect();
        let g = gen(SAMPLE, 6);
        let out = pair.round_trip(&texts, &seeds, &g, 4, &pool(2));
        assert_eq!(out.len(), texts.len());
        assert!(out[..24].iter().all(Result::is_ok));
        let err = out[24].as_ref().unwrap_err();
        assert!(err.starts_with("forward: the text is 81 tokens"), "{err}");
        assert_eq!(out, pair.round_trip(&texts, &seeds, &g, 1, &pool(1)));
    }

    #[test]
    fn missing_files_are_named_with_what_to_put_there() {
        let dir = tempfile::tempdir().unwrap();
        let nope = dir.path().join("nope");
        let e = Marian::load(&nope, &Device::Cpu).err().unwrap();
        assert!(
            e.render().contains("nope") && e.render().contains("config.json"),
            "{}",
            e.render()
        );
        write_tiny_marian(dir.path(), &TinyMarian::default()).unwrap();
        std::fs::rename(dir.path().join(SHARED_TOKENIZER), dir.path().join("x.json")).unwrap();
        let e = Marian::load(dir.path(), &Device::Cpu)
            .err()
            .unwrap()
            .render();
        assert!(
            e.contains(SOURCE_TOKENIZER) && e.contains("docs/MARIAN.md"),
            "{e}"
        );
        std::fs::rename(dir.path().join("x.json"), dir.path().join(SOURCE_TOKENIZER)).unwrap();
        std::fs::copy(
            dir.path().join(SOURCE_TOKENIZER),
            dir.path().join(TARGET_TOKENIZER),
        )
        .unwrap();
        Marian::load(dir.path(), &Device::Cpu).unwrap();
        std::fs::remove_file(dir.path().join(WEIGHTS_FILE)).unwrap();
        let e = Marian::load(dir.path(), &Device::Cpu)
            .err()
            .unwrap()
            .render();
        assert!(
            e.contains(WEIGHTS_FILE) && e.contains("does not exist"),
            "{e}"
        );
    }

    #[test]
    fn wrong_weights_and_configs_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        write_tiny_marian(dir.path(), &TinyMarian::default()).unwrap();
        let mut cfg = crate::translate::tiny::tiny_config(2);
        std::fs::write(
            dir.path().join(CONFIG_FILE),
            serde_json::to_string(&cfg).unwrap(),
        )
        .unwrap();
        let e = Marian::load(dir.path(), &Device::Cpu)
            .err()
            .unwrap()
            .render();
        assert!(
            e.contains("model.encoder.layers.1") && e.contains("missing"),
            "{e}"
        );
        cfg.encoder_layers = 1;
        cfg.decoder_layers = 1;
        cfg.share_encoder_decoder_embeddings = false;
        std::fs::write(
            dir.path().join(CONFIG_FILE),
            serde_json::to_string(&cfg).unwrap(),
        )
        .unwrap();
        let e = Marian::load(dir.path(), &Device::Cpu)
            .err()
            .unwrap()
            .render();
        assert!(e.contains("share_encoder_decoder_embeddings"), "{e}");
    }
}
