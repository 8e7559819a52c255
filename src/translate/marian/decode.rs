//! Decoding: greedy and sampled with the key/value cache, and beam search, for source
//! texts of one token length.

use candle_core::{DType, IndexOp, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::Marian;
use crate::error::Result;

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

impl Marian {
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
        let b = src.len();
        let mut model = self.model.clone();
        model.reset_kv_cache();
        let enc = model.encoder().forward(&self.ids_tensor(src)?, 0)?;
        let rows: Vec<u32> = (0..b as u32)
            .flat_map(|i| std::iter::repeat_n(i, k))
            .collect();
        let enc = enc.index_select(&Tensor::new(rows, &self.device)?, 0)?;
        let mut beams: Vec<Beams> = (0..b).map(|_| Beams::new()).collect();
        for step in 0..max_new {
            let input = self.beam_input(&beams, k, step)?;
            model.decoder().reset_kv_cache();
            let logits = model
                .decode(&input, &enc, 0)?
                .i((.., step, ..))?
                .to_dtype(DType::F32)?
                .to_vec2::<f32>()?;
            for (i, text) in beams.iter_mut().enumerate() {
                if !text.done {
                    text.advance(&logits[i * k..(i + 1) * k], k, &self.config);
                }
            }
            if beams.iter().all(|t| t.done) {
                break;
            }
        }
        Ok(beams.into_iter().map(Beams::best).collect())
    }

    /// Decoder input `[texts * k, step + 1]`: every hypothesis after the start token. Empty
    /// slots (and finished texts) repeat a live hypothesis; their logits are ignored.
    fn beam_input(&self, beams: &[Beams], k: usize, step: usize) -> candle_core::Result<Tensor> {
        let (eos, start) = (self.config.eos_token_id, self.config.decoder_start_token_id);
        let mut input = Vec::with_capacity(beams.len() * k * (step + 1));
        for text in beams {
            for j in 0..k {
                let h = text.alive.get(j).or(text.alive.first());
                input.push(start);
                match h {
                    Some(h) => input.extend(&h.tokens),
                    None => input.extend(std::iter::repeat_n(eos, step)),
                }
            }
        }
        Tensor::from_vec(input, (beams.len() * k, step + 1), &self.device)
    }
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

/// A live beam-search hypothesis: its tokens and the sum of their log-probabilities.
struct Hyp {
    tokens: Vec<u32>,
    score: f64,
}

/// The beam search of one text: live hypotheses, ended ones (with length-normalised scores)
/// and whether the text is finished.
struct Beams {
    alive: Vec<Hyp>,
    ended: Vec<(Vec<u32>, f64)>,
    done: bool,
}

impl Beams {
    /// One empty hypothesis.
    fn new() -> Self {
        Beams {
            alive: vec![Hyp {
                tokens: Vec::new(),
                score: 0.0,
            }],
            ended: Vec::new(),
            done: false,
        }
    }

    /// Extends the hypotheses with this step's `logits` (one row per beam slot): the `k` best
    /// continuations stay alive, those ending with end-of-sentence are set aside. The text is
    /// done when `k` have ended or none is alive.
    fn advance(&mut self, logits: &[Vec<f32>], k: usize, config: &super::MarianConfig) {
        let (eos, pad) = (config.eos_token_id, config.pad_token_id);
        let mut cands: Vec<(f64, usize, u32)> = Vec::new();
        for (j, h) in self.alive.iter().enumerate() {
            let mut row = logits[j].clone();
            row[pad as usize] = f32::NEG_INFINITY;
            for (tok, lp) in top_log_probs(&row, 2 * k) {
                cands.push((h.score + lp, j, tok));
            }
        }
        cands.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
        let mut next = Vec::with_capacity(k);
        for (score, j, tok) in cands {
            let mut tokens = self.alive[j].tokens.clone();
            if tok == eos {
                let len = (tokens.len() + 1) as f64;
                self.ended.push((tokens, score / len));
            } else {
                tokens.push(tok);
                next.push(Hyp { tokens, score });
                if next.len() == k {
                    break;
                }
            }
        }
        self.alive = next;
        if self.ended.len() >= k || self.alive.is_empty() {
            self.done = true;
        }
    }

    /// The best-scoring tokens: ended hypotheses, and the live ones when the text ran out of
    /// steps (scored by their length). On a tie, the first found.
    fn best(mut self) -> Vec<u32> {
        let mut all = std::mem::take(&mut self.ended);
        if !self.done {
            for h in self.alive.drain(..) {
                let len = h.tokens.len().max(1) as f64;
                all.push((h.tokens, h.score / len));
            }
        }
        let mut best: Option<(Vec<u32>, f64)> = None;
        for (t, s) in all {
            if best.as_ref().is_none_or(|b| s > b.1) {
                best = Some((t, s));
            }
        }
        best.map(|b| b.0).unwrap_or_default()
    }
}
