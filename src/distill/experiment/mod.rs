//! `retort experiment`: the standard comparison of settings on one train/test pair, repeated
//! over seeds.
//!
//! - `gold`: a student trained on the gold labels of the original rows;
//! - `augmented`: + EDA copies (generation 0 of self-distillation);
//! - `self-distill`: + `generations` rounds of born-again self-distillation, each generation
//!   taught by the previous one, on the augmented corpus and the new inputs below (the
//!   teacher labels those; noisy-student style);
//! - `ensemble`: the last generation taught instead by an ensemble of every earlier generation;
//! - `distill`: the augmented corpus labelled by a BERT teacher fine-tuned from
//!   all-MiniLM-L6-v2 on the gold rows (`teacher` reports that teacher itself);
//! - `distill-wordnet`, `distill-replace`, `distill-mixed`: the same teacher labelling new
//!   inputs besides the augmented corpus, made from nothing but the labelled rows and
//!   WordNet (see [`crate::distill::transfer`]): WordNet's example sentences, the training
//!   rows with words replaced, or both;
//! - `full`: the simplest of the students above within one standard error of the best on the
//!   dev split (see [`crate::distill::choose`]);
//! - `semi` (with an unlabeled pool): the corpus plus the pool, labelled by the better of
//!   `full`'s student and the BERT teacher on the dev split.
//!
//! Each seed first holds out a dev split of the training rows ([`DevSplit`]): no student trains
//! on it, every student stops at the epoch that scores best on it, and every choice reads it;
//! test metrics are recorded and never read back.
//!
//! Every finished step is reused when the experiment is run again with the same settings.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::distill::calibrate;
use crate::distill::choose::{self, Choice};
use crate::distill::data;
use crate::distill::dev_split::{normalized, DevSplit};
use crate::distill::metrics::Metrics;
pub use crate::distill::results::{
    results_markdown, Curve, ExperimentConfig, ExperimentReport, ResultRow, SETTINGS,
};
use crate::distill::selfdistill::{self, Corpus, EnsembleMode, Generation, SelfDistillConfig};
use crate::distill::train::TrainConfig;
use crate::error::{Error, Result};

mod distill;

fn metrics_of(g: &Generation) -> Result<Metrics> {
    g.metrics
        .ok_or_else(|| Error::runtime("a generation was trained without test metrics"))
}

fn row(setting: &str, seed: usize, m: &Metrics) -> ResultRow {
    ResultRow {
        setting: setting.into(),
        seed,
        accuracy: m.accuracy,
        macro_f1: m.macro_f1,
        nll: m.nll,
        ece: m.ece,
    }
}

/// Adds a setting's result row and curve.
fn record(report: &mut ExperimentReport, setting: &str, seed: usize, g: &Generation) -> Result<()> {
    report.results.push(row(setting, seed, &metrics_of(g)?));
    report.curves.push(curve(setting, seed, g)?);
    Ok(())
}

fn curve(setting: &str, seed: usize, g: &Generation) -> Result<Curve> {
    Ok(Curve {
        setting: setting.into(),
        seed,
        generation: g.generation,
        metrics: metrics_of(g)?,
        losses: g.losses.clone(),
        soft_label_entropy: g.soft_label_entropy,
    })
}

/// Runs (or completes) the experiment under `out` and writes `results.json`, `results.md`,
/// `choices.json`, `curves.json` and `results.svg`.
pub fn run(cfg: &ExperimentConfig, out: &Path, progress: bool) -> Result<ExperimentReport> {
    validate(cfg)?;
    fs_err::create_dir_all(out)
        .map_err(|e| Error::user("cannot create the experiment folder").with_source(e))?;
    let config_path = out.join("experiment.json");
    if let Ok(old) = crate::io::manifest::read_json::<ExperimentConfig>(&config_path) {
        if old != *cfg {
            return Err(Error::user(format!(
                "`{}` holds an experiment with other settings",
                out.display()
            ))
            .with_hint("choose another `--out` folder, or delete this one to start over"));
        }
    }
    crate::io::manifest::write_json_atomic(&config_path, cfg)?;
    let t0 = Instant::now();
    let test = data::load(&cfg.test, "text", "label", None)?;
    let test_texts: HashSet<String> = test.examples.iter().map(|e| normalized(&e.text)).collect();
    let mut report = ExperimentReport {
        config: cfg.clone(),
        results: Vec::new(),
        curves: Vec::new(),
        choices: Vec::new(),
        seconds: 0.0,
    };
    for seed in 0..cfg.seeds {
        if progress {
            eprintln!("seed {}/{}", seed + 1, cfg.seeds);
        }
        let mut student = cfg.student.clone();
        student.seed = cfg.student.seed + 100 * seed as u64;
        let run = SeedRun {
            cfg,
            seed,
            student,
            dir: out.join(format!("seed-{seed}")),
            eval: (cfg.test.as_str(), &test),
            progress,
        };
        run.run(&test_texts, &mut report)?;
    }
    report.seconds = t0.elapsed().as_secs_f64();
    crate::io::manifest::write_json_atomic(&out.join("results.json"), &report.results)?;
    crate::io::manifest::write_json_atomic(&out.join("choices.json"), &report.choices)?;
    crate::io::manifest::write_json_atomic(&out.join("curves.json"), &report.curves)?;
    let md = results_markdown(&report);
    fs_err::write(out.join("results.md"), &md)
        .map_err(|e| Error::runtime("cannot write results.md").with_source(e))?;
    crate::distill::plot::experiment_svg(&report, &out.join("results.svg"))?;
    Ok(report)
}

fn validate(cfg: &ExperimentConfig) -> Result<()> {
    if cfg.seeds == 0 {
        return Err(Error::user("`--seeds` must be at least 1"));
    }
    if cfg.generations < 2 {
        return Err(Error::user(
            "`--generations` must be at least 2: the `ensemble` setting's teacher is an \
             ensemble of every earlier generation, so it needs two of them",
        ));
    }
    if cfg.copies == 0 {
        return Err(Error::user(
            "`--copies` must be at least 1: the `augmented` setting adds EDA copies",
        ));
    }
    cfg.student.validate()?;
    selfdistill::check_crossfit(cfg.crossfit)
}

/// One seed of the experiment: every setting, trained in `dir`.
struct SeedRun<'a> {
    cfg: &'a ExperimentConfig,
    seed: usize,
    student: TrainConfig,
    dir: PathBuf,
    eval: (&'a str, &'a data::Dataset),
    progress: bool,
}

impl SeedRun<'_> {
    fn sd(&self, copies: u32, generations: usize, unlabeled: Option<String>) -> SelfDistillConfig {
        SelfDistillConfig {
            generations,
            ensemble: EnsembleMode::Previous,
            alpha: self.cfg.alpha,
            copies,
            fresh_copies: self.cfg.fresh_copies,
            crossfit: self.cfg.crossfit,
            unlabeled,
            train: self.student.clone(),
        }
    }

    /// Trains one generation with the dev split choosing its epoch and the test set scoring it.
    fn train(
        &self,
        cfg: &TrainConfig,
        corpus: &Corpus,
        g: usize,
        teachers: Vec<PathBuf>,
        folds: usize,
        dir: &Path,
    ) -> Result<Generation> {
        selfdistill::train_generation(
            cfg,
            corpus,
            g,
            teachers,
            folds,
            dir,
            Some(self.eval),
            self.progress,
        )
    }

    fn run(&self, test_texts: &HashSet<String>, report: &mut ExperimentReport) -> Result<()> {
        let (cfg, seed) = (self.cfg, self.seed);
        // The dev split: original rows held out of every student's training.
        let plain = selfdistill::prepare(&self.sd(0, 0, None), &cfg.train, &self.dir.join("gold"))?;
        check_classes(&plain.gold.label_names, &self.eval.1.label_names, &cfg.test)?;
        let split = DevSplit::carve(
            &plain.gold.examples,
            cfg.dev_fraction,
            self.student.seed,
            test_texts,
        )?;
        crate::io::manifest::write_json_atomic(&self.dir.join("dev-split.json"), &split)?;
        let plain = plain.with_holdout(&split);
        // gold: the original rows only, for as many steps as the augmented settings take.
        let mut gold_student = self.student.clone();
        gold_student.epochs = self.student.epochs * (1 + cfg.copies as usize);
        let gold_dir = self.dir.join("gold/gen-0");
        let gold = self.train(&gold_student, &plain, 0, vec![], 0, &gold_dir)?;
        record(report, "gold", seed, &gold)?;
        let mut candidates = vec![("gold".to_string(), gold)];
        let new_inputs = self.new_inputs(&plain, test_texts)?;
        // Self-distillation learns the richest set of new inputs there is from its teachers.
        let taught_pool = new_inputs.last().map(|(_, pool)| pool.as_path());
        let corpus = self.self_distill(&split, taught_pool, report, &mut candidates)?;
        // distill: a stronger teacher of another architecture labels the transfer sets.
        let teacher = self.distill_teacher(&plain)?;
        if let Some(t) = &teacher {
            report
                .results
                .push(row("teacher", seed, &metrics_of(&t.generation)?));
            self.distill(t, &corpus, report, &mut candidates)?;
            for (name, pool) in &new_inputs {
                self.distill_on(t, name, pool, &split, report, &mut candidates)?;
            }
        }
        // full: the recommended recipe unless the dev split clearly prefers another student.
        for name in RECOMMENDED.iter().rev() {
            choose::put_first(&mut candidates, name);
        }
        let listed: Vec<_> = candidates
            .iter()
            .map(|(n, g)| (n.clone(), g.dev, g.epoch))
            .collect();
        let (i, seen) = choose::best(&listed)?;
        let (full_name, full) = candidates.swap_remove(i);
        let full_temperature = self.calibrated_full(&full, &plain, report)?;
        let semi_teacher = match &cfg.unlabeled {
            Some(pool) => Some(self.semi(pool, &split, (&full_name, &full), &teacher, report)?),
            None => None,
        };
        report.choices.push(Choice {
            seed,
            dev_rows: split.families.len(),
            full: full_name,
            full_temperature: Some(full_temperature),
            semi_teacher,
            teacher_temperature: teacher.as_ref().map(|t| t.temperature),
            teacher_learning_rate: teacher.as_ref().map(|t| t.learning_rate),
            candidates: seen,
        });
        Ok(())
    }

    /// `augmented`, the self-distillation generations and `ensemble`, each added to the
    /// candidates of `full`; returns the augmented corpus.
    /// Generations after 0 (and `ensemble`) also learn `new_inputs`, when given, from their
    /// teachers (noisy-student style: the teacher labels each input and its EDA copy).
    fn self_distill(
        &self,
        split: &DevSplit,
        new_inputs: Option<&Path>,
        report: &mut ExperimentReport,
        candidates: &mut Vec<(String, Generation)>,
    ) -> Result<Corpus> {
        let (cfg, seed) = (self.cfg, self.seed);
        let sd_cfg = self.sd(cfg.copies, cfg.generations, None);
        let sd_dir = self.dir.join("self-distill");
        let corpus = selfdistill::prepare(&sd_cfg, &cfg.train, &sd_dir)?.with_holdout(split);
        let pool = new_inputs.map(|p| p.display().to_string());
        let taught_cfg = self.sd(cfg.copies, cfg.generations, pool);
        let taught = match new_inputs {
            Some(_) => {
                Some(selfdistill::prepare(&taught_cfg, &cfg.train, &sd_dir)?.with_holdout(split))
            }
            None => None,
        };
        let taught = taught.as_ref().unwrap_or(&corpus);
        let corpus_of = |g: usize| -> Result<Option<Corpus>> {
            let of = if g == 0 { &sd_cfg } else { &taught_cfg };
            Ok(selfdistill::corpus_for(of, &cfg.train, &sd_dir, g)?.map(|c| c.with_holdout(split)))
        };
        let mut gens: Vec<Generation> = Vec::new();
        for g in 0..=cfg.generations {
            let teachers = selfdistill::teachers_for(EnsembleMode::Previous, &gens, 0);
            let fresh = corpus_of(g)?;
            // Every generation but the last teaches: cross-fitted when asked.
            let folds = if g < cfg.generations { cfg.crossfit } else { 0 };
            let dir = sd_dir.join(format!("gen-{g}"));
            let base = if g == 0 { &corpus } else { taught };
            let corpus = fresh.as_ref().unwrap_or(base);
            gens.push(self.train(&self.student, corpus, g, teachers, folds, &dir)?);
            let setting = if g == 0 { "augmented" } else { "self-distill" };
            report.curves.push(curve(setting, seed, &gens[g])?);
        }
        let augmented = row("augmented", seed, &metrics_of(&gens[0])?);
        report.results.push(augmented);
        let last = row("self-distill", seed, &metrics_of(&gens[cfg.generations])?);
        report.results.push(last);
        // ensemble: the last generation taught by every earlier one.
        let teachers = selfdistill::teachers_for(EnsembleMode::All, &gens[..cfg.generations], 0);
        let fresh = corpus_of(cfg.generations)?;
        let ens_dir = sd_dir.join(format!("gen-{}-ensemble", cfg.generations));
        let on = fresh.as_ref().unwrap_or(taught);
        let ens = self.train(&self.student, on, cfg.generations, teachers, 0, &ens_dir)?;
        record(report, "ensemble", seed, &ens)?;
        for (g, generation) in gens.into_iter().enumerate() {
            let name = match g {
                0 => "augmented".to_string(),
                g => format!("self-distill gen {g}"),
            };
            candidates.push((name, generation));
        }
        candidates.push(("ensemble".into(), ens));
        Ok(corpus)
    }

    /// `full`: the chosen candidate's student calibrated on the dev split (temperature scaling,
    /// saved in `DIR/full`) and scored on the test set; returns its temperature.
    fn calibrated_full(
        &self,
        full: &Generation,
        gold: &Corpus,
        report: &mut ExperimentReport,
    ) -> Result<f64> {
        let dev = gold
            .dev
            .as_ref()
            .ok_or_else(|| Error::runtime("the gold corpus has no dev split"))?;
        let device = self.student.placement.open()?.device;
        let model = crate::models::folder::Model::load(&full.model, &device)?;
        let dir = self.dir.join("full");
        let fitted = calibrate::calibrate_model(model, dev, &dir)?;
        let calibrated = crate::models::folder::Model::load(&dir, &device)?;
        let metrics = crate::distill::train::evaluate(&calibrated, self.eval.1)?;
        report.results.push(row("full", self.seed, &metrics));
        Ok(fitted.temperature)
    }
}

/// The candidates `full` lists first, in this order (those that ran), so that the first is
/// taken unless another candidate is clearly better on the dev split (see [`choose::best`]): a
/// stronger teacher labelling new inputs, which is what carries its knowledge
/// (docs/RESULTS.md; Tang et al. 2019 distil BERT into small students from scratch the same
/// way). The rest follow simplest first.
pub const RECOMMENDED: [&str; 3] = ["distill-mixed", "distill-wordnet", "distill-replace"];

/// EDA settings the EDA paper (Wei & Zou 2019, Table 3) recommends for a training size:
/// (α, copies per row).
pub fn eda_defaults(rows: usize) -> (f64, u32) {
    match rows {
        0..=500 => (0.05, 16),
        501..=2000 => (0.05, 8),
        _ => (0.1, 4),
    }
}

/// A `bert` student without `init` starts from all-MiniLM-L6-v2 when `make assets` has
/// fetched it; otherwise it stays a tiny BERT trained from scratch (and says so).
pub fn default_init(student: &mut TrainConfig, verbose: bool) {
    if !student.student.arch().starts_from_minilm() || student.init.is_some() {
        return;
    }
    match crate::assets::minilm_dir() {
        Some(dir) => {
            if verbose {
                eprintln!("bert student: starting from {}", dir.display());
            }
            student.init = Some(dir);
        }
        None => {
            if verbose {
                eprintln!(
                    "bert student: all-MiniLM-L6-v2 is not in the asset cache (`make assets`); \
                     training a tiny BERT from scratch"
                );
            }
        }
    }
}

fn check_classes(train: &[String], test: &[String], test_path: &str) -> Result<()> {
    // The test set may use fewer classes; it must not use others.
    if test.len() > train.len() || test.iter().zip(train).any(|(a, b)| a != b) {
        return Err(Error::user(format!(
            "`{test_path}` has classes {test:?}, the training rows {train:?}"
        ))
        .with_hint("train and test must share class names"));
    }
    Ok(())
}
