//! `retort experiment`: the standard comparison of four settings on one train/test pair,
//! repeated over seeds.
//!
//! - `gold`: a student trained on the gold labels of the original rows;
//! - `augmented`: + EDA copies (generation 0 of self-distillation);
//! - `self-distill`: + `generations` rounds of born-again self-distillation, each generation
//!   taught by the previous one;
//! - `ensemble`: the last generation taught instead by an ensemble of every earlier generation.
//!
//! Every finished step is reused when the experiment is run again with the same settings.

use std::path::Path;
use std::time::Instant;

use crate::distill::data;
use crate::distill::metrics::Metrics;
pub use crate::distill::results::{
    results_markdown, Curve, ExperimentConfig, ExperimentReport, ResultRow, SETTINGS,
};
use crate::distill::selfdistill::{self, EnsembleMode, Generation, SelfDistillConfig};
use crate::distill::train::TrainConfig;
use crate::error::{Error, Result};

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
/// `curves.json` and `results.svg`.
pub fn run(cfg: &ExperimentConfig, out: &Path, progress: bool) -> Result<ExperimentReport> {
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
    selfdistill::check_crossfit(cfg.crossfit)?;
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
    let mut results = Vec::new();
    let mut curves = Vec::new();
    for seed in 0..cfg.seeds {
        let dir = out.join(format!("seed-{seed}"));
        let mut student = cfg.student.clone();
        student.seed = cfg.student.seed + 100 * seed as u64;
        if progress {
            eprintln!("seed {}/{}", seed + 1, cfg.seeds);
        }
        let sd = |copies: u32, generations: usize| SelfDistillConfig {
            generations,
            ensemble: EnsembleMode::Previous,
            alpha: cfg.alpha,
            copies,
            fresh_copies: cfg.fresh_copies,
            crossfit: cfg.crossfit,
            unlabeled: None,
            train: student.clone(),
        };
        // gold: the original rows only.
        let plain = selfdistill::prepare(&sd(0, 0), &cfg.train, &dir.join("gold"))?;
        check_classes(&plain.gold.label_names, &test.label_names, &cfg.test)?;
        let eval = Some((cfg.test.as_str(), &test));
        let mut gold_student = student.clone();
        gold_student.epochs = student.epochs * (1 + cfg.copies as usize);
        let gold = selfdistill::train_generation(
            &gold_student,
            &plain,
            0,
            vec![],
            0,
            &dir.join("gold/gen-0"),
            eval,
            progress,
        )?;
        results.push(row("gold", seed, &metrics_of(&gold)?));
        curves.push(curve("gold", seed, &gold)?);
        // augmented, then generations taught by the previous one.
        let sd_cfg = sd(cfg.copies, cfg.generations);
        let sd_dir = dir.join("self-distill");
        let corpus = selfdistill::prepare(&sd_cfg, &cfg.train, &sd_dir)?;
        let mut gens: Vec<Generation> = Vec::new();
        for g in 0..=cfg.generations {
            let teachers = selfdistill::teachers_for(EnsembleMode::Previous, &gens, 0);
            let fresh = selfdistill::corpus_for(&sd_cfg, &cfg.train, &sd_dir, g)?;
            // Every generation but the last teaches: cross-fitted when asked.
            let folds = if g < cfg.generations { cfg.crossfit } else { 0 };
            gens.push(selfdistill::train_generation(
                &student,
                fresh.as_ref().unwrap_or(&corpus),
                g,
                teachers,
                folds,
                &sd_dir.join(format!("gen-{g}")),
                eval,
                progress,
            )?);
        }
        results.push(row("augmented", seed, &metrics_of(&gens[0])?));
        results.push(row(
            "self-distill",
            seed,
            &metrics_of(&gens[cfg.generations])?,
        ));
        for g in &gens {
            curves.push(curve(
                if g.generation == 0 {
                    "augmented"
                } else {
                    "self-distill"
                },
                seed,
                g,
            )?);
        }
        // ensemble: the last generation taught by every earlier one.
        let earlier = &gens[..cfg.generations];
        let teachers = selfdistill::teachers_for(EnsembleMode::All, earlier, 0);
        let fresh = selfdistill::corpus_for(&sd_cfg, &cfg.train, &sd_dir, cfg.generations)?;
        let ens = selfdistill::train_generation(
            &student,
            fresh.as_ref().unwrap_or(&corpus),
            cfg.generations,
            teachers,
            0,
            &sd_dir.join(format!("gen-{}-ensemble", cfg.generations)),
            eval,
            progress,
        )?;
        results.push(row("ensemble", seed, &metrics_of(&ens)?));
        curves.push(curve("ensemble", seed, &ens)?);
        // distill: a stronger teacher of another architecture labels the augmented corpus.
        let strong = distill_teacher(cfg, &student, &plain, &dir, progress)?;
        if let Some(teacher) = &strong {
            let d = selfdistill::train_generation(
                &student,
                &corpus,
                1,
                vec![teacher.clone()],
                0,
                &dir.join("distill/student"),
                eval,
                progress,
            )?;
            results.push(row("distill", seed, &metrics_of(&d)?));
            curves.push(curve("distill", seed, &d)?);
        }
        // semi: a student trained on the corpus and the unlabeled pool, both labelled by the
        // strongest teacher there is: the `distill` teacher, else generation 0.
        if cfg.unlabeled.is_some() {
            let semi_cfg = SelfDistillConfig {
                unlabeled: cfg.unlabeled.clone(),
                ..sd_cfg.clone()
            };
            let semi_corpus = selfdistill::prepare(&semi_cfg, &cfg.train, &sd_dir)?;
            let teachers = match &strong {
                Some(t) => vec![t.clone()],
                None => selfdistill::teachers_for(EnsembleMode::Previous, &gens[..1], 0),
            };
            let s = selfdistill::train_generation(
                &student,
                &semi_corpus,
                1,
                teachers,
                0,
                &sd_dir.join("gen-1-semi"),
                eval,
                progress,
            )?;
            results.push(row("semi", seed, &metrics_of(&s)?));
            curves.push(curve("semi", seed, &s)?);
        }
    }
    let report = ExperimentReport {
        config: cfg.clone(),
        results,
        curves,
        seconds: t0.elapsed().as_secs_f64(),
    };
    crate::io::manifest::write_json_atomic(&out.join("results.json"), &report.results)?;
    crate::io::manifest::write_json_atomic(&out.join("curves.json"), &report.curves)?;
    let md = results_markdown(&report);
    fs_err::write(out.join("results.md"), &md)
        .map_err(|e| Error::runtime("cannot write results.md").with_source(e))?;
    crate::distill::plot::experiment_svg(&report, &out.join("results.svg"))?;
    Ok(report)
}

/// Trains the `distill` setting's teacher, a BERT fine-tuned from `cfg.teacher_init` for
/// `cfg.teacher_epochs` on the gold rows, into `DIR/distill/teacher`; `None` without a teacher
/// folder.
fn distill_teacher(
    cfg: &ExperimentConfig,
    student: &TrainConfig,
    gold: &selfdistill::Corpus,
    dir: &Path,
    progress: bool,
) -> Result<Option<std::path::PathBuf>> {
    let Some(init) = &cfg.teacher_init else {
        return Ok(None);
    };
    let teacher = TrainConfig {
        student: crate::models::architectures::StudentKind::find("bert")
            .ok_or_else(|| Error::runtime("the `bert` architecture is not registered"))?,
        init: Some(init.clone()),
        epochs: cfg.teacher_epochs,
        seed: student.seed,
        keep_epochs: Some(1),
        placement: student.placement,
        ..TrainConfig::default()
    };
    let g = selfdistill::train_generation(
        &teacher,
        gold,
        0,
        vec![],
        0,
        &dir.join("distill/teacher"),
        None,
        progress,
    )?;
    Ok(Some(g.model))
}

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
