//! What `retort experiment` records (`experiment.json`, `results.json`, `curves.json`) and the
//! table it prints (`results.md`). The experiment ([`crate::distill::experiment`]) writes these
//! and the plot ([`crate::distill::plot`]) draws them; neither imports the other's types.

use serde::{Deserialize, Serialize};

use crate::distill::choose::Choice;
use crate::distill::metrics::Metrics;
use crate::distill::stats::{mean_interval, mean_std, wilson};
use crate::distill::train::TrainConfig;

/// The settings, in report order (`distill` and `teacher` need the MiniLM asset, `semi` an
/// unlabeled pool; a setting that did not run is left out of the table). `teacher` is the
/// `distill` teacher itself, for reference: not a student.
pub const SETTINGS: [&str; 11] = [
    "gold",
    "augmented",
    "self-distill",
    "ensemble",
    "distill",
    "distill-wordnet",
    "distill-replace",
    "distill-mixed",
    "full",
    "semi",
    "teacher",
];

/// Settings of an experiment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ExperimentConfig {
    /// Training rows.
    pub train: String,
    /// Test rows.
    pub test: String,
    /// Number of seeds.
    pub seeds: usize,
    /// EDA strength.
    pub alpha: f64,
    /// EDA copies per row.
    pub copies: u32,
    /// Self-distillation generations after generation 0 (at least 2).
    pub generations: usize,
    /// Each generation after 0 trains on fresh EDA copies its teacher has not seen.
    #[serde(default)]
    pub fresh_copies: bool,
    /// Folds of the cross-fitted teachers (0: each generation's own model teaches).
    #[serde(default)]
    pub crossfit: usize,
    /// The `distill` setting's teacher starts from this BERT folder (all-MiniLM-L6-v2 from
    /// `make assets` by default); unset: no `distill` setting.
    #[serde(default)]
    pub teacher_init: Option<std::path::PathBuf>,
    /// Epochs of the `distill` teacher over the gold rows.
    #[serde(default = "default_teacher_epochs")]
    pub teacher_epochs: usize,
    /// Fraction of each class of the training rows held out as the dev split.
    #[serde(default = "default_dev_fraction")]
    pub dev_fraction: f64,
    /// Unlabeled in-domain rows for the `semi` setting; unset: no `semi` setting.
    #[serde(default)]
    pub unlabeled: Option<String>,
    /// WordNet example sentences the `distill` teacher labels for the `distill-wordnet`
    /// setting (0: no such setting).
    #[serde(default = "default_wordnet_sentences")]
    pub wordnet_sentences: usize,
    /// Copies of each training row with words replaced by WordNet words of the same part of
    /// speech that the `distill` teacher labels for `distill-replace` (0: no such setting).
    #[serde(default = "default_replacement_copies")]
    pub replacement_copies: u32,
    /// Student training settings; seed `i` trains with `train.seed + 100·i`. `epochs` are
    /// passes over the augmented corpus; `gold` makes `epochs × (1 + copies)` passes over the
    /// original rows, so every setting takes the same number of optimizer steps.
    pub student: TrainConfig,
}

fn default_teacher_epochs() -> usize {
    6
}

fn default_wordnet_sentences() -> usize {
    crate::distill::transfer::DEFAULT_WORDNET_SENTENCES
}

fn default_replacement_copies() -> u32 {
    crate::distill::transfer::DEFAULT_REPLACEMENT_COPIES
}

fn default_dev_fraction() -> f64 {
    0.15
}

/// One line of `results.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResultRow {
    /// `gold`, `augmented`, `self-distill` or `ensemble`.
    pub setting: String,
    /// The seed index, from 0.
    pub seed: usize,
    /// Test accuracy.
    pub accuracy: f64,
    /// Test macro-F1.
    pub macro_f1: f64,
    /// Test negative log-likelihood.
    pub nll: f64,
    /// Test expected calibration error (15 bins).
    pub ece: f64,
}

/// Per-generation detail, for curves (`curves.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Curve {
    /// The setting.
    pub setting: String,
    /// The seed index.
    pub seed: usize,
    /// The generation.
    pub generation: usize,
    /// Test metrics of that generation (with the number of test rows).
    pub metrics: Metrics,
    /// Mean training loss per epoch.
    pub losses: Vec<f64>,
    /// Mean entropy (nats) of the soft labels the generation trained on.
    #[serde(default)]
    pub soft_label_entropy: Option<f64>,
}

/// Everything an experiment produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExperimentReport {
    /// The settings.
    pub config: ExperimentConfig,
    /// One row per (setting, seed).
    pub results: Vec<ResultRow>,
    /// One entry per (setting, seed, generation).
    pub curves: Vec<Curve>,
    /// What the dev split chose, per seed.
    #[serde(default)]
    pub choices: Vec<Choice>,
    /// Wall-clock seconds of the work done in this invocation.
    pub seconds: f64,
}

/// `results.md`: per setting, mean ± standard deviation over seeds and the paired change in
/// accuracy from `gold` with its 95% interval; then the same per generation.
pub fn results_markdown(r: &ExperimentReport) -> String {
    let mut s = header(&r.config);
    s.push_str(&settings_table(r));
    s.push_str(&footnote(r));
    s.push_str(&generations_table(r));
    s.push_str(&choices_table(r));
    s
}

/// Per seed: the dev split's size, each candidate's dev accuracy and chosen epoch, what `full`
/// recommends and who taught `semi`.
fn choices_table(r: &ExperimentReport) -> String {
    let Some(first) = r.choices.first() else {
        return String::new();
    };
    let names: Vec<&str> = first.candidates.iter().map(|c| c.name.as_str()).collect();
    let mut s = format!(
        "\n## What the dev split chose\n\nDev accuracy (%) of each candidate at the epoch the \
         dev split chose for it (in brackets), in the order `full` considers them; `full` is the first within one standard \
         error of the best, then calibrated on the dev split (its temperature). The teacher's \
         temperature calibrates the BERT teacher on the dev split. The test set steered \
         nothing.\n\n| seed | dev rows | {} | full | full's temperature | semi's teacher | \
         teacher's learning rate | teacher's temperature |\n|{}\n",
        names.join(" | "),
        "---|".repeat(names.len() + 7)
    );
    for c in &r.choices {
        let cells: Vec<String> = c
            .candidates
            .iter()
            .map(|x| format!("{:.1} ({})", x.dev_accuracy * 100.0, x.epoch))
            .collect();
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
            c.seed,
            c.dev_rows,
            cells.join(" | "),
            c.full,
            c.full_temperature
                .map_or("-".to_string(), |t| format!("{t:.2}")),
            c.semi_teacher.as_deref().unwrap_or("-"),
            c.teacher_learning_rate
                .map_or("-".to_string(), |t| format!("{t:e}")),
            c.teacher_temperature
                .map_or("-".to_string(), |t| format!("{t:.2}"))
        ));
    }
    s
}

fn header(c: &ExperimentConfig) -> String {
    format!(
        "# Experiment\n\ntrain `{}`, test `{}`, {} seed(s), student `{}`, EDA α = {} with {} \
         copies, {} self-distillation generation(s), {} epochs over the augmented rows (`gold`: \
         as many passes over the original rows as over each copy; settings with new inputs \
         pass over those too){}. {:.0}% of each class is held out \
         as a dev split: every student stops at the epoch that scores best on it, and `full` is \
         the first student within one standard error of the best there (the recommended \
         `distill-mixed`, `distill-wordnet` and `distill-replace` when there is a teacher, \
         then the simplest first).\n\n",
        c.train,
        c.test,
        c.seeds,
        serde_json::to_value(c.student.student)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default(),
        c.alpha,
        c.copies,
        c.generations,
        c.student.epochs,
        if c.fresh_copies {
            "; each later generation trains on fresh EDA copies"
        } else {
            ""
        },
        c.dev_fraction * 100.0
    )
}

/// `mean ± sd` of `v` times `scale`.
fn mean_sd_cell(v: &[f64], scale: f64) -> String {
    let (m, sd) = mean_std(v);
    format!("{:.2} ± {:.2}", m * scale, sd * scale)
}

/// The mean of paired differences (in points) with its 95% t interval, or the mean alone
/// with one seed.
fn difference_cell(diffs: &[f64]) -> String {
    match mean_interval(diffs) {
        Some((m, i)) => {
            let i = i.scaled(100.0);
            format!("{:+.2} [{:+.2}, {:+.2}]", m * 100.0, i.lo, i.hi)
        }
        None => match diffs.first() {
            Some(d) => format!("{:+.2} (one seed: no interval)", d * 100.0),
            None => "-".into(),
        },
    }
}

/// Accuracy of `setting` minus accuracy of `gold`, seed by seed (seeds without both skipped).
fn paired_differences(r: &ExperimentReport, accuracy: impl Fn(usize) -> Option<f64>) -> Vec<f64> {
    (0..r.config.seeds)
        .filter_map(|seed| {
            let gold = r
                .results
                .iter()
                .find(|x| x.setting == "gold" && x.seed == seed)?;
            Some(accuracy(seed)? - gold.accuracy)
        })
        .collect()
}

fn settings_table(r: &ExperimentReport) -> String {
    let mut s = String::from(
        "| setting | accuracy | Δ accuracy vs gold [95% CI] | macro-F1 | NLL | ECE |\n\
         |---|---|---|---|---|---|\n",
    );
    for setting in SETTINGS {
        let rows: Vec<&ResultRow> = r.results.iter().filter(|x| x.setting == setting).collect();
        if rows.is_empty() {
            continue;
        }
        let pick = |f: fn(&ResultRow) -> f64| rows.iter().map(|x| f(x)).collect::<Vec<_>>();
        let delta = if setting == "gold" {
            "-".to_string()
        } else {
            difference_cell(&paired_differences(r, |seed| {
                rows.iter().find(|x| x.seed == seed).map(|x| x.accuracy)
            }))
        };
        s.push_str(&format!(
            "| {setting} | {} | {delta} | {} | {} | {} |\n",
            mean_sd_cell(&pick(|x| x.accuracy), 100.0),
            mean_sd_cell(&pick(|x| x.macro_f1), 100.0),
            mean_sd_cell(&pick(|x| x.nll), 1.0),
            mean_sd_cell(&pick(|x| x.ece), 100.0),
        ));
    }
    s
}

/// How to read the numbers: units, what the intervals are, and how coarse the test set is.
fn footnote(r: &ExperimentReport) -> String {
    let seeds = r.config.seeds;
    let mut s = format!(
        "\nAccuracy, macro-F1 and ECE in percent; mean ± sample standard deviation over {seeds} \
         seed(s). Δ accuracy vs gold: the mean over seeds of (setting − gold) on the same seed, \
         in points, with its 95% t interval ({} degree(s) of freedom); an interval that \
         contains 0 does not tell the setting apart from `gold`.\n",
        seeds.saturating_sub(1)
    );
    let rows = r.curves.first().map_or(0, |c| c.metrics.rows);
    let (gold, _) = mean_std(
        &r.results
            .iter()
            .filter(|x| x.setting == "gold")
            .map(|x| x.accuracy)
            .collect::<Vec<_>>(),
    );
    if let Some(i) = wilson(gold, rows) {
        s.push_str(&format!(
            "The test set has {rows} rows: one row is {:.2} points, and a single run's accuracy \
             of {:.2}% has a 95% Wilson interval of [{:.2}, {:.2}].\n",
            100.0 / rows as f64,
            gold * 100.0,
            i.lo * 100.0,
            i.hi * 100.0
        ));
    }
    s
}

fn generations_table(r: &ExperimentReport) -> String {
    let mut s = String::from(
        "\n## By generation\n\n\
         | generation | teacher | accuracy | Δ accuracy vs gold [95% CI] | ECE | last epoch loss | soft-label entropy |\n\
         |---|---|---|---|---|---|---|\n",
    );
    let mut keys: Vec<(usize, &str)> = r
        .curves
        .iter()
        .filter(|c| c.setting != "gold")
        .map(|c| (c.generation, c.setting.as_str()))
        .collect();
    keys.sort();
    keys.dedup();
    for (g, setting) in keys {
        let of: Vec<&Curve> = r
            .curves
            .iter()
            .filter(|c| c.generation == g && c.setting == setting)
            .collect();
        let stat = |f: &dyn Fn(&Curve) -> f64, scale: f64| {
            mean_sd_cell(&of.iter().map(|c| f(c)).collect::<Vec<_>>(), scale)
        };
        let delta = difference_cell(&paired_differences(r, |seed| {
            of.iter()
                .find(|c| c.seed == seed)
                .map(|c| c.metrics.accuracy)
        }));
        let crossfit = if r.config.crossfit >= 2 {
            " (cross-fitted)"
        } else {
            ""
        };
        let teacher = match (g, setting) {
            (0, _) => "gold labels (augmented)".to_string(),
            (_, "ensemble") => format!("ensemble of every earlier generation{crossfit}"),
            (_, "distill") => "BERT fine-tuned on the gold rows".to_string(),
            (_, "distill-wordnet") => {
                "BERT fine-tuned on the gold rows, + WordNet example sentences".to_string()
            }
            (_, "distill-replace") => {
                "BERT fine-tuned on the gold rows, + rows with words replaced".to_string()
            }
            (_, "distill-mixed") => {
                "BERT fine-tuned on the gold rows, + both kinds of new inputs".to_string()
            }
            (_, "semi") => {
                "`full`'s student or the BERT teacher (the dev split's choice), + unlabeled pool"
                    .to_string()
            }
            _ => format!("previous generation{crossfit}"),
        };
        let entropy: Vec<f64> = of.iter().filter_map(|c| c.soft_label_entropy).collect();
        let entropy = if entropy.is_empty() {
            "-".to_string()
        } else {
            mean_sd_cell(&entropy, 1.0)
        };
        s.push_str(&format!(
            "| {g} | {teacher} | {} | {delta} | {} | {} | {entropy} |\n",
            stat(&|c| c.metrics.accuracy, 100.0),
            stat(&|c| c.metrics.ece, 100.0),
            stat(&|c| c.losses.last().copied().unwrap_or(f64::NAN), 1.0),
        ));
    }
    s.push_str(
        "\nSoft-label entropy: the mean entropy (nats) of the teacher's distribution over the rows \
         a generation trained on; 0 is one-hot (the gold label again), ln(classes) uniform.\n",
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(gold: &[f64], augmented: &[f64]) -> ExperimentReport {
        let mut results = Vec::new();
        for (setting, accs) in [("gold", gold), ("augmented", augmented)] {
            for (seed, &accuracy) in accs.iter().enumerate() {
                results.push(ResultRow {
                    setting: setting.into(),
                    seed,
                    accuracy,
                    macro_f1: accuracy,
                    nll: 0.5,
                    ece: 0.05,
                });
            }
        }
        let curves = results
            .iter()
            .map(|x| Curve {
                setting: x.setting.clone(),
                seed: x.seed,
                generation: 0,
                metrics: Metrics {
                    rows: 60,
                    accuracy: x.accuracy,
                    macro_f1: x.macro_f1,
                    nll: x.nll,
                    ece: x.ece,
                },
                losses: vec![0.4],
                soft_label_entropy: None,
            })
            .collect();
        ExperimentReport {
            config: ExperimentConfig {
                train: "train.parquet".into(),
                test: "test.parquet".into(),
                seeds: gold.len(),
                alpha: 0.1,
                copies: 4,
                generations: 2,
                fresh_copies: false,
                crossfit: 0,
                teacher_init: None,
                teacher_epochs: 4,
                dev_fraction: 0.15,
                unlabeled: None,
                wordnet_sentences: 0,
                replacement_copies: 0,
                student: TrainConfig::default(),
            },
            results,
            curves,
            choices: Vec::new(),
            seconds: 1.0,
        }
    }

    #[test]
    fn differences_from_gold_are_paired_by_seed() {
        // Seed effects are large, but augmented is 2 points better on every seed.
        let md = results_markdown(&report(&[0.70, 0.80, 0.90], &[0.72, 0.82, 0.92]));
        assert!(md.contains("| gold | 80.00 ± 10.00 | - |"), "{md}");
        assert!(
            md.contains("| augmented | 82.00 ± 10.00 | +2.00 [+2.00, +2.00] |"),
            "{md}"
        );
        assert!(md.contains("2 degree(s) of freedom"), "{md}");
        assert!(
            md.contains("The test set has 60 rows: one row is 1.67 points"),
            "{md}"
        );
    }

    #[test]
    fn one_seed_has_no_interval() {
        let md = results_markdown(&report(&[0.8], &[0.75]));
        assert!(md.contains("-5.00 (one seed: no interval)"), "{md}");
    }
}
