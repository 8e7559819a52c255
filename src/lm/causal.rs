//! A causal language model, with seeded sampling (temperature, top-p): a GGUF file of llama
//! architecture (e.g. SmolLM2-135M-Instruct, quantized weights), or a Hugging Face folder
//! (`config.json`, `tokenizer.json`, `*.safetensors`) of llama or qwen2 architecture, both run
//! by retort's own [`Decoder`].

use std::path::Path;

use candle_nn::VarBuilder;
use rand::{Rng, SeedableRng};
use tokenizers::Tokenizer;

use crate::error::{Error, Result};
use crate::lm::decoder::{Decoder, GgufWeights};
use crate::lm::gguf_tokenizer;
use crate::models::device::Compute;

/// GGUF weights are dequantized into the compute dtype when they then take at most this many
/// bytes (a 1B-parameter model in f32), and kept quantized otherwise.
pub const DENSE_LIMIT_BYTES: u64 = 4 << 30;

/// How to pick each next token.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampling {
    /// 0: always the most probable token; otherwise softmax(logits / temperature).
    pub temperature: f64,
    /// Nucleus sampling: draw from the smallest set of tokens whose probability reaches `top_p`.
    pub top_p: f64,
    /// Tokens to generate at most.
    pub max_new_tokens: usize,
    /// Stop at the first line break that follows some text (for one-line outputs).
    pub one_line: bool,
}

/// What one generation produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Generated {
    /// The new text (without the prompt and the end token).
    pub text: String,
    /// The new token ids.
    pub tokens: Vec<u32>,
    /// Whether the model ended the text itself (an end token) rather than hitting the limit.
    pub finished: bool,
}

/// A loaded model and its tokenizer. Clones share the weights and have their own cache.
#[derive(Clone)]
pub struct CausalLm {
    decoder: Decoder,
    /// The tokenizer rebuilt from the GGUF metadata.
    pub tokenizer: Tokenizer,
    /// Tokens that end a generation (the file's end-of-sequence token, and `<|im_end|>` for
    /// ChatML models).
    pub stop: Vec<u32>,
    /// Whether the chat template is ChatML (`<|im_start|>role ... <|im_end|>`).
    pub chatml: bool,
    bos: Option<u32>,
}

impl CausalLm {
    /// Loads a model onto `compute`: a GGUF file (dequantized into `compute.dtype` when it fits
    /// [`DENSE_LIMIT_BYTES`], else quantized weights with f32 activations), or a Hugging Face
    /// folder of llama or qwen2 architecture (in `compute.dtype`).
    pub fn load(path: &Path, compute: &Compute) -> Result<CausalLm> {
        if path.is_dir() {
            return Self::load_folder(path, compute);
        }
        let content = gguf_tokenizer::read_gguf(path)?;
        let tokenizer = gguf_tokenizer::tokenizer_from_gguf(&content)?;
        let mut stop: Vec<u32> =
            gguf_tokenizer::special_id(&content, "tokenizer.ggml.eos_token_id")
                .into_iter()
                .collect();
        let chatml =
            gguf_tokenizer::chat_template(&content).is_some_and(|t| t.contains("<|im_start|>"));
        if let Some(id) = tokenizer.token_to_id("<|im_end|>") {
            if !stop.contains(&id) {
                stop.push(id);
            }
        }
        let bos = gguf_tokenizer::special_id(&content, "tokenizer.ggml.bos_token_id")
            .or_else(|| stop.first().copied());
        let mut f = fs_err::File::open(path)
            .map_err(|e| Error::user(format!("cannot open `{}`", path.display())).with_source(e))?;
        let weights = GgufWeights::choose(&content, compute.dtype, DENSE_LIMIT_BYTES);
        let decoder = Decoder::from_gguf(&content, &mut f, &compute.device, weights)
            .map_err(|e| e.context(format!("cannot load the model in `{}`", path.display())))?;
        Ok(CausalLm {
            decoder,
            tokenizer,
            stop,
            chatml,
            bos,
        })
    }

    /// Loads a Hugging Face folder: `config.json` (`model_type` llama or qwen2),
    /// `tokenizer.json`, one or more `*.safetensors`, and `tokenizer_config.json` for the chat
    /// template when there is one.
    fn load_folder(dir: &Path, compute: &Compute) -> Result<CausalLm> {
        let shown = dir.display();
        let read = |name: &str| -> Result<String> {
            fs_err::read_to_string(dir.join(name)).map_err(|e| {
                Error::user(format!("`{shown}` has no readable `{name}`"))
                    .with_source(e)
                    .with_hint("a model folder holds config.json, tokenizer.json and *.safetensors, as Hugging Face saves them")
            })
        };
        let config_text = read("config.json")?;
        let config: serde_json::Value = serde_json::from_str(&config_text).map_err(|e| {
            Error::user(format!("`{shown}/config.json` is not JSON")).with_source(e)
        })?;
        let tokenizer = Tokenizer::from_file(dir.join("tokenizer.json"))
            .map_err(|e| Error::user(format!("cannot read `{shown}/tokenizer.json`: {e}")))?;
        let mut files: Vec<_> = fs_err::read_dir(dir)
            .map_err(|e| Error::user(format!("cannot list `{shown}`")).with_source(e))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(Error::user(format!(
                "`{shown}` has no `*.safetensors` weights"
            )));
        }
        let device = compute.device.clone();
        let dtype = compute.dtype;
        // SAFETY: the files are memory-mapped read-only and not changed while the model lives.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&files, dtype, &device) }.map_err(
            |e| Error::user(format!("cannot read the weights in `{shown}`")).with_source(e),
        )?;
        let decoder = Decoder::from_hugging_face(&config_text, vb)
            .map_err(|e| e.context(format!("cannot load the model in `{shown}`")))?;
        let ids = |v: &serde_json::Value| -> Vec<u32> {
            match v {
                serde_json::Value::Number(n) => n.as_u64().map(|n| n as u32).into_iter().collect(),
                serde_json::Value::Array(a) => a
                    .iter()
                    .filter_map(|n| n.as_u64())
                    .map(|n| n as u32)
                    .collect(),
                _ => Vec::new(),
            }
        };
        let mut stop = ids(&config["eos_token_id"]);
        if let Some(id) = tokenizer.token_to_id("<|im_end|>") {
            if !stop.contains(&id) {
                stop.push(id);
            }
        }
        let chatml = fs_err::read_to_string(dir.join("tokenizer_config.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| {
                v["chat_template"]
                    .as_str()
                    .map(|t| t.contains("<|im_start|>"))
            })
            .unwrap_or(false);
        let bos = ids(&config["bos_token_id"])
            .first()
            .copied()
            .or_else(|| stop.first().copied());
        Ok(CausalLm {
            decoder,
            tokenizer,
            stop,
            chatml,
            bos,
        })
    }

    /// A single-turn chat prompt in the model's format (ChatML), or the text as it is.
    pub fn chat_prompt(&self, user: &str) -> String {
        if self.chatml {
            format!("<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n")
        } else {
            user.to_string()
        }
    }

    /// Logits of the token after `ids`, which start at position `pos` of the sequence
    /// (position 0 starts a new sequence).
    fn next_logits(&mut self, ids: &[u32], pos: usize) -> Result<Vec<f32>> {
        Ok(self.decoder.next_logits(ids, pos)?.to_vec1()?)
    }

    /// Length of each logits row (the model's vocabulary).
    pub fn vocab(&self) -> usize {
        self.decoder.vocab()
    }

    /// Positions the model can attend over (its context length).
    pub fn max_positions(&self) -> usize {
        self.decoder.max_positions()
    }

    /// The next-token logits after every prefix of every row, in one forward pass: row `r`,
    /// position `t` predicts `rows[r][t + 1]`. The rows must have one length `t`; the result
    /// is `rows × t × vocab` values, row-major, on the host.
    pub fn score(&mut self, rows: &[&[u32]]) -> Result<Vec<f32>> {
        Ok(self.decoder.all_logits(rows)?.flatten_all()?.to_vec1()?)
    }

    /// [`CausalLm::score`] of one sequence, split into one logits row per position.
    pub fn position_logits(&mut self, ids: &[u32]) -> Result<Vec<Vec<f32>>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let v = self.vocab();
        Ok(self.score(&[ids])?.chunks(v).map(<[f32]>::to_vec).collect())
    }

    fn piece(&self, id: u32) -> String {
        self.tokenizer.decode(&[id], false).unwrap_or_default()
    }

    fn is_blank(&self, id: u32) -> bool {
        self.piece(id).trim().is_empty()
    }

    fn breaks_line(&self, id: u32) -> bool {
        self.piece(id).contains('\n')
    }

    /// The id a sequence starts with: the file's beginning-of-sequence token, else its end
    /// token (as GPT-style models use), else none.
    pub fn start_id(&self) -> Option<u32> {
        self.bos
    }

    /// Continues `prompt` (already formatted) with seeded sampling.
    pub fn generate(&mut self, prompt: &str, sampling: Sampling, seed: u64) -> Result<Generated> {
        let enc = self
            .tokenizer
            .encode(prompt, false)
            .map_err(|e| Error::runtime(format!("cannot tokenize the prompt: {e}")))?;
        let prompt_ids = enc.get_ids().to_vec();
        if prompt_ids.is_empty() {
            return Err(Error::user("the prompt is empty"));
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut logits = self.next_logits(&prompt_ids, 0)?;
        let mut tokens = Vec::new();
        let mut finished = false;
        while tokens.len() < sampling.max_new_tokens {
            let next = pick(&logits, sampling, &mut rng);
            if self.stop.contains(&next) {
                finished = true;
                break;
            }
            if sampling.one_line
                && tokens.iter().any(|&t| !self.is_blank(t))
                && self.breaks_line(next)
            {
                finished = true;
                break;
            }
            tokens.push(next);
            if tokens.len() < sampling.max_new_tokens {
                let pos = prompt_ids.len() + tokens.len() - 1;
                logits = self.next_logits(&[next], pos)?;
            }
        }
        let text = self
            .tokenizer
            .decode(&tokens, true)
            .map_err(|e| Error::runtime(format!("cannot decode the output: {e}")))?;
        Ok(Generated {
            text,
            tokens,
            finished,
        })
    }
}

/// Picks the next token: arg-max at temperature 0, else a draw from the top-p nucleus of
/// softmax(logits / temperature). Ties in probability are broken by the lower id.
pub fn pick<R: Rng>(logits: &[f32], s: Sampling, rng: &mut R) -> u32 {
    let argmax = || {
        logits
            .iter()
            .enumerate()
            .fold((0usize, f32::NEG_INFINITY), |best, (i, &v)| {
                if v > best.1 {
                    (i, v)
                } else {
                    best
                }
            })
            .0 as u32
    };
    if s.temperature <= 0.0 {
        return argmax();
    }
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let mut probs: Vec<(u32, f64)> = logits
        .iter()
        .enumerate()
        .map(|(i, &v)| (i as u32, ((v as f64 - max) / s.temperature).exp()))
        .collect();
    let z: f64 = probs.iter().map(|p| p.1).sum();
    probs.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut kept = 0.0;
    let mut n = 0;
    for p in &probs {
        kept += p.1 / z;
        n += 1;
        if kept >= s.top_p {
            break;
        }
    }
    let nucleus = &probs[..n.max(1)];
    let total: f64 = nucleus.iter().map(|p| p.1).sum();
    let mut u = rng.random::<f64>() * total;
    for p in nucleus {
        u -= p.1;
        if u <= 0.0 {
            return p.0;
        }
    }
    nucleus[nucleus.len() - 1].0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pick_follows_temperature_and_top_p() {
        let logits = [1.0f32, 3.0, 2.0, -1.0];
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let greedy = Sampling {
            temperature: 0.0,
            top_p: 1.0,
            max_new_tokens: 1,
            one_line: false,
        };
        assert_eq!(pick(&logits, greedy, &mut rng), 1);
        // top_p small enough keeps only the best token.
        let narrow = Sampling {
            temperature: 1.0,
            top_p: 0.1,
            max_new_tokens: 1,
            one_line: false,
        };
        for _ in 0..50 {
            assert_eq!(pick(&logits, narrow, &mut rng), 1);
        }
        // With the full distribution every token with real mass turns up, in proportion.
        let full = Sampling {
            temperature: 1.0,
            top_p: 1.0,
            max_new_tokens: 1,
            one_line: false,
        };
        let mut counts = [0usize; 4];
        for _ in 0..20_000 {
            counts[pick(&logits, full, &mut rng) as usize] += 1;
        }
        let p = crate::distill::metrics::softmax(&logits);
        for i in 0..4 {
            let got = counts[i] as f64 / 20_000.0;
            assert!((got - p[i]).abs() < 0.015, "token {i}: {got} vs {}", p[i]);
        }
    }

    #[test]
    fn smollm2_generates_deterministically_for_a_seed() {
        let Some(path) = crate::lm::tiny_lm::smollm2_path() else {
            return;
        };
        let mut lm = CausalLm::load(&path, &Compute::cpu()).unwrap();
        assert!(lm.chatml);
        let prompt = lm.chat_prompt("Write one short sentence praising a kitchen blender.");
        let s = Sampling {
            temperature: 0.8,
            top_p: 0.95,
            max_new_tokens: 24,
            one_line: false,
        };
        let a = lm.generate(&prompt, s, 7).unwrap();
        let b = lm.generate(&prompt, s, 7).unwrap();
        assert_eq!(a, b, "same seed, same text");
        assert!(!a.text.trim().is_empty());
        assert!(!a.text.contains("<|im_start|>") && !a.text.contains("<|im_end|>"));
        // Position by position through the cache gives the same logits as one forward pass
        // over the whole sequence, and a predictable sequence is predicted.
        let ids = lm
            .tokenizer
            .encode("Monday, Tuesday, Wednesday, Thursday, Friday", false)
            .unwrap()
            .get_ids()
            .to_vec();
        let rows = lm.position_logits(&ids).unwrap();
        let whole = lm.next_logits(&ids, 0).unwrap();
        let last = rows.last().unwrap();
        let diff = last
            .iter()
            .zip(&whole)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(diff < 1e-2, "max logit difference {diff}");
        let argmax =
            |l: &[f32]| (0..l.len()).max_by(|&a, &b| l[a].total_cmp(&l[b])).unwrap() as u32;
        let hits = (1..ids.len())
            .filter(|&t| argmax(&rows[t - 1]) == ids[t])
            .count();
        assert!(
            hits * 2 >= ids.len() - 1,
            "{hits} of {} predicted",
            ids.len() - 1
        );
        let greedy = lm
            .generate(
                &prompt,
                Sampling {
                    temperature: 0.0,
                    ..s
                },
                0,
            )
            .unwrap();
        assert!(greedy.tokens.len() <= 24);
        eprintln!("sampled: {:?}\ngreedy: {:?}", a.text, greedy.text);
    }

    #[test]
    fn hugging_face_llama_and_qwen2_folders_generate_and_cache_correctly() {
        for arch in ["llama", "qwen2"] {
            let tmp = tempfile::tempdir().unwrap();
            crate::lm::tiny_lm::tiny_folder(tmp.path(), arch);
            let mut lm = CausalLm::load(tmp.path(), &Compute::cpu()).unwrap();
            assert_eq!(lm.start_id(), Some(1), "{arch}");
            assert_eq!(lm.stop, vec![2], "{arch}");
            assert!(!lm.chatml);
            let s = Sampling {
                temperature: 1.0,
                top_p: 1.0,
                max_new_tokens: 12,
                one_line: false,
            };
            let a = lm.generate("the film was", s, 3).unwrap();
            assert_eq!(a, lm.generate("the film was", s, 3).unwrap(), "{arch}");
            assert!(a.tokens.len() <= 12 && (a.finished || a.tokens.len() == 12));
            assert!(a.tokens.iter().all(|&t| (t as usize) < 18 && t != 2));
            // The cache gives what one pass over the whole sequence gives.
            let ids = [1u32, 3, 5, 6, 9, 7, 15];
            let rows = lm.position_logits(&ids).unwrap();
            assert_eq!(rows.len(), ids.len());
            assert!(rows.iter().all(|r| r.len() == 18));
            let whole = lm.next_logits(&ids, 0).unwrap();
            let diff = rows[6]
                .iter()
                .zip(&whole)
                .map(|(x, y)| (x - y).abs())
                .fold(0f32, f32::max);
            assert!(diff < 1e-4, "{arch}: {diff}");
            assert_ne!(rows[0], rows[6], "{arch}: positions differ");
            // In bf16 (what a GPU runs by default) the same folder loads and stays close.
            let half = Compute {
                device: candle_core::Device::Cpu,
                dtype: candle_core::DType::BF16,
                precision: crate::models::device::Precision::Bf16,
            };
            let mut lm16 = CausalLm::load(tmp.path(), &half).unwrap();
            let rows16 = lm16.position_logits(&ids).unwrap();
            let diff = rows16
                .iter()
                .flatten()
                .zip(rows.iter().flatten())
                .map(|(x, y)| (x - y).abs())
                .fold(0f32, f32::max);
            assert!(diff < 0.05, "{arch} bf16: {diff}");
            assert!(lm16.generate("the film was", s, 3).is_ok(), "{arch} bf16");
        }
        let tmp = tempfile::tempdir().unwrap();
        let err = CausalLm::load(tmp.path(), &Compute::cpu())
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("config.json"), "{err}");
    }
}
