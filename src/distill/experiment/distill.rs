//! The `distill` settings of an experiment: the BERT teacher the dev split chooses and
//! calibrates, and the students it teaches (`distill`, `distill-wordnet`, `distill-replace`,
//! `distill-mixed`, `semi`), with the new inputs they learn from.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::{record, SeedRun};
use crate::distill::calibrate;
use crate::distill::dev_split::DevSplit;
use crate::distill::results::ExperimentReport;
use crate::distill::selfdistill::{self, Corpus, Generation};
use crate::distill::train::TrainConfig;
use crate::distill::transfer;
use crate::error::{Error, Result};

impl SeedRun<'_> {
    /// `distill`: the teacher, its logits calibrated on the dev split, labels the augmented
    /// corpus.
    pub(super) fn distill(
        &self,
        teacher: &Teacher,
        corpus: &Corpus,
        report: &mut ExperimentReport,
        candidates: &mut Vec<(String, Generation)>,
    ) -> Result<()> {
        let taught = vec![teacher.generation.model.clone()];
        let dir = self.dir.join("distill/student");
        let d = self.train(&teacher.student(&self.student), corpus, 1, taught, 0, &dir)?;
        record(report, "distill", self.seed, &d)?;
        candidates.push(("distill".into(), d));
        Ok(())
    }

    /// The new inputs, made without data beyond the labelled rows and none of them a test
    /// text, each written to `DIR/distill/<kind>/new-inputs.parquet`: `distill-wordnet` (a
    /// seeded sample of WordNet's example sentences), `distill-replace` (copies of the training
    /// rows with words replaced by WordNet words of the same part of speech) and
    /// `distill-mixed` (both), in that order; a kind switched off (0) is left out.
    pub(super) fn new_inputs(
        &self,
        plain: &Corpus,
        test_texts: &HashSet<String>,
    ) -> Result<Vec<(&'static str, PathBuf)>> {
        // The training rows only: the dev split's rows stay unseen.
        let texts: Vec<&str> = plain
            .gold
            .examples
            .iter()
            .map(|e| e.text.as_str())
            .collect();
        let (sentences, replaced) = transfer::new_inputs(
            &texts,
            self.cfg.wordnet_sentences,
            self.cfg.replacement_copies,
            self.student.seed,
            test_texts,
        )?;
        let both = !sentences.is_empty() && !replaced.is_empty();
        let mixed: Vec<String> = match both {
            true => sentences.iter().chain(&replaced).cloned().collect(),
            false => Vec::new(),
        };
        let mut pools = Vec::new();
        for (name, texts) in [
            ("distill-wordnet", sentences),
            ("distill-replace", replaced),
            ("distill-mixed", mixed),
        ] {
            if texts.is_empty() {
                continue;
            }
            let kind = &name["distill-".len()..];
            let pool = self
                .dir
                .join("distill")
                .join(kind)
                .join("new-inputs.parquet");
            transfer::write_text_pool(&pool, &texts)?;
            pools.push((name, pool));
        }
        Ok(pools)
    }

    /// One of `distill-wordnet`, `distill-replace` and `distill-mixed`: the teacher labels the
    /// augmented corpus plus the new inputs in `pool` (one EDA copy each).
    pub(super) fn distill_on(
        &self,
        teacher: &Teacher,
        name: &str,
        pool: &Path,
        split: &DevSplit,
        report: &mut ExperimentReport,
        candidates: &mut Vec<(String, Generation)>,
    ) -> Result<()> {
        let dir = pool.parent().unwrap_or(&self.dir).to_path_buf();
        let cfg = self.sd(self.cfg.copies, 0, Some(pool.display().to_string()));
        let corpus = selfdistill::prepare(&cfg, &self.cfg.train, &dir)?.with_holdout(split);
        let taught = vec![teacher.generation.model.clone()];
        let student = teacher.student(&self.student);
        let d = self.train(&student, &corpus, 1, taught, 0, &dir.join("student"))?;
        record(report, name, self.seed, &d)?;
        candidates.push((name.into(), d));
        Ok(())
    }

    /// `semi`: the augmented corpus plus the pool, taught by whichever of `full`'s student and
    /// the BERT teacher the dev split prefers; returns that teacher's name.
    pub(super) fn semi(
        &self,
        pool: &str,
        split: &DevSplit,
        (full_name, full): (&str, &Generation),
        teacher: &Option<Teacher>,
        report: &mut ExperimentReport,
    ) -> Result<String> {
        let (name, by, temperature) = match teacher {
            Some(t)
                if t.generation
                    .dev
                    .zip(full.dev)
                    .is_some_and(|(a, b)| a.better_than(&b)) =>
            {
                ("distill teacher", &t.generation, Some(t.temperature))
            }
            _ => (full_name, full, None),
        };
        let student = TrainConfig {
            teacher_temperature: temperature,
            ..self.student.clone()
        };
        let semi_cfg = self.sd(
            self.cfg.copies,
            self.cfg.generations,
            Some(pool.to_string()),
        );
        let semi_dir = self.dir.join("semi");
        let corpus =
            selfdistill::prepare(&semi_cfg, &self.cfg.train, &semi_dir)?.with_holdout(split);
        let dir = semi_dir.join("student");
        let s = self.train(&student, &corpus, 1, vec![by.model.clone()], 0, &dir)?;
        record(report, "semi", self.seed, &s)?;
        Ok(name.to_string())
    }

    /// Trains the `distill` setting's teacher, a BERT fine-tuned from `cfg.teacher_init` for
    /// `cfg.teacher_epochs` on the gold rows (its epoch chosen by the dev split), into
    /// `DIR/distill/teacher`, with the temperature that calibrates it on the dev split; `None`
    /// without a teacher folder.
    pub(super) fn distill_teacher(&self, gold: &Corpus) -> Result<Option<Teacher>> {
        let Some(init) = &self.cfg.teacher_init else {
            return Ok(None);
        };
        let mut best: Option<(Generation, f64)> = None;
        for lr in TEACHER_LEARNING_RATES {
            let teacher = TrainConfig {
                student: crate::models::architectures::StudentKind::find("bert")
                    .ok_or_else(|| Error::runtime("the `bert` architecture is not registered"))?,
                init: Some(init.clone()),
                epochs: self.cfg.teacher_epochs,
                batch_size: TEACHER_BATCH,
                learning_rate: Some(lr),
                seed: self.student.seed,
                keep_epochs: Some(1),
                placement: self.student.placement,
                ..TrainConfig::default()
            };
            let dir = self.dir.join(format!("distill/teacher-lr{lr:e}"));
            let g = self.train(&teacher, gold, 0, vec![], 0, &dir)?;
            let better = match (&best, g.dev) {
                (None, _) => true,
                (Some((b, _)), Some(d)) => b.dev.is_none_or(|b| d.better_than(&b)),
                (Some(_), None) => false,
            };
            if better {
                best = Some((g, lr));
            }
        }
        let (g, lr) = best.ok_or_else(|| Error::runtime("no teacher learning rate to try"))?;
        let dev = gold
            .dev
            .as_ref()
            .ok_or_else(|| Error::runtime("the teacher's corpus has no dev split"))?;
        let device = self.student.placement.open()?.device;
        let model = crate::models::folder::Model::load(&g.model, &device)?;
        let texts: Vec<&str> = dev.examples.iter().map(|e| e.text.as_str()).collect();
        let labels: Vec<usize> = dev.examples.iter().filter_map(|e| e.label).collect();
        let temperature = calibrate::fit_temperature(&model.logits(&texts)?, &labels);
        Ok(Some(Teacher {
            generation: g,
            learning_rate: lr,
            temperature,
        }))
    }
}

/// The learning rates the `distill` teacher is fine-tuned with; the dev split keeps one.
const TEACHER_LEARNING_RATES: [f64; 2] = [5e-5, 1e-4];

/// The `distill` teacher the dev split chose, and how.
pub(super) struct Teacher {
    pub(super) generation: Generation,
    pub(super) learning_rate: f64,
    /// Divides its logits to calibrate them on the dev split.
    pub(super) temperature: f64,
}

impl Teacher {
    /// `student`'s settings to learn from this teacher's calibrated logits.
    pub(super) fn student(&self, student: &TrainConfig) -> TrainConfig {
        TrainConfig {
            teacher_temperature: Some(self.temperature),
            ..student.clone()
        }
    }
}

/// Rows per step of the `distill` teacher: small data sets need more, smaller steps than the
/// student's default batch to fine-tune a pretrained BERT.
const TEACHER_BATCH: usize = 16;
