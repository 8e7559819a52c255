//! The trainer: a student learns from gold labels and teacher logits with
//! `α·CE + (1−α)·T²·KL`, optional MixUp on soft targets, a consistency term between augmented
//! rows and their parents, EMA of weights, warm-up then linear decay, a checkpoint per epoch.
//! Everything random (initialisation, order, dropout, MixUp) is seeded: training is
//! deterministic for a seed on CPU.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Beta, Distribution};
use serde::{Deserialize, Serialize};

use crate::distill::data::Dataset;
use crate::distill::loss::{self, LossWeights, Targets};
use crate::distill::metrics::{self, Metrics};
use crate::error::{Error, Result};
use crate::models::device::Compute;
use crate::models::folder::Model;
use crate::models::infer::BatchLimits;
use crate::models::model::StudentSpec;
use crate::models::DropoutRng;
use crate::seed;

pub use crate::distill::train_config::{ClassWeights, StudentKind, TrainConfig};

/// What happened in one epoch.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EpochLog {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// Mean training loss.
    pub loss: f64,
    /// Loss of every step (for curves).
    pub step_losses: Vec<f64>,
    /// Seconds spent.
    pub seconds: f64,
    /// Metrics on the evaluation set, when one was given.
    pub eval: Option<Metrics>,
    /// The checkpoint folder.
    pub checkpoint: PathBuf,
}

/// The outcome of training.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainReport {
    /// Per-epoch log.
    pub epochs: Vec<EpochLog>,
    /// The final checkpoint (`OUT/final`).
    pub final_model: PathBuf,
    /// With evaluation rows: the epoch that scored best on them (see [`Metrics::better_than`];
    /// the earliest of equals), saved as `OUT/best`.
    #[serde(default)]
    pub best: Option<BestEpoch>,
    /// Training rows used: with a gold label, with teacher logits.
    pub rows: usize,
    /// Rows with a gold label.
    pub labelled: usize,
    /// Rows with teacher logits.
    pub soft_labelled: usize,
}

/// The epoch that scored best on the evaluation rows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BestEpoch {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// Its metrics on the evaluation rows.
    pub eval: Metrics,
    /// Its checkpoint (`OUT/best`).
    pub model: PathBuf,
}

/// A training row, tokenized.
struct Row {
    ids: Vec<u32>,
    label: Option<usize>,
    teacher: Option<Vec<f32>>,
    family: usize,
    parent: Option<usize>,
}

/// Builds a fresh student for `data` with the architecture of `cfg.student`.
pub fn new_student(cfg: &TrainConfig, data: &Dataset, device: &Device) -> Result<Model> {
    let texts: Vec<&str> = data.examples.iter().map(|e| e.text.as_str()).collect();
    let spec = StudentSpec {
        texts: &texts,
        label_names: &data.label_names,
        init: cfg.init.as_deref(),
        vocab_size: cfg.vocab_size,
        max_len: cfg.max_len,
        embed_dim: cfg.embed_dim,
        seed: seed::stage_seed(cfg.seed, "train/init"),
        device,
    };
    cfg.student.arch().new_student(&spec)
}

/// Learning rate at `step` of `total`: linear warm-up, then linear decay to zero.
pub fn schedule(peak: f64, warmup: f64, step: usize, total: usize) -> f64 {
    let warm = ((total as f64) * warmup).ceil().max(1.0);
    let s = step as f64 + 1.0;
    if s <= warm {
        peak * s / warm
    } else {
        peak * ((total as f64 - s + 1.0) / (total as f64 - warm + 1.0)).max(0.0)
    }
}

/// Trains `student` on `data`, writing `OUT/epoch-NN` after each epoch and `OUT/final`.
pub fn train(
    cfg: &TrainConfig,
    student: &mut Model,
    data: &Dataset,
    eval: Option<&Dataset>,
    out: &Path,
    progress: bool,
) -> Result<TrainReport> {
    cfg.validate()?;
    let classes = student.info.label_names.len();
    if student.info.label_names != data.label_names {
        return Err(Error::user(format!(
            "the training rows have classes {:?}, the student {:?}",
            data.label_names, student.info.label_names
        )));
    }
    let mut rows = tokenize(student, data)?;
    if let Some(t) = cfg.teacher_temperature {
        for logits in rows.iter_mut().filter_map(|r| r.teacher.as_mut()) {
            logits
                .iter_mut()
                .for_each(|v| *v = (f64::from(*v) / t) as f32);
        }
    }
    if rows
        .iter()
        .all(|r| r.label.is_none() && r.teacher.is_none())
    {
        return Err(Error::user(
            "no training row has a gold label or teacher logits",
        ));
    }
    let device = student.device.clone();
    let vars = student.varmap.all_vars();
    let mut opt = AdamW::new(
        vars.clone(),
        ParamsAdamW {
            lr: cfg.lr(),
            weight_decay: cfg.weight_decay,
            ..ParamsAdamW::default()
        },
    )?;
    let mut ema: Option<Vec<Tensor>> = match cfg.ema {
        Some(_) => Some(
            vars.iter()
                .map(|v| v.as_tensor().copy())
                .collect::<candle_core::Result<_>>()?,
        ),
        None => None,
    };
    let class_weight = cfg
        .class_weights
        .weights(rows.iter().filter_map(|r| r.label), classes);
    let steps_per_epoch = rows.len().div_ceil(cfg.batch_size);
    let total = steps_per_epoch * cfg.epochs;
    let weights = LossWeights {
        alpha: cfg.alpha,
        temperature: cfg.temperature,
    };
    let bar = crate::progress::bar(total as u64, "steps", progress);
    let mut logs = Vec::new();
    let mut best: Option<BestEpoch> = None;
    let mut step = 0usize;
    for epoch in 1..=cfg.epochs {
        let t0 = Instant::now();
        let order = epoch_order(&rows, cfg, epoch);
        let mut losses = Vec::with_capacity(steps_per_epoch);
        for batch in order.chunks(cfg.batch_size) {
            opt.set_learning_rate(schedule(cfg.lr(), cfg.warmup, step, total));
            let step_seed = seed::copy_seed(seed::stage_seed(cfg.seed, "train/step"), step as u32);
            let loss = step_loss(
                student,
                &rows,
                batch,
                &class_weight,
                weights,
                cfg,
                step_seed,
                &device,
            )?;
            let value = f64::from(loss.to_dtype(DType::F32)?.to_scalar::<f32>()?);
            if !value.is_finite() {
                return Err(Error::runtime(format!(
                    "the training loss is {value} at epoch {epoch}, step {}: no model is written",
                    step + 1
                ))
                .with_hint(
                    "check the rows' `teacher_logits` for NaN or infinite values, and try a lower `learning_rate`",
                ));
            }
            losses.push(value);
            opt.backward_step(&loss)?;
            if let (Some(shadow), Some(decay)) = (ema.as_mut(), cfg.ema) {
                for (s, v) in shadow.iter_mut().zip(&vars) {
                    *s = ((&*s * decay)? + (v.as_tensor() * (1.0 - decay))?)?;
                }
            }
            step += 1;
            bar.inc(1);
        }
        let dir = out.join(format!("epoch-{epoch:02}"));
        let seconds = t0.elapsed().as_secs_f64();
        let eval_metrics = with_weights(student, ema.as_deref(), |m| {
            save_checkpoint(m, cfg, &dir, epoch, data)?;
            eval.map(|e| evaluate(m, e)).transpose()
        })?;
        if let Some(m) =
            eval_metrics.filter(|m| best.as_ref().is_none_or(|b| m.better_than(&b.eval)))
        {
            let model = out.join("best");
            with_weights(student, ema.as_deref(), |s| {
                save_checkpoint(s, cfg, &model, epoch, data)
            })?;
            best = Some(BestEpoch {
                epoch,
                eval: m,
                model,
            });
        }
        if let Some(k) = cfg.keep_epochs.filter(|&k| epoch > k) {
            let old = out.join(format!("epoch-{:02}", epoch - k));
            if old.exists() {
                fs_err::remove_dir_all(&old).map_err(|e| {
                    Error::runtime("cannot remove an old checkpoint").with_source(e)
                })?;
            }
        }
        let mean = losses.iter().sum::<f64>() / losses.len().max(1) as f64;
        bar.println(format!(
            "epoch {epoch}/{}: loss {mean:.4}{} ({seconds:.1} s)",
            cfg.epochs,
            eval_metrics
                .map(|m| format!(
                    ", eval accuracy {:.4}, macro-F1 {:.4}",
                    m.accuracy, m.macro_f1
                ))
                .unwrap_or_default()
        ));
        logs.push(EpochLog {
            epoch,
            loss: mean,
            step_losses: losses,
            seconds,
            eval: eval_metrics,
            checkpoint: dir,
        });
    }
    bar.finish_and_clear();
    let final_dir = out.join("final");
    with_weights(student, ema.as_deref(), |m| {
        save_checkpoint(m, cfg, &final_dir, cfg.epochs, data)
    })?;
    let report = TrainReport {
        epochs: logs,
        final_model: final_dir,
        best,
        rows: rows.len(),
        labelled: data.labelled(),
        soft_labelled: data.soft_labelled(),
    };
    crate::io::manifest::write_json_atomic(&out.join("train_log.json"), &report)?;
    Ok(report)
}

/// Runs `f` with the EMA weights swapped in (when there are any), then restores the weights.
fn with_weights<T>(
    model: &mut Model,
    ema: Option<&[Tensor]>,
    f: impl FnOnce(&mut Model) -> Result<T>,
) -> Result<T> {
    let Some(ema) = ema else {
        return f(model);
    };
    let vars = model.varmap.all_vars();
    let saved: Vec<Tensor> = vars
        .iter()
        .map(|v| v.as_tensor().copy())
        .collect::<candle_core::Result<_>>()?;
    for (v, e) in vars.iter().zip(ema) {
        v.set(e)?;
    }
    let out = f(model);
    for (v, s) in vars.iter().zip(&saved) {
        v.set(s)?;
    }
    out
}

fn save_checkpoint(
    model: &mut Model,
    cfg: &TrainConfig,
    dir: &Path,
    epoch: usize,
    data: &Dataset,
) -> Result<()> {
    model.info.training = serde_json::json!({
        "config": cfg,
        "epoch": epoch,
        "rows": data.examples.len(),
        "labelled": data.labelled(),
        "soft_labelled": data.soft_labelled(),
        "tool": format!("retort {}", env!("CARGO_PKG_VERSION")),
    });
    model.save(dir)
}

/// Metrics of `model` on the labelled rows of `data`.
pub fn evaluate(model: &Model, data: &Dataset) -> Result<Metrics> {
    evaluate_with(model, data, |texts| model.logits(texts))
}

/// [`evaluate`] with the inference copy of `model` on `compute` (its device and dtype: what
/// `retort eval --precision` asks; an explicit precision the model cannot run in is refused).
pub fn evaluate_on(model: &Model, data: &Dataset, compute: &Compute) -> Result<Metrics> {
    let predictor = model.predictor(compute)?;
    let limits = BatchLimits::default_for(compute);
    evaluate_with(model, data, |texts| {
        Ok(predictor.logits(texts, limits, None)?.0)
    })
}

/// Metrics of the logits `logits_of` gives for the labelled rows of `data`.
fn evaluate_with(
    model: &Model,
    data: &Dataset,
    logits_of: impl FnOnce(&[&str]) -> Result<Vec<Vec<f32>>>,
) -> Result<Metrics> {
    if model.info.label_names != data.label_names {
        return Err(Error::user(format!(
            "the evaluation rows have classes {:?}, the model {:?}",
            data.label_names, model.info.label_names
        )));
    }
    let labelled: Vec<_> = data.examples.iter().filter(|e| e.label.is_some()).collect();
    if labelled.is_empty() {
        return Err(Error::user("the evaluation rows have no gold labels"));
    }
    model.check_finite()?;
    let texts: Vec<&str> = labelled.iter().map(|e| e.text.as_str()).collect();
    let gold: Vec<usize> = labelled.iter().filter_map(|e| e.label).collect();
    let logits = logits_of(&texts)?;
    Ok(metrics::compute(
        &logits,
        &gold,
        model.info.label_names.len(),
    ))
}

fn tokenize(model: &Model, data: &Dataset) -> Result<Vec<Row>> {
    let index: HashMap<&str, usize> = data
        .examples
        .iter()
        .enumerate()
        .map(|(i, e)| (e.id.as_str(), i))
        .collect();
    let mut families: HashMap<&str, usize> = HashMap::new();
    let mut rows = Vec::with_capacity(data.examples.len());
    for e in &data.examples {
        let root = e.parent_id.as_deref().unwrap_or(&e.id);
        let n = families.len();
        let family = *families.entry(root).or_insert(n);
        rows.push(Row {
            ids: model.tokenizer.encode(&e.text, model.info.max_len)?,
            label: e.label,
            teacher: e.teacher.clone(),
            family,
            parent: e.parent_id.as_deref().and_then(|p| index.get(p).copied()),
        });
    }
    Ok(rows)
}

/// The order of rows in one epoch: a seeded shuffle; with the consistency term, whole
/// families (a row and its augmentations) are shuffled and kept together.
fn epoch_order(rows: &[Row], cfg: &TrainConfig, epoch: usize) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed::copy_seed(
        seed::stage_seed(cfg.seed, "train/order"),
        epoch as u32,
    ));
    if cfg.consistency > 0.0 {
        let n = rows.iter().map(|r| r.family + 1).max().unwrap_or(0);
        let mut members: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (i, r) in rows.iter().enumerate() {
            members[r.family].push(i);
        }
        members.shuffle(&mut rng);
        members.into_iter().flatten().collect()
    } else {
        let mut order: Vec<usize> = (0..rows.len()).collect();
        order.shuffle(&mut rng);
        order
    }
}

/// The loss of one batch.
#[allow(clippy::too_many_arguments)]
fn step_loss(
    model: &Model,
    rows: &[Row],
    batch: &[usize],
    class_weight: &[f32],
    weights: LossWeights,
    cfg: &TrainConfig,
    step_seed: u64,
    device: &Device,
) -> Result<Tensor> {
    let b = batch.len();
    let classes = class_weight.len();
    let len = batch
        .iter()
        .map(|&i| rows[i].ids.len())
        .max()
        .unwrap_or(1)
        .max(1);
    let pad = model.tokenizer.pad_id();
    let mut ids = vec![pad; b * len];
    let mut mask = vec![0u32; b * len];
    let mut gold = vec![0u32; b];
    let mut gold_mask = vec![0f32; b];
    let mut gold_weight = vec![1f32; b];
    let mut teacher = vec![0f32; b * classes];
    let mut teacher_mask = vec![0f32; b];
    for (p, &i) in batch.iter().enumerate() {
        let r = &rows[i];
        ids[p * len..p * len + r.ids.len()].copy_from_slice(&r.ids);
        mask[p * len..p * len + r.ids.len()].fill(1);
        if let Some(l) = r.label {
            gold[p] = l as u32;
            gold_mask[p] = 1.0;
            gold_weight[p] = class_weight[l];
        }
        if let Some(t) = &r.teacher {
            teacher[p * classes..(p + 1) * classes].copy_from_slice(t);
            teacher_mask[p] = 1.0;
        }
    }
    let ids = Tensor::from_vec(ids, (b, len), device)?;
    let mask = Tensor::from_vec(mask, (b, len), device)?;
    let gold = Tensor::from_vec(gold, b, device)?;
    let gold_mask = Tensor::from_vec(gold_mask, b, device)?;
    let teacher = Tensor::from_vec(teacher, (b, classes), device)?;
    let teacher_mask = Tensor::from_vec(teacher_mask, b, device)?;
    let weighted = cfg.class_weights != ClassWeights::None;
    let gold_weight = Tensor::from_vec(gold_weight, b, device)?;
    let targets = Targets {
        gold: &gold,
        gold_mask: &gold_mask,
        teacher: &teacher,
        teacher_mask: &teacher_mask,
        gold_weight: weighted.then_some(&gold_weight),
    };
    let mut dropout = DropoutRng::new(step_seed);
    let mut rng = ChaCha8Rng::seed_from_u64(seed::copy_seed(step_seed, 1));

    let (mut total, plain) = match cfg.mixup {
        Some(a) => {
            let lambda: f64 = Beta::new(a, a)
                .map_err(|e| Error::user(format!("`mixup` = {a}: {e}")))?
                .sample(&mut rng);
            let mut perm: Vec<u32> = (0..b as u32).collect();
            perm.shuffle(&mut rng);
            let perm = Tensor::from_vec(perm, b, device)?;
            let f = model.classifier.features(&ids, &mask, Some(&mut dropout))?;
            let mixed = ((&f * lambda)? + (f.index_select(&perm, 0)? * (1.0 - lambda))?)?;
            let logits = model.classifier.head(&mixed, Some(&mut dropout))?;
            let (g2, gm2, t2, tm2, w2) = (
                gold.index_select(&perm, 0)?,
                gold_mask.index_select(&perm, 0)?,
                teacher.index_select(&perm, 0)?,
                teacher_mask.index_select(&perm, 0)?,
                gold_weight.index_select(&perm, 0)?,
            );
            let other = Targets {
                gold: &g2,
                gold_mask: &gm2,
                teacher: &t2,
                teacher_mask: &tm2,
                gold_weight: weighted.then_some(&w2),
            };
            let l1 = loss::mean(&loss::rows(&logits, &targets, weights)?, &targets)?;
            let l2 = loss::mean(&loss::rows(&logits, &other, weights)?, &other)?;
            let total = ((l1 * lambda)? + (l2 * (1.0 - lambda))?)?;
            let plain = if cfg.consistency > 0.0 {
                Some(model.classifier.forward(&ids, &mask, Some(&mut dropout))?)
            } else {
                None
            };
            (total, plain)
        }
        None => {
            let logits = model.classifier.forward(&ids, &mask, Some(&mut dropout))?;
            let total = loss::mean(&loss::rows(&logits, &targets, weights)?, &targets)?;
            (total, Some(logits))
        }
    };
    if cfg.consistency > 0.0 {
        let position: HashMap<usize, u32> = batch
            .iter()
            .enumerate()
            .map(|(p, &i)| (i, p as u32))
            .collect();
        let (mut aug, mut par) = (Vec::new(), Vec::new());
        for (p, &i) in batch.iter().enumerate() {
            if let Some(q) = rows[i].parent.and_then(|pi| position.get(&pi)) {
                aug.push(p as u32);
                par.push(*q);
            }
        }
        if let (false, Some(plain)) = (aug.is_empty(), plain) {
            let n = aug.len();
            let a = plain.index_select(&Tensor::from_vec(aug, n, device)?, 0)?;
            let q = plain.index_select(&Tensor::from_vec(par, n, device)?, 0)?;
            total = (total + (loss::consistency(&a, &q)? * cfg.consistency)?)?;
        }
    }
    Ok(total)
}
