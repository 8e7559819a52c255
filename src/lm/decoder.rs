//! The network behind [`crate::lm::causal::CausalLm`]: a llama-family decoder (llama, qwen2)
//! written for retort, loaded from a GGUF file (quantized weights) or a Hugging Face folder.
//!
//! candle-transformers' llama models return the logits of the last position only, so scoring
//! every token of a text took one forward pass per token. This decoder returns the logits of
//! every position of a batch of equal-length sequences in one pass, which is what the
//! `lm_teacher` stage needs, and keeps a key-value cache to continue a sequence, which is what
//! generation needs. Each row of a batch is computed on its own (no padding), so a row's logits
//! do not depend on which rows share its pass, up to the dense matrix products' blocking.

use candle_core::quantized::{gguf_file, QMatMul};
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::VarBuilder;
use serde::Deserialize;

use crate::error::{Error, Result};

/// A linear map, quantized (GGUF) or dense, with an optional bias.
#[derive(Clone)]
struct Proj {
    weight: QMatMul,
    bias: Option<Tensor>,
}

impl Proj {
    /// `x` is (rows, in); the result is (rows, out).
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let y = self.weight.forward(x)?;
        match &self.bias {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }
}

/// One transformer block's weights.
#[derive(Clone)]
struct Block {
    attn_norm: Tensor,
    q: Proj,
    k: Proj,
    v: Proj,
    o: Proj,
    ffn_norm: Tensor,
    gate: Proj,
    up: Proj,
    down: Proj,
}

/// Head counts and sizes.
#[derive(Debug, Clone, Copy)]
struct Heads {
    query: usize,
    kv: usize,
    dim: usize,
}

/// Rotary position embedding tables, (positions, head_dim / 2) in the activation dtype.
#[derive(Clone)]
struct Rope {
    cos: Tensor,
    sin: Tensor,
    /// GGUF llama files pair dimensions (2i, 2i + 1); Hugging Face weights pair (i, i + d/2).
    interleaved: bool,
}

impl Rope {
    fn new(
        inv_freq: &[f64],
        positions: usize,
        interleaved: bool,
        dtype: DType,
        device: &Device,
    ) -> candle_core::Result<Rope> {
        let half = inv_freq.len();
        let mut cos = Vec::with_capacity(positions * half);
        let mut sin = Vec::with_capacity(positions * half);
        for p in 0..positions {
            for f in inv_freq {
                let angle = p as f64 * f;
                cos.push(angle.cos() as f32);
                sin.push(angle.sin() as f32);
            }
        }
        let table = |v: Vec<f32>| Tensor::from_vec(v, (positions, half), device)?.to_dtype(dtype);
        Ok(Rope {
            cos: table(cos)?,
            sin: table(sin)?,
            interleaved,
        })
    }

    /// Rotates `x` (batch, heads, t, head_dim) for positions `pos..pos + t`.
    fn apply(&self, x: &Tensor, pos: usize) -> candle_core::Result<Tensor> {
        let t = x.dim(2)?;
        let cos = self.cos.narrow(0, pos, t)?;
        let sin = self.sin.narrow(0, pos, t)?;
        if self.interleaved {
            candle_nn::rotary_emb::rope_i(x, &cos, &sin)
        } else {
            candle_nn::rotary_emb::rope(x, &cos, &sin)
        }
    }
}

/// `1 / theta^(2i / dim)` for `i < dim / 2`.
fn inverse_frequencies(dim: usize, theta: f64) -> Vec<f64> {
    (0..dim / 2)
        .map(|i| 1.0 / theta.powf(2.0 * i as f64 / dim as f64))
        .collect()
}

/// How a GGUF file's weights are held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GgufWeights {
    /// As stored (e.g. Q4_1), multiplied by candle's quantized kernels; activations in f32.
    Quantized,
    /// Dequantized once at load into this dtype, multiplied by dense kernels (BLAS-like gemm on
    /// the CPU, cuBLAS on a GPU), with activations in the same dtype.
    Dense(DType),
}

impl GgufWeights {
    /// Dense in `dtype` when the dequantized weights take at most `limit` bytes, else
    /// quantized. candle's CPU kernels for some formats (Q4_1, SmolLM2's) are scalar and ran
    /// about 50 times slower than dense f32 on 2 cores.
    pub fn choose(content: &gguf_file::Content, dtype: DType, limit: u64) -> GgufWeights {
        let elements: u64 = content
            .tensor_infos
            .values()
            .map(|t| t.shape.elem_count() as u64)
            .sum();
        if elements * dtype.size_in_bytes() as u64 <= limit {
            GgufWeights::Dense(dtype)
        } else {
            GgufWeights::Quantized
        }
    }
}

/// A llama-family decoder. Clones share the weights and have their own cache.
#[derive(Clone)]
pub struct Decoder {
    embed: Tensor,
    blocks: Vec<Block>,
    norm: Tensor,
    head: Proj,
    rope: Rope,
    heads: Heads,
    eps: f32,
    vocab: usize,
    device: Device,
    /// Keys and values of each block, (batch, kv heads, positions, head_dim).
    cache: Vec<(Tensor, Tensor)>,
}

impl Decoder {
    /// Size of the logits (the model's vocabulary, which may exceed the tokenizer's).
    pub fn vocab(&self) -> usize {
        self.vocab
    }

    /// Positions the rotary tables cover (the model's context length).
    pub fn max_positions(&self) -> usize {
        self.rope.cos.dim(0).unwrap_or(0)
    }

    /// Loads a GGUF file of llama architecture, its weights held as `weights` says.
    pub fn from_gguf(
        content: &gguf_file::Content,
        file: &mut fs_err::File,
        device: &Device,
        weights: GgufWeights,
    ) -> Result<Decoder> {
        let dtype = match weights {
            GgufWeights::Quantized => DType::F32,
            GgufWeights::Dense(d) => d,
        };
        let md = |key: &str| {
            content
                .metadata
                .get(key)
                .ok_or_else(|| Error::user(format!("the GGUF metadata has no `{key}`")))
        };
        let arch = md("general.architecture")?
            .to_string()
            .map_err(|e| Error::user("`general.architecture` is not a string").with_source(e))?
            .clone();
        if arch != "llama" {
            return Err(Error::user(format!(
                "GGUF architecture `{arch}` is not supported; supported: llama (or a Hugging Face folder of llama or qwen2)"
            )));
        }
        let int = |key: &str| -> Result<usize> {
            let key = format!("{arch}.{key}");
            md(&key)?
                .to_u32()
                .map(|v| v as usize)
                .map_err(|e| Error::user(format!("`{key}` is not an integer")).with_source(e))
        };
        let float = |key: &str| -> Option<f64> {
            content
                .metadata
                .get(&format!("{arch}.{key}"))
                .and_then(|v| v.to_f32().ok())
                .map(f64::from)
        };
        let hidden = int("embedding_length")?;
        let query = int("attention.head_count")?;
        let kv = int("attention.head_count_kv").unwrap_or(query);
        let layers = int("block_count")?;
        let dim = hidden / query;
        let rope_dim = int("rope.dimension_count").unwrap_or(dim);
        if rope_dim != dim {
            return Err(Error::user(format!(
                "the GGUF model rotates {rope_dim} of {dim} head dimensions; partial rotary embeddings are not supported"
            )));
        }
        let eps = float("attention.layer_norm_rms_epsilon").unwrap_or(1e-5) as f32;
        let theta = float("rope.freq_base").unwrap_or(10_000.0);
        let positions = int("context_length").unwrap_or(4096);

        let mut read = |name: &str| {
            content.tensor(file, name, device).map_err(|e| {
                Error::user(format!("cannot read tensor `{name}` of the GGUF file")).with_source(e)
            })
        };
        let matrix = |q: candle_core::quantized::QTensor| -> Result<Proj> {
            let weight = match weights {
                GgufWeights::Quantized => QMatMul::from_qtensor(q)?,
                GgufWeights::Dense(d) => QMatMul::Tensor(q.dequantize(device)?.to_dtype(d)?),
            };
            Ok(Proj { weight, bias: None })
        };
        let vector = |q: candle_core::quantized::QTensor| -> Result<Tensor> {
            Ok(q.dequantize(device)?.to_dtype(dtype)?)
        };
        let mut blocks = Vec::with_capacity(layers);
        for i in 0..layers {
            let mut proj = |part: &str| matrix(read(&format!("blk.{i}.{part}.weight"))?);
            let (q, k, v, o) = (
                proj("attn_q")?,
                proj("attn_k")?,
                proj("attn_v")?,
                proj("attn_output")?,
            );
            let (gate, up, down) = (proj("ffn_gate")?, proj("ffn_up")?, proj("ffn_down")?);
            blocks.push(Block {
                q,
                k,
                v,
                o,
                gate,
                up,
                down,
                attn_norm: vector(read(&format!("blk.{i}.attn_norm.weight"))?)?,
                ffn_norm: vector(read(&format!("blk.{i}.ffn_norm.weight"))?)?,
            });
        }
        let norm = vector(read("output_norm.weight")?)?;
        let embed = vector(read("token_embd.weight")?)?;
        // Without an `output.weight`, the head shares the token embeddings.
        let head_name = if content.tensor_infos.contains_key("output.weight") {
            "output.weight"
        } else {
            "token_embd.weight"
        };
        let head = if head_name == "token_embd.weight" && weights != GgufWeights::Quantized {
            Proj {
                weight: QMatMul::Tensor(embed.clone()),
                bias: None,
            }
        } else {
            matrix(read(head_name)?)?
        };
        let vocab = embed.dim(0)?;
        let rope = Rope::new(
            &inverse_frequencies(dim, theta),
            positions,
            true,
            dtype,
            device,
        )?;
        Ok(Decoder {
            embed,
            blocks,
            norm,
            head,
            rope,
            heads: Heads { query, kv, dim },
            eps,
            vocab,
            device: device.clone(),
            cache: Vec::new(),
        })
    }

    /// Loads a Hugging Face llama or qwen2 model from its `config.json` text and weights (in
    /// the dtype `vb` reads them as).
    pub fn from_hugging_face(config: &str, vb: VarBuilder) -> Result<Decoder> {
        let cfg: HfConfig = serde_json::from_str(config).map_err(|e| {
            Error::user("`config.json` does not describe a llama or qwen2 model").with_source(e)
        })?;
        let biased_qkv = match cfg.model_type.as_str() {
            "llama" => cfg.attention_bias,
            "qwen2" => true,
            other => {
                return Err(Error::user(format!(
                    "`config.json` has model_type `{other}`; supported: llama, qwen2 (or a GGUF file of llama architecture)"
                )))
            }
        };
        if let Some(act) = cfg.hidden_act.as_deref().filter(|a| *a != "silu") {
            return Err(Error::user(format!(
                "`config.json` asks for hidden_act `{act}`; supported: silu"
            )));
        }
        if cfg.use_sliding_window {
            return Err(Error::user(
                "`config.json` asks for sliding-window attention, which is not supported",
            )
            .with_hint(
                "set `use_sliding_window` to false if the texts are shorter than the window",
            ));
        }
        let biased_o = cfg.model_type == "llama" && cfg.attention_bias;
        let query = cfg.num_attention_heads;
        let kv = cfg.num_key_value_heads.unwrap_or(query);
        let dim = cfg.head_dim.unwrap_or(cfg.hidden_size / query);
        let (hidden, inner) = (cfg.hidden_size, cfg.intermediate_size);
        let dtype = vb.dtype();
        let device = vb.device().clone();
        let proj = |vb: VarBuilder, out: usize, inp: usize, bias: bool| -> Result<Proj> {
            Ok(Proj {
                weight: QMatMul::Tensor(vb.get((out, inp), "weight")?),
                bias: if bias {
                    Some(vb.get(out, "bias")?)
                } else {
                    None
                },
            })
        };
        let model = vb.pp("model");
        let mut blocks = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            let l = model.pp(format!("layers.{i}"));
            let a = l.pp("self_attn");
            let m = l.pp("mlp");
            blocks.push(Block {
                attn_norm: l.get(hidden, "input_layernorm.weight")?,
                q: proj(a.pp("q_proj"), query * dim, hidden, biased_qkv)?,
                k: proj(a.pp("k_proj"), kv * dim, hidden, biased_qkv)?,
                v: proj(a.pp("v_proj"), kv * dim, hidden, biased_qkv)?,
                o: proj(a.pp("o_proj"), hidden, query * dim, biased_o)?,
                ffn_norm: l.get(hidden, "post_attention_layernorm.weight")?,
                gate: proj(m.pp("gate_proj"), inner, hidden, false)?,
                up: proj(m.pp("up_proj"), inner, hidden, false)?,
                down: proj(m.pp("down_proj"), hidden, inner, false)?,
            });
        }
        let embed = model.get((cfg.vocab_size, hidden), "embed_tokens.weight")?;
        let head = if cfg.tie_word_embeddings {
            Proj {
                weight: QMatMul::Tensor(embed.clone()),
                bias: None,
            }
        } else {
            proj(vb.pp("lm_head"), cfg.vocab_size, hidden, false)?
        };
        let inv_freq = scaled_frequencies(
            inverse_frequencies(dim, cfg.rope_theta),
            cfg.rope_scaling.as_ref(),
        )?;
        let rope = Rope::new(
            &inv_freq,
            cfg.max_position_embeddings,
            false,
            dtype,
            &device,
        )?;
        Ok(Decoder {
            norm: model.get(hidden, "norm.weight")?,
            embed,
            blocks,
            head,
            rope,
            heads: Heads { query, kv, dim },
            eps: cfg.rms_norm_eps as f32,
            vocab: cfg.vocab_size,
            device,
            cache: Vec::new(),
        })
    }

    /// Logits (f32) of every position of `rows`, which must all have the same length `t`:
    /// shape (rows, t, vocab). Starts new sequences (the cache is cleared).
    pub fn all_logits(&mut self, rows: &[&[u32]]) -> Result<Tensor> {
        let (b, t) = (rows.len(), rows.first().map_or(0, |r| r.len()));
        if b == 0 || t == 0 || rows.iter().any(|r| r.len() != t) {
            return Err(Error::runtime(
                "all_logits needs one or more rows of one non-zero length",
            ));
        }
        let flat: Vec<u32> = rows.iter().flat_map(|r| r.iter().copied()).collect();
        let hidden = self.hidden(&flat, b, 0)?;
        self.cache.clear();
        let logits = self.head.forward(&hidden)?.to_dtype(DType::F32)?;
        Ok(logits.reshape((b, t, self.vocab))?)
    }

    /// Logits (f32, shape (vocab,)) of the token after `ids`, which continue the cached
    /// sequence at position `pos` (position 0 starts a new one).
    pub fn next_logits(&mut self, ids: &[u32], pos: usize) -> Result<Tensor> {
        if ids.is_empty() {
            return Err(Error::runtime("next_logits needs at least one token"));
        }
        let hidden = self.hidden(ids, 1, pos)?;
        let last = hidden.narrow(0, ids.len() - 1, 1)?;
        Ok(self.head.forward(&last)?.to_dtype(DType::F32)?.squeeze(0)?)
    }

    /// The final hidden states, (b * t, hidden), of `b` rows of `t` tokens (`ids` row-major)
    /// at positions `pos..pos + t`.
    fn hidden(&mut self, ids: &[u32], b: usize, pos: usize) -> Result<Tensor> {
        let t = ids.len() / b;
        let cached = self.cache.first().map_or(0, |(k, _)| k.dim(2).unwrap_or(0));
        if pos == 0 {
            self.cache.clear();
        } else if pos != cached {
            return Err(Error::runtime(format!(
                "position {pos} does not continue the {cached} cached positions"
            )));
        }
        if pos + t > self.max_positions() {
            return Err(Error::user(format!(
                "{} tokens exceed the model's context of {} positions",
                pos + t,
                self.max_positions()
            )));
        }
        let ids = Tensor::new(ids, &self.device)?;
        let mut x = self.embed.index_select(&ids, 0)?;
        let mask = (t > 1)
            .then(|| causal_mask(t, pos, &self.device))
            .transpose()?;
        for (i, block) in self.blocks.iter().enumerate() {
            let h = candle_nn::ops::rms_norm(&x, &block.attn_norm, self.eps)?;
            let past = self.cache.get(i).cloned();
            let (a, kv) = attend(
                block,
                &h,
                (b, t, pos),
                self.heads,
                &self.rope,
                past,
                mask.as_ref(),
            )?;
            if i < self.cache.len() {
                self.cache[i] = kv;
            } else {
                self.cache.push(kv);
            }
            x = (x + block.o.forward(&a)?)?;
            let h = candle_nn::ops::rms_norm(&x, &block.ffn_norm, self.eps)?;
            let gated =
                (candle_nn::ops::silu(&block.gate.forward(&h)?)? * block.up.forward(&h)?)?;
            x = (x + block.down.forward(&gated)?)?;
        }
        Ok(candle_nn::ops::rms_norm(&x, &self.norm, self.eps)?)
    }
}

/// Self-attention of one block over `h` ((b * t, hidden) at positions `pos..pos + t`), after
/// the cached keys and values `past`. Returns the heads' outputs, (b * t, heads * dim), and
/// the keys and values to cache.
fn attend(
    block: &Block,
    h: &Tensor,
    (b, t, pos): (usize, usize, usize),
    heads: Heads,
    rope: &Rope,
    past: Option<(Tensor, Tensor)>,
    mask: Option<&Tensor>,
) -> candle_core::Result<(Tensor, (Tensor, Tensor))> {
    let split = |x: Tensor, n: usize| {
        x.reshape((b, t, n, heads.dim))?
            .transpose(1, 2)?
            .contiguous()
    };
    let q = rope.apply(&split(block.q.forward(h)?, heads.query)?, pos)?;
    let k = rope.apply(&split(block.k.forward(h)?, heads.kv)?, pos)?;
    let v = split(block.v.forward(h)?, heads.kv)?;
    let (k, v) = match past {
        Some((pk, pv)) => (Tensor::cat(&[&pk, &k], 2)?, Tensor::cat(&[&pv, &v], 2)?),
        None => (k, v),
    };
    let total = k.dim(2)?;
    let group = heads.query / heads.kv;
    // Query heads grouped by the key-value head they share, (b, kv, group * t, dim): keys and
    // values are used in place, not repeated.
    let q = q.reshape((b, heads.kv, group * t, heads.dim))?;
    let scores = (q.matmul(&k.t()?)? * (1.0 / (heads.dim as f64).sqrt()))?.to_dtype(DType::F32)?;
    let scores = match mask {
        Some(m) => scores
            .reshape((b, heads.kv, group, t, total))?
            .broadcast_add(m)?
            .reshape((b, heads.kv, group * t, total))?,
        None => scores,
    };
    let weights = candle_nn::ops::softmax_last_dim(&scores)?.to_dtype(v.dtype())?;
    let out = weights
        .matmul(&v)?
        .reshape((b, heads.query, t, heads.dim))?
        .transpose(1, 2)?
        .reshape((b * t, heads.query * heads.dim))?;
    Ok((out, (k, v)))
}

/// Additive mask (f32, (t, pos + t)): query `i` (at position `pos + i`) sees keys up to
/// position `pos + i`.
fn causal_mask(t: usize, pos: usize, device: &Device) -> candle_core::Result<Tensor> {
    let total = pos + t;
    let mask: Vec<f32> = (0..t)
        .flat_map(|i| (0..total).map(move |j| if j > pos + i { f32::NEG_INFINITY } else { 0.0 }))
        .collect();
    Tensor::from_vec(mask, (t, total), device)
}

/// What the decoder reads from a Hugging Face `config.json`.
#[derive(Debug, Deserialize)]
struct HfConfig {
    model_type: String,
    hidden_size: usize,
    intermediate_size: usize,
    vocab_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    #[serde(default)]
    num_key_value_heads: Option<usize>,
    #[serde(default)]
    head_dim: Option<usize>,
    #[serde(default = "default_eps")]
    rms_norm_eps: f64,
    #[serde(default = "default_theta")]
    rope_theta: f64,
    #[serde(default = "default_positions")]
    max_position_embeddings: usize,
    #[serde(default)]
    tie_word_embeddings: bool,
    #[serde(default)]
    attention_bias: bool,
    #[serde(default)]
    rope_scaling: Option<serde_json::Value>,
    #[serde(default)]
    hidden_act: Option<String>,
    #[serde(default)]
    use_sliding_window: bool,
}

fn default_eps() -> f64 {
    1e-6
}
fn default_theta() -> f64 {
    10_000.0
}
fn default_positions() -> usize {
    4096
}

/// Applies `rope_scaling` to the rotary frequencies: none, or Llama 3's (`rope_type =
/// "llama3"`), which slows the low frequencies by `factor` and blends the middle band.
fn scaled_frequencies(inv_freq: Vec<f64>, scaling: Option<&serde_json::Value>) -> Result<Vec<f64>> {
    let Some(s) = scaling.filter(|s| !s.is_null()) else {
        return Ok(inv_freq);
    };
    let kind = s["rope_type"].as_str().or(s["type"].as_str()).unwrap_or("");
    if kind == "default" {
        return Ok(inv_freq);
    }
    if kind != "llama3" {
        return Err(Error::user(format!(
            "`config.json` asks for rope_scaling `{kind}`; supported: llama3"
        )));
    }
    let num = |key: &str| {
        s[key].as_f64().ok_or_else(|| {
            Error::user(format!(
                "`config.json`'s rope_scaling has no number `{key}`"
            ))
        })
    };
    let factor = num("factor")?;
    let low = num("low_freq_factor")?;
    let high = num("high_freq_factor")?;
    let original = num("original_max_position_embeddings")?;
    let (low_wavelen, high_wavelen) = (original / low, original / high);
    Ok(inv_freq
        .into_iter()
        .map(|f| {
            let wavelen = 2.0 * std::f64::consts::PI / f;
            if wavelen < high_wavelen {
                f
            } else if wavelen > low_wavelen {
                f / factor
            } else {
                let smooth = (original / wavelen - low) / (high - low);
                (1.0 - smooth) * f / factor + smooth * f
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lm::tiny_lm::{self, max_diff, Reference};
    use std::path::Path;

    fn load_folder(dir: &Path, dtype: DType) -> Result<Decoder> {
        let text = std::fs::read_to_string(dir.join("config.json")).unwrap();
        let files = [dir.join("model.safetensors")];
        // SAFETY: a test's own file, not changed while it is mapped.
        let vb =
            unsafe { VarBuilder::from_mmaped_safetensors(&files, dtype, &Device::Cpu) }.unwrap();
        Decoder::from_hugging_face(&text, vb)
    }

    /// Row `r` of (rows, t, vocab) logits as one list per position.
    fn positions(logits: &Tensor, r: usize) -> Vec<Vec<f32>> {
        logits.get(r).unwrap().to_vec2().unwrap()
    }

    #[test]
    fn every_position_matches_candle_transformers_llama_and_qwen2() {
        let ids = [1u32, 3, 5, 6, 9, 7, 15, 12, 13, 16, 4, 10];
        for arch in ["llama", "llama3", "qwen2"] {
            let tmp = tempfile::tempdir().unwrap();
            tiny_lm::tiny_folder(tmp.path(), arch);
            let mut ours = load_folder(tmp.path(), DType::F32).unwrap();
            let all = positions(&ours.all_logits(&[&ids]).unwrap(), 0);
            let reference = Reference::load(tmp.path()).position_logits(&ids);
            let diff = max_diff(&all, &reference);
            assert!(diff < 1e-5, "{arch}: {diff}");
            assert!(
                max_diff(&all[..1], &all[11..]) > 1e-3,
                "{arch}: positions differ"
            );
            // The cache continues a sequence: a prefix, then one token at a time.
            let mut stepped = vec![ours.next_logits(&ids[..5], 0).unwrap().to_vec1().unwrap()];
            for (pos, &id) in ids.iter().enumerate().skip(5) {
                stepped.push(ours.next_logits(&[id], pos).unwrap().to_vec1().unwrap());
            }
            let diff = max_diff(&stepped, &all[4..]);
            assert!(diff < 1e-5, "{arch} cached: {diff}");
        }
    }

    #[test]
    fn a_row_gets_the_same_logits_alone_or_in_a_batch_up_to_rounding() {
        let tmp = tempfile::tempdir().unwrap();
        tiny_lm::tiny_folder(tmp.path(), "qwen2");
        let mut d = load_folder(tmp.path(), DType::F32).unwrap();
        let rows: [&[u32]; 3] = [&[1, 3, 5, 6, 9], &[1, 4, 10, 13, 14], &[2, 17, 16, 8, 7]];
        let batch = d.all_logits(&rows).unwrap();
        assert_eq!(batch.dims(), [3, 5, tiny_lm::WORDS.len()]);
        for (r, row) in rows.iter().enumerate() {
            // Dense matrix products block by the number of rows, so the last bits can move.
            let alone = d.all_logits(&[row]).unwrap();
            let diff = max_diff(&positions(&batch, r), &positions(&alone, 0));
            assert!(diff < 1e-6, "row {r}: {diff}");
            assert_eq!(
                positions(&alone, 0),
                positions(&d.all_logits(&[row]).unwrap(), 0)
            );
        }
        // bf16 activations stay close to f32.
        let mut half = load_folder(tmp.path(), DType::BF16).unwrap();
        let diff = max_diff(
            &positions(&half.all_logits(&rows[..1]).unwrap(), 0),
            &positions(&batch, 0),
        );
        assert!(diff < 0.05, "bf16: {diff}");
    }

    #[test]
    fn refuses_what_it_cannot_run() {
        let tmp = tempfile::tempdir().unwrap();
        tiny_lm::tiny_folder(tmp.path(), "llama");
        let config_path = tmp.path().join("config.json");
        let config = std::fs::read_to_string(&config_path).unwrap();
        let err = |edit: &dyn Fn(&mut serde_json::Value)| {
            let mut c: serde_json::Value = serde_json::from_str(&config).unwrap();
            edit(&mut c);
            std::fs::write(&config_path, c.to_string()).unwrap();
            let e = load_folder(tmp.path(), DType::F32)
                .err()
                .unwrap()
                .to_string();
            std::fs::write(&config_path, &config).unwrap();
            e
        };
        let e = err(&|c| c["model_type"] = "gpt2".into());
        assert!(
            e.contains("model_type `gpt2`") && e.contains("llama, qwen2"),
            "{e}"
        );
        let e = err(&|c| c["rope_scaling"] = serde_json::json!({"rope_type": "yarn"}));
        assert!(e.contains("rope_scaling `yarn`"), "{e}");
        let e = err(&|c| c["hidden_act"] = "gelu".into());
        assert!(e.contains("hidden_act `gelu`"), "{e}");
        let e = err(&|c| c["use_sliding_window"] = true.into());
        assert!(e.contains("sliding-window"), "{e}");
        let mut d = load_folder(tmp.path(), DType::F32).unwrap();
        let long = vec![3u32; 65];
        let e = d.all_logits(&[&long]).err().unwrap().to_string();
        assert!(
            e.contains("65 tokens exceed the model's context of 64"),
            "{e}"
        );
        let e = d.all_logits(&[&[1, 2], &[3]]).err().unwrap().to_string();
        assert!(e.contains("one non-zero length"), "{e}");
        d.next_logits(&[1, 3], 0).unwrap();
        let e = d.next_logits(&[5], 7).err().unwrap().to_string();
        assert!(e.contains("does not continue the 2 cached"), "{e}");
    }

    #[test]
    fn smollm2_matches_candle_quantized_llama() {
        let Some(path) = tiny_lm::smollm2_path() else {
            return;
        };
        let content = crate::lm::gguf_tokenizer::read_gguf(&path).unwrap();
        let tokenizer = crate::lm::gguf_tokenizer::tokenizer_from_gguf(&content).unwrap();
        let load = |weights| {
            let mut file = fs_err::File::open(&path).unwrap();
            Decoder::from_gguf(&content, &mut file, &Device::Cpu, weights).unwrap()
        };
        let encode = |t: &str| tokenizer.encode(t, false).unwrap().get_ids().to_vec();
        let a = encode("The film was slow, but the ending made up for it.");
        let b = encode("Nothing about this blender works the way the box says.");
        let len = a.len().min(b.len());
        let (a, b) = (&a[..len], &b[..len]);
        // candle-transformers' quantized llama, one position at a time.
        let reference = Reference::load_gguf(&path).position_logits(a);
        let scale = reference.iter().flatten().fold(0f32, |m, x| m.max(x.abs()));
        // Quantized weights, one position at a time through the cache, as candle does it.
        let mut quantized = load(GgufWeights::Quantized);
        let stepped: Vec<Vec<f32>> = a
            .iter()
            .enumerate()
            .map(|(pos, &id)| {
                quantized
                    .next_logits(&[id], pos)
                    .unwrap()
                    .to_vec1()
                    .unwrap()
            })
            .collect();
        let diff = max_diff(&stepped, &reference);
        eprintln!("SmolLM2 quantized, stepped: {len} positions, max |logit| {scale}, max difference {diff}");
        // Bit-identical on some CPUs. On others the attention products (whose gemm kernel
        // depends on the CPU and the cache length) differ in the last bit from candle's, and
        // the 8-bit rounding of activations before each quantized product can turn that into
        // a step of 1/127: measured 0 at the first 5 positions, then at most 0.25 of 27 on an
        // AVX2-only CPU. The ranking must not move.
        assert!(diff < 0.02 * scale, "quantized: {diff}");
        let argmax = |l: &[f32]| (0..l.len()).max_by(|&x, &y| l[x].total_cmp(&l[y])).unwrap();
        for (pos, (x, y)) in stepped.iter().zip(&reference).enumerate() {
            assert_eq!(
                argmax(x),
                argmax(y),
                "quantized: top token at position {pos}"
            );
        }
        // Dense f32 weights (what retort runs on the CPU), every position in one pass. The
        // quantized kernels round the activations to 8 bits before each product, dense ones
        // do not; over 30 layers that moves logits by about 1 (of 27) but keeps the ranking.
        let mut dense = load(GgufWeights::Dense(DType::F32));
        let batch = dense.all_logits(&[a, b]).unwrap();
        let ours = positions(&batch, 0);
        let diff = max_diff(&ours, &reference);
        eprintln!("SmolLM2 dense f32, one pass: max difference {diff}");
        assert!(diff < 0.1 * scale, "dense: {diff}");
        let agree = ours
            .iter()
            .zip(&reference)
            .filter(|(x, y)| argmax(x) == argmax(y))
            .count();
        assert!(agree * 10 >= len * 9, "{agree} of {len} top tokens agree");
        let alone = dense.all_logits(&[b]).unwrap();
        let diff = max_diff(&positions(&batch, 1), &positions(&alone, 0));
        assert!(diff < 1e-3, "alone vs in a batch: {diff}");
        assert_eq!(
            positions(&alone, 0),
            positions(&dense.all_logits(&[b]).unwrap(), 0),
            "the same pass gives the same bits"
        );
        assert_eq!(
            GgufWeights::choose(&content, DType::F32, 1 << 30),
            GgufWeights::Dense(DType::F32)
        );
        assert_eq!(
            GgufWeights::choose(&content, DType::F32, 1 << 20),
            GgufWeights::Quantized
        );
    }
}
