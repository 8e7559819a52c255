//! [`Predictor`]: a classifier prepared for inference on a device and dtype, fed by
//! length-bucketed batches under a token budget.
//!
//! A producer thread tokenizes the texts window by window (shortest first, in parallel on the
//! stage's rayon pool), groups each window with [`crate::models::batching::token_batches`] so that a
//! forward pass holds at most `max_tokens` padded tokens, pads and uploads the batches, and
//! queues them through a bounded channel while the caller's thread runs the previous batch:
//! tokenization, padding and host-to-device copies overlap with the device's work, and device
//! memory stays bounded by the budget.

use candle_core::{DType, Tensor};
use candle_nn::VarBuilder;
use rayon::prelude::*;

use super::model::Model;
use super::tokenizer::TextTokenizer;
use super::Classifier;
use crate::error::{Error, Result};
use crate::models::batching::token_batches;
use crate::models::device::Compute;

/// Batches the producer may prepare ahead of the device.
const PREFETCH: usize = 2;

/// How a [`Predictor`] groups rows into forward passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Most rows per forward pass.
    pub max_rows: usize,
    /// Most padded tokens (rows × longest row) per forward pass; a longer row goes alone.
    pub max_tokens: usize,
}

impl BatchLimits {
    /// Defaults for `compute`: 64 rows / 8,192 tokens on the CPU, 512 rows / 65,536 tokens on
    /// a GPU (which needs larger batches to be busy).
    pub fn default_for(compute: &Compute) -> Self {
        if compute.device.is_cpu() {
            BatchLimits {
                max_rows: 64,
                max_tokens: 8192,
            }
        } else {
            BatchLimits {
                max_rows: 512,
                max_tokens: 65536,
            }
        }
    }
}

/// What one [`Predictor::logits`] call did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PassStats {
    /// Forward passes.
    pub batches: u64,
    /// Real tokens (special tokens included).
    pub tokens: u64,
    /// Tokens including padding.
    pub padded_tokens: u64,
}

/// A classifier on a device at an inference dtype (see module docs).
pub struct Predictor {
    classifier: Box<dyn Classifier>,
    tokenizer: TextTokenizer,
    max_len: usize,
    info: super::model::ModelInfo,
    compute: Compute,
}

impl Model {
    /// A copy of this model for inference on `compute`, built by its architecture
    /// ([`super::model::Architecture::inference_network`]): BERT with fused layer norm and
    /// softmax, its encoder's linear layers multiplying in `compute.dtype` and everything else
    /// in f32; the CNN in f32 (its convolutions gain nothing from half precision at its size).
    /// An explicit `--precision` the architecture does not run in is refused
    /// ([`Compute::check_runs_in`]); with `auto` it keeps the dtype it can.
    pub fn predictor(&self, compute: &Compute) -> Result<Predictor> {
        let tensors = {
            let data = self.varmap.data().lock().expect("varmap lock poisoned");
            data.iter()
                .map(|(k, v)| {
                    let t = v.as_tensor().to_device(&compute.device)?;
                    Ok((k.clone(), t))
                })
                .collect::<Result<std::collections::HashMap<_, _>>>()?
        };
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &compute.device);
        let (classifier, dtype) =
            self.config
                .arch()
                .inference_network(self.config.json(), vb, compute.dtype)?;
        let arch = self.config.arch().name();
        compute.check_runs_in(
            dtype,
            &format!(
                "a `{arch}` model (it runs in {})",
                crate::models::device::dtype_name(dtype)
            ),
        )?;
        Ok(Predictor {
            classifier,
            tokenizer: self.tokenizer.clone(),
            max_len: self.info.max_len,
            info: self.info.clone(),
            compute: Compute {
                dtype,
                ..compute.clone()
            },
        })
    }
}

/// One padded batch on its way to the device.
struct Prepared {
    rows: Vec<usize>,
    tokens: u64,
    ids: Tensor,
    mask: Tensor,
}

impl Predictor {
    /// Where the model runs.
    pub fn compute(&self) -> &Compute {
        &self.compute
    }

    /// Token ids of every text (specials included, truncated to the model's `max_len`),
    /// tokenized in parallel on the current rayon pool.
    pub fn tokenize(&self, texts: &[&str]) -> Result<Vec<Vec<u32>>> {
        texts
            .par_iter()
            .map(|t| self.tokenizer.encode(t, self.max_len))
            .collect()
    }

    /// Logits (f32, divided by the model's calibration temperature when it has one) of every
    /// text, in input order, and what it took.
    ///
    /// A producer thread takes the texts shortest first (by bytes) in windows of
    /// `limits.max_rows`, tokenizes each window on `pool` (or the global rayon pool), cuts it
    /// into token-budget batches, pads and uploads them, and queues them (two ahead) while
    /// this thread runs the forward passes: tokenizing, padding and copying to the device
    /// overlap with the device's work. The grouping depends only on the texts and limits.
    pub fn logits(
        &self,
        texts: &[&str],
        limits: BatchLimits,
        pool: Option<&rayon::ThreadPool>,
    ) -> Result<(Vec<Vec<f32>>, PassStats)> {
        if limits.max_rows == 0 || limits.max_tokens == 0 {
            return Err(Error::user("batch limits must be at least 1"));
        }
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| (texts[i].len(), i));
        let mut stats = PassStats::default();
        let mut out: Vec<Vec<f32>> = vec![Vec::new(); texts.len()];
        std::thread::scope(|scope| -> Result<()> {
            let (tx, rx) = crossbeam_channel::bounded::<Result<Prepared>>(PREFETCH);
            let order = &order;
            scope.spawn(move || {
                for window in order.chunks(limits.max_rows) {
                    let encode = || -> Result<Vec<Vec<u32>>> {
                        let picked: Vec<&str> = window.iter().map(|&i| texts[i]).collect();
                        self.tokenize(&picked)
                    };
                    let encoded = match pool {
                        Some(p) => p.install(encode),
                        None => encode(),
                    };
                    let encoded = match encoded {
                        Ok(e) => e,
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            return;
                        }
                    };
                    // Empty rows still take one (padding) position: the model needs a length.
                    let lengths: Vec<usize> = encoded.iter().map(|r| r.len().max(1)).collect();
                    for batch in token_batches(&lengths, limits.max_tokens, limits.max_rows) {
                        let prepared = self.pad_batch(window, &encoded, &lengths, &batch);
                        let failed = prepared.is_err();
                        if tx.send(prepared).is_err() || failed {
                            return;
                        }
                    }
                }
            });
            for prepared in rx {
                let p = prepared?;
                let (b, len) = p.ids.dims2()?;
                stats.batches += 1;
                stats.padded_tokens += (b * len) as u64;
                stats.tokens += p.tokens;
                let logits = self
                    .classifier
                    .forward(&p.ids, &p.mask, None)?
                    .to_dtype(DType::F32)?
                    .to_vec2::<f32>()?;
                for (&i, l) in p.rows.iter().zip(logits) {
                    out[i] = l;
                }
            }
            Ok(())
        })?;
        self.info.calibrate(&mut out);
        Ok((out, stats))
    }

    /// Pads rows `batch` of a window (indices into `encoded`) to the longest and uploads ids
    /// and mask; `window` maps them back to input rows.
    fn pad_batch(
        &self,
        window: &[usize],
        encoded: &[Vec<u32>],
        lengths: &[usize],
        batch: &[usize],
    ) -> Result<Prepared> {
        let pad = self.tokenizer.pad_id();
        let len = batch.iter().map(|&j| lengths[j]).max().unwrap_or(1);
        let mut ids = Vec::with_capacity(batch.len() * len);
        let mut mask = Vec::with_capacity(batch.len() * len);
        for &j in batch {
            let r = &encoded[j];
            ids.extend_from_slice(r);
            mask.extend(std::iter::repeat_n(1u32, r.len()));
            ids.extend(std::iter::repeat_n(pad, len - r.len()));
            mask.extend(std::iter::repeat_n(0u32, len - r.len()));
        }
        let device = &self.compute.device;
        Ok(Prepared {
            rows: batch.iter().map(|&j| window[j]).collect(),
            tokens: batch.iter().map(|&j| encoded[j].len() as u64).sum(),
            ids: Tensor::from_vec(ids, (batch.len(), len), device)?,
            mask: Tensor::from_vec(mask, (batch.len(), len), device)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::device::{DeviceSpec, Precision};
    use crate::models::{BertConfig, CnnConfig};
    use candle_core::Device;

    fn texts() -> Vec<String> {
        let words = [
            "good", "bad", "film", "plot", "very", "the", "a", "story", "slow",
        ];
        (0..40)
            .map(|i| {
                (0..(1 + (i * 7) % 23))
                    .map(|j| words[(i + j * 5) % words.len()])
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
    }

    fn models() -> Vec<Model> {
        let t = texts();
        let refs: Vec<&str> = t.iter().map(|s| s.as_str()).collect();
        let tok = TextTokenizer::train_wordpiece(&refs, 120).unwrap();
        let labels = vec!["neg".to_string(), "pos".to_string(), "mixed".to_string()];
        let bert = Model::new_bert(
            BertConfig::tiny(tok.vocab_size(), 3),
            tok.clone(),
            labels.clone(),
            5,
            &Device::Cpu,
        )
        .unwrap();
        let cnn_cfg = CnnConfig {
            embed_dim: 16,
            filters: 8,
            ..CnnConfig::new(tok.vocab_size(), 3)
        };
        let cnn = Model::new_cnn(cnn_cfg, tok, labels, 5, &Device::Cpu).unwrap();
        vec![bert, cnn]
    }

    #[test]
    fn f32_logits_match_the_training_path_whatever_the_batching() {
        let t = texts();
        let refs: Vec<&str> = t.iter().map(|s| s.as_str()).collect();
        for model in models() {
            let want = model.logits(&refs).unwrap();
            let p = model.predictor(&Compute::cpu()).unwrap();
            let mut first: Option<Vec<Vec<f32>>> = None;
            for (max_rows, max_tokens) in [(64, 8192), (1, 8192), (7, 40), (64, 1)] {
                let limits = BatchLimits {
                    max_rows,
                    max_tokens,
                };
                let (got, stats) = p.logits(&refs, limits, None).unwrap();
                assert_eq!(got.len(), refs.len());
                for (g, w) in got.iter().zip(&want) {
                    for (a, b) in g.iter().zip(w) {
                        assert!((a - b).abs() < 1e-4, "{}: {g:?} vs {w:?}", model.info.kind);
                    }
                }
                let lengths: u64 = p
                    .tokenize(&refs)
                    .unwrap()
                    .iter()
                    .map(|r| r.len() as u64)
                    .sum();
                assert_eq!(stats.tokens, lengths);
                assert!(stats.padded_tokens >= stats.tokens);
                if max_rows == 1 || max_tokens == 1 {
                    assert_eq!(stats.batches, refs.len() as u64);
                    assert_eq!(stats.padded_tokens, stats.tokens);
                }
                // Another grouping pads differently, which may move the last bits only; the
                // same grouping gives the same bits.
                let again = p.logits(&refs, limits, None).unwrap().0;
                assert_eq!(again, got);
                match &first {
                    None => first = Some(got),
                    Some(f) => {
                        for (a, b) in f.iter().flatten().zip(got.iter().flatten()) {
                            assert!((a - b).abs() < 1e-6, "{} {limits:?}", model.info.kind);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn half_precision_stays_close_to_f32() {
        let t = texts();
        let refs: Vec<&str> = t.iter().map(|s| s.as_str()).collect();
        let bert = models().remove(0);
        let limits = BatchLimits {
            max_rows: 16,
            max_tokens: 256,
        };
        let (want, _) = bert
            .predictor(&Compute::cpu())
            .unwrap()
            .logits(&refs, limits, None)
            .unwrap();
        for dtype in [DType::BF16, DType::F16] {
            let compute = Compute {
                device: Device::Cpu,
                dtype,
                precision: Precision::Auto,
            };
            let p = bert.predictor(&compute).unwrap();
            assert_eq!(p.compute().dtype, dtype);
            let (got, _) = p.logits(&refs, limits, None).unwrap();
            let worst = got
                .iter()
                .flatten()
                .zip(want.iter().flatten())
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            // Half-precision products, f32 everywhere else: close to the f32 logits.
            assert!(worst < 0.01, "{dtype:?}: max |Δlogit| = {worst}");
        }
        // With `auto`, the CNN stays in f32; asked for bf16 explicitly, it refuses.
        let cnn = models().remove(1);
        let compute = Compute {
            device: Device::Cpu,
            dtype: DType::BF16,
            precision: Precision::Auto,
        };
        assert_eq!(cnn.predictor(&compute).unwrap().compute().dtype, DType::F32);
        let strict = Compute::open(DeviceSpec::Cpu, Precision::Bf16).unwrap();
        let e = cnn.predictor(&strict).err().unwrap().to_string();
        assert_eq!(
            e,
            "--precision bf16 is not supported by a `cnn` model (it runs in f32)"
        );
        let p = bert.predictor(&strict).unwrap();
        assert_eq!(p.compute().dtype, DType::BF16);
    }

    #[test]
    fn the_pool_size_does_not_change_a_bit() {
        let t = texts();
        let refs: Vec<&str> = t.iter().map(|s| s.as_str()).collect();
        let limits = BatchLimits {
            max_rows: 8,
            max_tokens: 128,
        };
        for model in models() {
            let p = model.predictor(&Compute::cpu()).unwrap();
            let runs: Vec<Vec<Vec<f32>>> = [1, 2]
                .iter()
                .map(|&n| {
                    let pool = rayon::ThreadPoolBuilder::new()
                        .num_threads(n)
                        .build()
                        .unwrap();
                    p.logits(&refs, limits, Some(&pool)).unwrap().0
                })
                .collect();
            assert_eq!(runs[0], runs[1], "{}", model.info.kind);
        }
    }

    #[test]
    fn both_logit_paths_divide_by_the_calibration_temperature() {
        let t = texts();
        let refs: Vec<&str> = t.iter().map(|s| s.as_str()).collect();
        for mut model in models() {
            let raw = model.logits(&refs).unwrap();
            model.info.temperature = Some(2.0);
            let halved = model.logits(&refs).unwrap();
            let p = model.predictor(&Compute::cpu()).unwrap();
            let limits = BatchLimits {
                max_rows: 64,
                max_tokens: 8192,
            };
            let predicted = p.logits(&refs, limits, None).unwrap().0;
            for ((r, h), q) in raw.iter().zip(&halved).zip(&predicted) {
                for ((a, b), c) in r.iter().zip(h).zip(q) {
                    assert!((a / 2.0 - b).abs() < 1e-6, "{}", model.info.kind);
                    assert!((b - c).abs() < 1e-4, "{}", model.info.kind);
                }
            }
        }
    }

    #[test]
    fn zero_limits_are_refused() {
        let p = models().remove(1).predictor(&Compute::cpu()).unwrap();
        let zero = BatchLimits {
            max_rows: 0,
            max_tokens: 10,
        };
        assert!(p.logits(&["a"], zero, None).is_err());
    }
}
