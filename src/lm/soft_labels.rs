//! Soft labels for language-model knowledge distillation.
//!
//! A teacher produces, at every token position, a distribution over a vocabulary of
//! `V` ids (about 49k for the models we target). Storing the full distribution is far
//! too large, so two compact encodings are provided (following Anshumann et al. 2025,
//! "Sparse Logit Sampling"):
//!
//! * **top-k** ([`TopK`], [`top_k`]): the `k` most probable ids, their log-probabilities
//!   at temperature 1, and the log of the remaining (tail) probability mass. Targets
//!   rebuilt from it ([`topk_target`]) are *biased*: the tail is either dropped
//!   ([`TailMode::Renormalize`]) or smeared ([`TailMode::Uniform`]).
//! * **sampled** ([`Sampled`], [`sample`], [`Sampler`]): `N` draws with replacement from
//!   the teacher distribution at temperature 1, stored as sorted unique ids plus counts.
//!   `counts / N` ([`sampled_target`]) is an *unbiased* estimate of the distribution, so
//!   the expected distillation gradient equals the full-distribution gradient.
//!
//! The remaining functions are the distillation gradient ([`kd_gradient`]), a cosine
//! similarity for comparing gradients ([`cosine`]) and storage accounting
//! ([`topk_bytes_per_token`], [`sampled_bytes_per_token`], [`mean_unique_ids`],
//! [`expected_unique_ids`]).
//!
//! All internal arithmetic is done in `f64`; results are returned as `f32` where they
//! are per-vocabulary vectors. Logits must not contain NaN or `+inf`; `-inf` entries
//! (masked ids) are allowed as long as at least one logit is finite.

use rand::Rng;

/// Log of `sum(exp(xs))`, computed stably in `f64`; `-inf` for an empty input or when
/// every entry is `-inf`.
fn log_sum_exp<I>(xs: I) -> f64
where
    I: Iterator<Item = f64> + Clone,
{
    let max = xs.clone().fold(f64::NEG_INFINITY, f64::max);
    if max == f64::NEG_INFINITY {
        return f64::NEG_INFINITY;
    }
    max + xs.map(|x| (x - max).exp()).sum::<f64>().ln()
}

/// Softmax probabilities of `logits` in `f64` (temperature 1).
fn softmax_f64(logits: &[f32]) -> Vec<f64> {
    let max = logits
        .iter()
        .map(|&x| f64::from(x))
        .fold(f64::NEG_INFINITY, f64::max);
    let mut p: Vec<f64> = logits.iter().map(|&x| (f64::from(x) - max).exp()).collect();
    let total: f64 = p.iter().sum();
    for v in &mut p {
        *v /= total;
    }
    p
}

/// Numerically stable log-softmax at temperature 1.
///
/// The maximum is subtracted and the normaliser is accumulated in `f64`, so the result
/// is accurate even for logits of large magnitude. `-inf` logits map to `-inf`.
pub fn log_softmax(logits: &[f32]) -> Vec<f32> {
    let lse = log_sum_exp(logits.iter().map(|&x| f64::from(x)));
    logits
        .iter()
        .map(|&x| (f64::from(x) - lse) as f32)
        .collect()
}

/// Top-k encoding of one teacher distribution.
///
/// Invariant: `exp(logprobs).sum() + exp(tail_logmass) == 1` within float tolerance.
#[derive(Debug, Clone, PartialEq)]
pub struct TopK {
    /// The `k` most probable ids, by descending probability; ties go to the lower id.
    pub ids: Vec<u32>,
    /// Log-probabilities (temperature 1) of `ids`, in the same order.
    pub logprobs: Vec<f32>,
    /// Log of the probability mass of every id not in `ids`; `-inf` when that mass is
    /// exactly zero (in particular when `k >= V`).
    pub tail_logmass: f32,
}

/// Top-k encoding of `softmax(logits)`.
///
/// Ids are ordered by descending probability, ties broken by the lower id, so the
/// result is deterministic. `k` larger than the vocabulary is clamped to it (and the
/// tail is then `-inf`). The tail log-mass is a log-sum-exp over the non-top logits
/// minus the global log-sum-exp, which stays accurate when the tail is tiny (no
/// `1 - sum` cancellation).
pub fn top_k(logits: &[f32], k: usize) -> TopK {
    let v = logits.len();
    let k = k.min(v);
    let mut order: Vec<u32> = (0..v as u32).collect();
    let by_prob = |a: &u32, b: &u32| {
        logits[*b as usize]
            .total_cmp(&logits[*a as usize])
            .then(a.cmp(b))
    };
    if k > 0 && k < v {
        order.select_nth_unstable_by(k - 1, by_prob);
    }
    order[..k].sort_unstable_by(by_prob);

    let lse = log_sum_exp(logits.iter().map(|&x| f64::from(x)));
    let ids = order[..k].to_vec();
    let logprobs = ids
        .iter()
        .map(|&i| (f64::from(logits[i as usize]) - lse) as f32)
        .collect();
    let tail_logmass = if k >= v {
        f32::NEG_INFINITY
    } else {
        let tail = log_sum_exp(order[k..].iter().map(|&i| f64::from(logits[i as usize])));
        if tail == f64::NEG_INFINITY {
            f32::NEG_INFINITY
        } else {
            // Never report more than all of the mass (rounding can push it just above 0).
            (tail - lse).min(0.0) as f32
        }
    };
    TopK {
        ids,
        logprobs,
        tail_logmass,
    }
}

/// Sampled encoding of one teacher distribution: `N` draws with replacement.
///
/// `counts.iter().sum() == N`; `counts[i] / N` is an unbiased estimate of the teacher
/// probability of `ids[i]`, and every id not listed has estimate 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sampled {
    /// Distinct drawn ids, sorted ascending.
    pub ids: Vec<u32>,
    /// How many of the draws hit the id at the same index; each is at least 1.
    pub counts: Vec<u16>,
}

impl Sampled {
    /// Total number of draws `N` (the sum of the counts).
    pub fn draws(&self) -> u32 {
        self.counts.iter().map(|&c| u32::from(c)).sum()
    }
}

/// Reusable sampler over `softmax(logits)`: builds the cumulative distribution once
/// (O(V), in `f64`), after which each draw is a binary search (O(log V)).
///
/// Use it directly when drawing several independent label sets from one distribution;
/// [`sample`] is the one-shot form.
#[derive(Debug, Clone)]
pub struct Sampler {
    /// Unnormalised cumulative weights `exp(logit - max)`.
    cdf: Vec<f64>,
    /// Largest id with nonzero weight (guards the `u == total` rounding edge).
    last_positive: usize,
}

impl Sampler {
    /// Builds the cumulative distribution of `softmax(logits)` at temperature 1.
    ///
    /// # Panics
    /// If `logits` is empty or has no finite entry.
    pub fn new(logits: &[f32]) -> Self {
        let max = logits
            .iter()
            .map(|&x| f64::from(x))
            .fold(f64::NEG_INFINITY, f64::max);
        assert!(max.is_finite(), "sampling needs at least one finite logit");
        let mut acc = 0.0;
        let mut last_positive = 0;
        let cdf = logits
            .iter()
            .enumerate()
            .map(|(i, &x)| {
                let w = (f64::from(x) - max).exp();
                if w > 0.0 {
                    last_positive = i;
                }
                acc += w;
                acc
            })
            .collect();
        Sampler { cdf, last_positive }
    }

    /// Draws `draws` ids with replacement and returns them as sorted unique ids with
    /// counts. Deterministic for a given RNG state; consumes exactly `draws` `f64`s.
    pub fn draw<R: Rng + ?Sized>(&self, draws: u16, rng: &mut R) -> Sampled {
        let total = *self.cdf.last().expect("non-empty cdf");
        let mut hits: Vec<u32> = (0..draws)
            .map(|_| {
                let u = rng.random::<f64>() * total;
                // First id whose cumulative weight exceeds u: zero-weight ids are never hit.
                let i = self.cdf.partition_point(|&c| c <= u);
                i.min(self.last_positive) as u32
            })
            .collect();
        hits.sort_unstable();
        let mut ids = Vec::new();
        let mut counts: Vec<u16> = Vec::new();
        for id in hits {
            match ids.last() {
                Some(&last) if last == id => *counts.last_mut().expect("paired") += 1,
                _ => {
                    ids.push(id);
                    counts.push(1);
                }
            }
        }
        Sampled { ids, counts }
    }
}

/// Draws `draws` ids with replacement from `softmax(logits)` (temperature 1).
///
/// Cost is O(V + N log V): one pass builds the `f64` cumulative distribution, then each
/// draw is a binary search. Deterministic for a seeded RNG.
///
/// # Panics
/// If `logits` is empty or has no finite entry.
pub fn sample<R: Rng + ?Sized>(logits: &[f32], draws: u16, rng: &mut R) -> Sampled {
    Sampler::new(logits).draw(draws, rng)
}

/// How [`topk_target`] treats the probability mass outside the top-k ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TailMode {
    /// Drop the tail and renormalise the top-k probabilities to sum to 1 (the common
    /// practice in top-k distillation).
    Renormalize,
    /// Keep the top-k probabilities and spread the tail mass evenly over the `V - k`
    /// ids not in the top-k.
    Uniform,
}

/// Dense distillation target (length `vocab`) rebuilt from a top-k encoding.
///
/// With [`TailMode::Renormalize`] the result is zero outside `t.ids`; an empty `t`
/// (k = 0) then gives an all-zero vector. With [`TailMode::Uniform`] the tail mass is
/// dropped only when every id is in the top-k.
///
/// # Panics
/// If an id in `t` is not below `vocab`.
pub fn topk_target(t: &TopK, vocab: usize, tail: TailMode) -> Vec<f32> {
    let probs: Vec<f64> = t.logprobs.iter().map(|&l| f64::from(l).exp()).collect();
    let mut out = vec![0.0f32; vocab];
    match tail {
        TailMode::Renormalize => {
            let total: f64 = probs.iter().sum();
            if total > 0.0 {
                for (&id, &p) in t.ids.iter().zip(&probs) {
                    out[id as usize] = (p / total) as f32;
                }
            }
        }
        TailMode::Uniform => {
            let rest = vocab.saturating_sub(t.ids.len());
            if rest > 0 {
                let each = (f64::from(t.tail_logmass).exp() / rest as f64) as f32;
                out.fill(each);
            }
            for (&id, &p) in t.ids.iter().zip(&probs) {
                out[id as usize] = p as f32;
            }
        }
    }
    out
}

/// Dense distillation target (length `vocab`) from a sampled encoding: `counts / N`.
///
/// All zeros if `s` holds no draws.
///
/// # Panics
/// If an id in `s` is not below `vocab`.
pub fn sampled_target(s: &Sampled, vocab: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; vocab];
    let n = f64::from(s.draws());
    if n > 0.0 {
        for (&id, &c) in s.ids.iter().zip(&s.counts) {
            out[id as usize] = (f64::from(c) / n) as f32;
        }
    }
    out
}

/// Gradient of the distillation loss `KL(target || softmax(student_logits))` (equally,
/// of the cross-entropy against `target`) with respect to the student logits:
/// `softmax(student_logits) - target`, assuming `target` sums to 1.
///
/// # Panics
/// If the two slices differ in length.
pub fn kd_gradient(student_logits: &[f32], target: &[f32]) -> Vec<f32> {
    assert_eq!(
        student_logits.len(),
        target.len(),
        "student logits and target must have the same length"
    );
    softmax_f64(student_logits)
        .iter()
        .zip(target)
        .map(|(&p, &q)| (p - f64::from(q)) as f32)
        .collect()
}

/// Cosine similarity of two vectors, accumulated in `f64`; 0 if either has zero norm.
///
/// # Panics
/// If the two slices differ in length.
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len(), "cosine needs equal lengths");
    let (mut dot, mut na, mut nb) = (0.0f64, 0.0f64, 0.0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (f64::from(x), f64::from(y));
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na.sqrt() * nb.sqrt())
    }
}

/// Stored bytes per token position for a top-k label with this layout:
/// `k` x (`u32` id + `f16` log-probability) + one `f32` tail log-mass = `6k + 4`.
///
/// (Ids fit in a `u16` for vocabularies up to 65 536, which would make it `4k + 4`; the
/// `u32` layout is the conservative, vocabulary-independent choice.)
pub fn topk_bytes_per_token(k: usize) -> f64 {
    6.0 * k as f64 + 4.0
}

/// Stored bytes per token position for a sampled label with `unique` distinct ids
/// (fractional values allowed, for a mean): `unique` x (`u32` id + `u16` count)
/// = `6 * unique`. The per-position row length / offset is not counted.
pub fn sampled_bytes_per_token(unique: f64) -> f64 {
    6.0 * unique
}

/// Mean number of distinct ids over the given positions when drawing `draws` samples
/// per position, measured by actually sampling (one label set per position).
/// Returns 0 for no positions.
pub fn mean_unique_ids<'a, I, R>(positions: I, draws: u16, rng: &mut R) -> f64
where
    I: IntoIterator<Item = &'a [f32]>,
    R: Rng + ?Sized,
{
    let (mut total, mut n) = (0usize, 0usize);
    for logits in positions {
        total += sample(logits, draws, rng).ids.len();
        n += 1;
    }
    if n == 0 {
        0.0
    } else {
        total as f64 / n as f64
    }
}

/// Exact expected number of distinct ids when drawing `draws` samples from
/// `softmax(logits)`: `sum_i 1 - (1 - p_i)^N`, computed with `log1p`/`expm1` so tiny
/// probabilities keep their contribution.
pub fn expected_unique_ids(logits: &[f32], draws: u16) -> f64 {
    let n = f64::from(draws);
    softmax_f64(logits)
        .iter()
        .map(|&p| {
            if p >= 1.0 {
                1.0
            } else {
                -(n * (-p).ln_1p()).exp_m1()
            }
        })
        .sum()
}

#[cfg(test)]
#[path = "soft_labels/tests.rs"]
mod tests;
