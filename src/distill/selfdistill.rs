//! Iterative and ensemble self-distillation (born-again networks): generation 0 trains on gold
//! labels of the augmented corpus (copies inherit their parent's label); each next generation
//! relabels the augmented corpus with a teacher (the previous generation, all earlier
//! generations, or the last K epoch checkpoints of the previous one) and trains a fresh
//! student on gold + soft labels. Every generation is evaluated.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::augment::adapter::CopyOptions;
use crate::augment::eda::{self, EdaConfig};
use crate::distill::data;
use crate::distill::dev_split::DevSplit;
use crate::distill::metrics::Metrics;
use crate::distill::stats::wilson;
use crate::distill::teacher::{self, Folders, TeacherConfig};
use crate::distill::train::{self, TrainConfig};
use crate::error::{Error, Result};
use crate::io::{sink, source};
use crate::pipeline::build::{with_defaults, PipelineBuilder};
use crate::pipeline::executor::{Executor, RunOptions};
use crate::pipeline::local::LocalExecutor;
use crate::pipeline::plan;
use crate::stage::RunSettings;

/// Which models teach the next generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EnsembleMode {
    /// The previous generation's final model (iterative self-distillation).
    Previous,
    /// Every earlier generation's final model.
    All,
    /// The last K epoch checkpoints of the previous generation.
    LastEpochs(usize),
}

impl std::str::FromStr for EnsembleMode {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "none" | "previous" => Ok(EnsembleMode::Previous),
            "all" => Ok(EnsembleMode::All),
            _ => s
                .strip_prefix("last:")
                .and_then(|k| k.parse().ok())
                .filter(|k: &usize| *k > 0)
                .map(EnsembleMode::LastEpochs)
                .ok_or_else(|| format!("`{s}` is not `previous`, `all` or `last:K`")),
        }
    }
}

/// Settings of a self-distillation run.
#[derive(Debug, Clone, Serialize)]
pub struct SelfDistillConfig {
    /// Generations after generation 0.
    pub generations: usize,
    /// Who teaches.
    pub ensemble: EnsembleMode,
    /// EDA strength; `copies = 0` trains on the original rows only.
    pub alpha: f64,
    /// EDA copies per row.
    pub copies: u32,
    /// Each generation after 0 trains on fresh EDA copies (another seed), which its teacher
    /// labels without having trained on them (as in Noisy Student); otherwise every
    /// generation reuses generation 0's corpus.
    #[serde(default)]
    pub fresh_copies: bool,
    /// Cross-fit every teaching generation with this many folds (see
    /// [`crate::distill::crossfit`]): each training row is then labelled by a model that never
    /// saw its family. 0: a generation's own model teaches (born-again networks).
    #[serde(default)]
    pub crossfit: usize,
    /// Unlabeled in-domain rows (a Parquet file, folder or glob; any labels are ignored):
    /// each with one EDA copy ([`POOL_COPIES`]), labelled by every generation's teacher and
    /// trained on from generation 1, as in Noisy Student.
    #[serde(default)]
    pub unlabeled: Option<String>,
    /// Student training settings (the seed of generation k is `seed + k`).
    pub train: TrainConfig,
}

/// One generation's outcome.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Generation {
    /// Generation number, from 0.
    pub generation: usize,
    /// Teacher model folders (empty for generation 0).
    pub teachers: Vec<PathBuf>,
    /// The trained model.
    pub model: PathBuf,
    /// Metrics of the model on the evaluation rows.
    pub metrics: Option<Metrics>,
    /// With a dev split: the model is the epoch that scored best on it, and these are its
    /// metrics there; otherwise the model is the last epoch.
    #[serde(default)]
    pub dev: Option<Metrics>,
    /// The epoch the model is (the last, or the dev split's choice).
    #[serde(default)]
    pub epoch: usize,
    /// Mean training loss per epoch.
    pub losses: Vec<f64>,
    /// The generation's cross-fit folder, when it teaches cross-fitted.
    #[serde(default)]
    pub crossfit: Option<PathBuf>,
    /// Mean entropy (nats) of the soft labels this generation trained on.
    #[serde(default)]
    pub soft_label_entropy: Option<f64>,
}

/// The stage a step puts between its corpus and its output folder.
enum Step {
    /// Copy the rows as they are.
    Copy,
    /// EDA copies of every row (the rows themselves kept).
    Eda(CopyOptions, EdaConfig),
    /// Teacher logits on every row.
    Teacher(TeacherConfig),
}

/// Runs `corpus -> step -> out` as a pipeline (resumable and skipped when up to date). The
/// middle stage is named after its kind, which seeds it.
fn run_step(
    name: &str,
    seed: u64,
    input: &str,
    step: Step,
    output: &Path,
    placement: crate::models::device::Placement,
) -> Result<()> {
    let read = with_defaults(&source::KIND, [("path", input)])?;
    let write = with_defaults(&sink::KIND, [("path", &output.display().to_string())])?;
    let corpus = "corpus";
    let pipeline = PipelineBuilder::new(name, seed).stage(corpus, &source::KIND, &[], &read)?;
    let (pipeline, last) = match step {
        Step::Copy => (pipeline, corpus),
        Step::Eda(copies, cfg) => {
            let id = eda::KIND.name;
            let pipeline = pipeline.stage(id, &eda::KIND, &[corpus], &(copies, cfg))?;
            (pipeline, id)
        }
        Step::Teacher(cfg) => {
            let id = teacher::KIND.name;
            (pipeline.stage(id, &teacher::KIND, &[corpus], &cfg)?, id)
        }
    };
    let spec = pipeline
        .stage("out", &sink::KIND, &[last], &write)?
        .finish();
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let settings = RunSettings {
        threads,
        placement,
        ..RunSettings::with_seed(seed)
    };
    let p = plan::build(&spec, &settings, &format!("the `{name}` step"))?;
    let opts = RunOptions {
        progress: false,
        force: true,
        ..RunOptions::default()
    };
    LocalExecutor.execute(p, Arc::new(settings), &opts)?;
    Ok(())
}

/// The augmented training corpus of a self-distillation run.
pub struct Corpus {
    /// The folder of the augmented rows (`OUT/augmented`).
    pub path: PathBuf,
    /// Its rows, with gold labels (copies inherit their parent's).
    pub gold: data::Dataset,
    /// Hash of its manifest (and the pool's): a generation trained on another corpus is stale.
    pub fingerprint: String,
    /// The augmented unlabeled pool (`OUT/pool`), when there is one: only teachers label it.
    pub pool: Option<PathBuf>,
    /// The dev split held out of training (see [`Corpus::with_holdout`]).
    pub holdout: Option<DevSplit>,
    /// The dev rows: the held-out originals with their gold labels.
    pub dev: Option<data::Dataset>,
}

impl Corpus {
    /// Holds `split` out: its families leave the training rows (teachers still label them, no
    /// student trains on them) and its originals become the dev rows that choose each
    /// student's epoch.
    pub fn with_holdout(mut self, split: &DevSplit) -> Corpus {
        self.dev = Some(split.dev_rows(&self.gold));
        self.gold = split.train_part(&self.gold);
        self.fingerprint = format!("{}-{}", self.fingerprint, split.fingerprint());
        self.holdout = Some(split.clone());
        self
    }
}

/// EDA copies of each unlabeled pool row (at most `copies`).
pub const POOL_COPIES: u32 = 1;

/// The label column read from an unlabeled pool: none, whatever the files hold.
const NO_LABEL: &str = "\u{0}retort: no label";

/// Writes the EDA-augmented corpus (`copies = 0`: the rows as they are) to `OUT/augmented`
/// and loads it. Skipped when already complete for the same settings.
pub fn prepare(cfg: &SelfDistillConfig, train_path: &str, out: &Path) -> Result<Corpus> {
    prepare_variant(cfg, train_path, out, 0)
}

/// The corpus generation `g` trains on: generation 0's, or with `fresh_copies` new EDA copies
/// made with seed `train.seed + g` in `OUT/augmented-g`.
pub fn corpus_for(
    cfg: &SelfDistillConfig,
    train_path: &str,
    out: &Path,
    g: usize,
) -> Result<Option<Corpus>> {
    if !cfg.fresh_copies || g == 0 || cfg.copies == 0 {
        return Ok(None);
    }
    prepare_variant(cfg, train_path, out, g).map(Some)
}

fn prepare_variant(
    cfg: &SelfDistillConfig,
    train_path: &str,
    out: &Path,
    variant: usize,
) -> Result<Corpus> {
    cfg.train.validate()?;
    let augmented = if variant == 0 {
        out.join("augmented")
    } else {
        out.join(format!("augmented-{variant}"))
    };
    let step = |copies: u32| {
        if copies > 0 {
            let copies = CopyOptions {
                copies,
                keep_original: true,
                unchanged: Default::default(),
            };
            let eda = EdaConfig {
                alpha: cfg.alpha,
                ..EdaConfig::default()
            };
            Step::Eda(copies, eda)
        } else {
            Step::Copy
        }
    };
    let seed = cfg.train.seed + variant as u64;
    run_step(
        "augment",
        seed,
        train_path,
        step(cfg.copies),
        &augmented,
        cfg.train.placement,
    )?;
    let pool = match &cfg.unlabeled {
        Some(u) => {
            let dir = match variant {
                0 => out.join("pool"),
                v => out.join(format!("pool-{v}")),
            };
            // One copy per pool row: the pool is usually many times the labelled rows, and
            // one noisy view of each new input already gives the student new inputs.
            let copies = cfg.copies.min(POOL_COPIES);
            run_step("augment", seed, u, step(copies), &dir, cfg.train.placement)
                .map_err(|e| e.context("the unlabeled pool"))?;
            Some(dir)
        }
        None => None,
    };
    let gold = data::load(&augmented.display().to_string(), "text", "label", None)?;
    if gold.labelled() == 0 {
        return Err(Error::user(format!("`{train_path}` has no gold labels"))
            .with_hint("generation 0 trains on gold labels"));
    }
    let read = |dir: &Path| {
        fs_err::read(dir.join("_SUCCESS.json")).map_err(|e| {
            Error::runtime("cannot read the augmented corpus' manifest").with_source(e)
        })
    };
    let mut manifest = read(&augmented)?;
    if let Some(p) = &pool {
        manifest.extend(read(p)?);
    }
    Ok(Corpus {
        path: augmented,
        gold,
        fingerprint: format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&manifest)),
        pool,
        holdout: None,
        dev: None,
    })
}

/// Refuses a fold count that cannot cross-fit.
pub fn check_crossfit(folds: usize) -> Result<()> {
    if folds == 1 || folds > 20 {
        return Err(Error::user(format!(
            "`--crossfit {folds}`: cross-fitting needs between 2 and 20 folds"
        ))
        .with_hint("use 5, or 0 to let each generation's own model teach"));
    }
    Ok(())
}

/// The teachers of generation `g` (≥ 1) given the earlier generations.
pub fn teachers_for(mode: EnsembleMode, earlier: &[Generation], epochs: usize) -> Vec<PathBuf> {
    let Some(prev) = earlier.last() else {
        return vec![];
    };
    let teacher = |g: &Generation| g.crossfit.clone().unwrap_or_else(|| g.model.clone());
    match mode {
        EnsembleMode::Previous => vec![teacher(prev)],
        EnsembleMode::All => earlier.iter().map(teacher).collect(),
        EnsembleMode::LastEpochs(k) => (epochs.saturating_sub(k) + 1..=epochs)
            .map(|e| {
                prev.model
                    .parent()
                    .unwrap_or(Path::new("."))
                    .join(format!("epoch-{e:02}"))
            })
            .collect(),
    }
}

/// What a finished generation was trained from; equal keys mean the result can be reused.
#[derive(Serialize, Deserialize, PartialEq)]
struct GenerationKey {
    corpus: String,
    train: serde_json::Value,
    teachers: Vec<PathBuf>,
    /// The teachers' content (see [`crate::io::identity::model_identity`]): a teacher retrained
    /// at the same path makes the generation stale.
    teacher_content: Vec<String>,
    eval: Option<String>,
    #[serde(default)]
    folds: usize,
}

#[derive(Serialize, Deserialize)]
struct GenerationRecord {
    key: GenerationKey,
    generation: Generation,
}

/// Trains generation `g` into `dir`: with no teachers on the gold labels of the corpus,
/// otherwise on gold + soft labels written by the teachers into `dir/soft`; with `folds ≥ 2`
/// also its cross-fit folder `dir/crossfit` (the same rows, `folds` fold models). The train
/// seed is `train.seed + g`. A generation already finished with the same settings is reused.
#[allow(clippy::too_many_arguments)]
pub fn train_generation(
    train_cfg: &TrainConfig,
    corpus: &Corpus,
    g: usize,
    teachers: Vec<PathBuf>,
    folds: usize,
    dir: &Path,
    eval: Option<(&str, &data::Dataset)>,
    progress: bool,
) -> Result<Generation> {
    let mut tc = train_cfg.clone();
    tc.seed = train_cfg.seed + g as u64;
    let cache = crate::io::hash_cache::HashCache::in_cache_dir();
    let teacher_content = teachers
        .iter()
        .map(|t| crate::io::identity::model_identity(t, &cache))
        .collect::<Result<Vec<_>>>()?;
    let key = GenerationKey {
        corpus: corpus.fingerprint.clone(),
        train: serde_json::to_value(&tc).unwrap_or_default(),
        teachers: teachers.clone(),
        teacher_content,
        eval: eval.map(|(p, _)| p.to_string()),
        folds,
    };
    let record_path = dir.join("generation.json");
    if let Ok(old) = crate::io::manifest::read_json::<GenerationRecord>(&record_path) {
        let crossfit_done = old
            .generation
            .crossfit
            .as_ref()
            .is_none_or(|c| c.join(crate::distill::crossfit::FOLDS_FILE).is_file());
        if old.key == key
            && old.generation.model.join("model.safetensors").exists()
            && crossfit_done
        {
            return Ok(old.generation);
        }
    }
    let device = tc.placement.open()?.device;
    let rows = if teachers.is_empty() {
        corpus.gold.clone()
    } else {
        let models: Vec<String> = teachers.iter().map(|t| t.display().to_string()).collect();
        let step = || {
            Step::Teacher(TeacherConfig {
                model: Folders::Many(models.clone()),
                batch_size: None,
                batch_tokens: None,
            })
        };
        let soft = dir.join("soft");
        let corpus_path = corpus.path.display().to_string();
        run_step(
            "soft-labels",
            tc.seed,
            &corpus_path,
            step(),
            &soft,
            tc.placement,
        )?;
        let names = Some(corpus.gold.label_names.as_slice());
        let mut rows = data::load(&soft.display().to_string(), "text", "label", names)?;
        if let Some(split) = &corpus.holdout {
            rows = split.train_part(&rows);
        }
        if let Some(pool) = &corpus.pool {
            let soft = dir.join("soft-pool");
            let pool_path = pool.display().to_string();
            run_step(
                "soft-labels",
                tc.seed,
                &pool_path,
                step(),
                &soft,
                tc.placement,
            )?;
            let unlabeled = data::load(&soft.display().to_string(), "text", NO_LABEL, names)?;
            rows.examples.extend(unlabeled.examples);
        }
        rows
    };
    let mut student = train::new_student(&tc, &rows, &device)?;
    let report = train::train(
        &tc,
        &mut student,
        &rows,
        corpus.dev.as_ref(),
        &dir.join("student"),
        progress,
    )?;
    let (model, epoch, dev) = match &report.best {
        Some(b) => (b.model.clone(), b.epoch, Some(b.eval)),
        None => (report.final_model.clone(), tc.epochs, None),
    };
    let final_model = crate::models::folder::Model::load(&model, &device)?;
    let metrics = eval
        .map(|(_, e)| train::evaluate(&final_model, e))
        .transpose()?;
    let crossfit = if folds >= 2 {
        let path = dir.join("crossfit");
        crate::distill::crossfit::train_folds(&tc, &rows, folds, &path, progress)?;
        Some(path)
    } else {
        None
    };
    let generation = Generation {
        generation: g,
        teachers,
        model,
        metrics,
        dev,
        epoch,
        losses: report.epochs.iter().map(|e| e.loss).collect(),
        crossfit,
        soft_label_entropy: crate::distill::crossfit::soft_label_entropy(
            &rows,
            tc.teacher_temperature.unwrap_or(1.0),
        ),
    };
    crate::io::manifest::write_json_atomic(
        &record_path,
        &GenerationRecord {
            key,
            generation: generation.clone(),
        },
    )?;
    Ok(generation)
}

/// Runs generation 0 and `cfg.generations` more under `out`. Generations already finished
/// with the same settings are reused, so an interrupted run continues where it stopped.
pub fn run(
    cfg: &SelfDistillConfig,
    train_path: &str,
    eval_path: Option<&str>,
    out: &Path,
    progress: bool,
) -> Result<Vec<Generation>> {
    check_crossfit(cfg.crossfit)?;
    let corpus = prepare(cfg, train_path, out)?;
    let eval = eval_path
        .map(|p| data::load(p, "text", "label", Some(&corpus.gold.label_names)))
        .transpose()?;
    let eval = eval_path.zip(eval.as_ref());
    let mut generations: Vec<Generation> = Vec::new();
    for g in 0..=cfg.generations {
        let teachers = teachers_for(cfg.ensemble, &generations, cfg.train.epochs);
        let dir = out.join(format!("gen-{g}"));
        let fresh = corpus_for(cfg, train_path, out, g)?;
        // The last generation teaches nobody.
        let folds = if g < cfg.generations { cfg.crossfit } else { 0 };
        generations.push(train_generation(
            &cfg.train,
            fresh.as_ref().unwrap_or(&corpus),
            g,
            teachers,
            folds,
            &dir,
            eval,
            progress,
        )?);
    }
    crate::io::manifest::write_json_atomic(&out.join("generations.json"), &generations)?;
    Ok(generations)
}

/// A table of the generations' metrics: each accuracy with its 95% Wilson interval on the
/// evaluation rows, so a difference of a few rows is not read as a change of the model.
pub fn table_text(gens: &[Generation]) -> String {
    let mut s = format!(
        "{:>10} {:>9} {:>17} {:>9} {:>8} {:>8} {:>10} {:>8}  teachers\n",
        "generation", "accuracy", "95% interval", "macro-F1", "NLL", "ECE", "last loss", "entropy"
    );
    for g in gens {
        let m = g
            .metrics
            .map(|m| {
                let interval = wilson(m.accuracy, m.rows)
                    .map(|i| format!("[{:.4}, {:.4}]", i.lo, i.hi))
                    .unwrap_or_else(|| "-".into());
                format!(
                    "{:>9.4} {interval:>17} {:>9.4} {:>8.4} {:>8.4}",
                    m.accuracy, m.macro_f1, m.nll, m.ece
                )
            })
            .unwrap_or_else(|| format!("{:>9} {:>17} {:>9} {:>8} {:>8}", "-", "-", "-", "-", "-"));
        let entropy = g
            .soft_label_entropy
            .map(|h| format!("{h:.4}"))
            .unwrap_or_else(|| "-".into());
        s.push_str(&format!(
            "{:>10} {m} {:>10.4} {entropy:>8}  {}\n",
            g.generation,
            g.losses.last().copied().unwrap_or(0.0),
            if g.teachers.is_empty() {
                "gold labels".to_string()
            } else {
                let crossfit = g
                    .teachers
                    .iter()
                    .filter(|t| t.join(crate::distill::crossfit::FOLDS_FILE).is_file())
                    .count();
                if crossfit > 0 {
                    format!("{} model(s), {crossfit} cross-fitted", g.teachers.len())
                } else {
                    format!("{} model(s)", g.teachers.len())
                }
            }
        ));
    }
    if let Some(rows) = gens.iter().find_map(|g| g.metrics.map(|m| m.rows)) {
        s.push_str(&format!(
            "accuracy on {rows} evaluation rows (one row = {:.4}); 95% Wilson interval: \
             generations whose intervals overlap are not told apart by these rows\n",
            1.0 / rows.max(1) as f64
        ));
    }
    if gens.iter().any(|g| g.soft_label_entropy.is_some()) {
        s.push_str(
            "entropy: mean entropy (nats) of the soft labels a generation trained on; \
             0 is one-hot, ln(classes) uniform\n",
        );
    }
    s
}
