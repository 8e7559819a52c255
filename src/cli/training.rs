//! Commands that train or evaluate students: `train`, `eval`, `selfdistill` and `experiment`.

use std::path::{Path, PathBuf};

use candle_core::DType;
use clap::Args;

use retort::distill::{self, train::TrainConfig};
use retort::error::{io_error, Error, Result};
use retort::models::device::dtype_name;
use retort::pipeline::spec;
use retort::stage::kind;

use super::args::{parse_key_value, ModelArgs};
use super::docs::keys_text;

/// The arguments of `retort train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Training rows: a Parquet file, folder or glob (repeat to combine several).
    #[arg(long, required_unless_present = "help_keys")]
    data: Vec<String>,
    /// Output folder: `epoch-NN/` checkpoints, `final/`, `train_log.json`.
    #[arg(long, required_unless_present = "help_keys")]
    out: Option<PathBuf>,
    /// Replace `final/` and `epoch-NN/` folders under `--out` that retort did not write
    /// (without it they are refused; checkpoints retort wrote are always replaced).
    #[arg(long)]
    force: bool,
    /// Labelled rows to evaluate after every epoch; the best epoch on them is also saved as
    /// `OUT/best` (choose them from the training side, not the test set).
    #[arg(long)]
    eval: Option<String>,
    /// A training setting: `--set epochs=3`, `--set student=bert`, `--set mixup=0.4`
    /// (`retort train --help-keys` lists them).
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    sets: Vec<(String, String)>,
    /// List the training settings and exit.
    #[arg(long)]
    help_keys: bool,
    #[command(flatten)]
    models: ModelArgs,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

/// The arguments of `retort selfdistill`.
#[derive(Debug, Args)]
pub struct SelfdistillArgs {
    /// Labelled training rows: a Parquet file, folder or glob.
    #[arg(long)]
    data: String,
    /// Output folder: `augmented/`, `gen-K/` (soft labels and student), `generations.json`.
    #[arg(long)]
    out: PathBuf,
    /// Labelled rows to evaluate every generation on.
    #[arg(long)]
    eval: Option<String>,
    /// Generations after generation 0.
    #[arg(long, default_value_t = 2)]
    generations: usize,
    /// Teacher of each generation: `previous`, `all` (every earlier generation) or
    /// `last:K` (the last K epoch checkpoints of the previous generation).
    #[arg(long, default_value = "previous", value_parser = parse_ensemble)]
    ensemble: distill::selfdistill::EnsembleMode,
    /// EDA strength.
    #[arg(long, default_value_t = 0.1)]
    alpha: f64,
    /// EDA copies per row (0: no augmentation).
    #[arg(long, default_value_t = 4)]
    copies: u32,
    /// Each generation after 0 trains on fresh EDA copies that its teacher has not seen.
    #[arg(long)]
    fresh_copies: bool,
    /// Cross-fit every teaching generation with K folds (5 is usual), so that no row is
    /// labelled by a model that trained on it. Default 0: a generation's own model teaches
    /// (cross-fitted CNN teachers lowered accuracy in docs/RESULTS.md).
    #[arg(long, value_name = "K", default_value_t = 0)]
    crossfit: usize,
    /// Unlabeled in-domain rows (labels ignored), each with one EDA copy, labelled
    /// by each generation's teacher and trained on from generation 1.
    #[arg(long, value_name = "FILE")]
    unlabeled: Option<String>,
    /// A training setting, as for `retort train`.
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    sets: Vec<(String, String)>,
    #[command(flatten)]
    models: ModelArgs,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

/// The arguments of `retort experiment`.
#[derive(Debug, Args)]
pub struct ExperimentArgs {
    /// Labelled training rows: a Parquet file, folder or glob.
    #[arg(long)]
    train: String,
    /// Labelled test rows.
    #[arg(long)]
    test: String,
    /// Output folder; rerunning with the same settings reuses every finished step.
    #[arg(long)]
    out: PathBuf,
    /// Student architecture: `cnn` (fast) or `bert` (all-MiniLM-L6-v2 from `make assets`
    /// when present, else a tiny BERT from scratch).
    #[arg(long, default_value = "cnn")]
    student: String,
    /// Seeds to repeat every setting with.
    #[arg(long, default_value_t = 3)]
    seeds: usize,
    /// EDA strength (default: by training size, as the EDA paper recommends).
    #[arg(long)]
    alpha: Option<f64>,
    /// EDA copies per row (default: by training size, as the EDA paper recommends).
    #[arg(long)]
    copies: Option<u32>,
    /// Self-distillation generations after generation 0.
    #[arg(long, default_value_t = 2)]
    generations: usize,
    /// Each generation after 0 trains on fresh EDA copies that its teacher has not seen.
    #[arg(long)]
    fresh_copies: bool,
    /// Cross-fit every teaching generation with K folds (5 is usual), so that no row is
    /// labelled by a model that trained on it. Default 0: a generation's own model teaches
    /// (cross-fitted CNN teachers lowered accuracy in docs/RESULTS.md).
    #[arg(long, value_name = "K", default_value_t = 0)]
    crossfit: usize,
    /// The `distill` setting's teacher: a BERT folder fine-tuned on the gold rows, which then
    /// labels the augmented corpus for the student (default: all-MiniLM-L6-v2 from `make
    /// assets`; `none`: no `distill` setting).
    #[arg(long, value_name = "DIR")]
    teacher: Option<String>,
    /// Epochs of the `distill` teacher over the gold rows (the dev split chooses which one
    /// teaches).
    #[arg(long, default_value_t = 6)]
    teacher_epochs: usize,
    /// Fraction of each class of the training rows held out as the dev split, which chooses
    /// every student's epoch and what `full` recommends.
    #[arg(long, value_name = "F", default_value_t = 0.15)]
    dev_fraction: f64,
    /// Unlabeled in-domain rows (labels ignored) for the `semi` setting.
    #[arg(long, value_name = "FILE")]
    unlabeled: Option<String>,
    /// WordNet example sentences that the `distill` teacher labels, besides the augmented
    /// corpus, for the `distill-wordnet` setting (0: no such setting).
    #[arg(long, value_name = "N", default_value_t = retort::distill::transfer::DEFAULT_WORDNET_SENTENCES)]
    wordnet_sentences: usize,
    /// Copies of each training row, with words replaced by WordNet words of the same part of
    /// speech, that the `distill` teacher labels for the `distill-replace` setting (0: no such
    /// setting). With WordNet sentences too, `distill-mixed` has both. The self-distillation
    /// generations after 0 learn the richest of these sets from their teachers.
    #[arg(long, value_name = "N", default_value_t = retort::distill::transfer::DEFAULT_REPLACEMENT_COPIES)]
    replacement_copies: u32,
    /// Passes over the augmented rows; `gold` trains for the same number of steps
    /// (`epochs × (1 + copies)` passes over the original rows).
    #[arg(long, default_value_t = 2)]
    epochs: usize,
    /// A training setting, as for `retort train`.
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    sets: Vec<(String, String)>,
    #[command(flatten)]
    models: ModelArgs,
    /// No progress output.
    #[arg(long, short)]
    quiet: bool,
}

/// The arguments of `retort eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The model folder (a checkpoint written by `retort train`).
    model: PathBuf,
    /// Labelled rows: a Parquet file, folder or glob.
    #[arg(long)]
    data: String,
    /// Where to write `metrics.json` (default: print only).
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    models: ModelArgs,
}

/// The arguments of `retort calibrate`.
#[derive(Args, Debug)]
pub struct CalibrateArgs {
    /// The model folder (a checkpoint written by `retort train`).
    model: PathBuf,
    /// Held-out labelled rows the model did not train on (a dev split): a Parquet file,
    /// folder or glob.
    #[arg(long)]
    data: String,
    /// Where to save the calibrated model (default: the model folder itself, whose
    /// `retort.json` gains the temperature).
    #[arg(long)]
    out: Option<PathBuf>,
}

fn parse_ensemble(s: &str) -> std::result::Result<distill::selfdistill::EnsembleMode, String> {
    s.parse()
}

/// Runs `retort train`: trains a student and prints its epochs.
pub fn train(args: &TrainArgs) -> Result<i32> {
    if args.help_keys {
        print!("{}", keys_text(&kind::keys_of::<TrainConfig>()));
        return Ok(0);
    }
    let out = args
        .out
        .as_deref()
        .ok_or_else(|| Error::user("`retort train` needs `--out FOLDER`"))?;
    let mut cfg = train_config(&args.sets)?;
    cfg.placement = args.models.placement()?;
    let compute = cfg.placement.open()?;
    compute.check_runs_in(DType::F32, "`train` (it trains in f32)")?;
    clear_foreign_checkpoints(out, cfg.epochs, args.force)?;
    let device = compute.device;
    let train_data = load_many(&args.data)?;
    let eval_data = args
        .eval
        .as_deref()
        .map(|p| distill::data::load(p, "text", "label", Some(&train_data.label_names)))
        .transpose()?;
    let mut student = distill::train::new_student(&cfg, &train_data, &device)?;
    let report = distill::train::train(
        &cfg,
        &mut student,
        &train_data,
        eval_data.as_ref(),
        out,
        !args.quiet,
    )?;
    println!("{}", train_summary(&report));
    Ok(0)
}

/// Checks, before any training, that the checkpoint folders `retort train` writes under `out`
/// (`final`, `epoch-01` .. `epoch-NN`) replace nothing retort did not write; with `force`,
/// removes those instead.
fn clear_foreign_checkpoints(out: &Path, epochs: usize, force: bool) -> Result<()> {
    let names = (1..=epochs)
        .map(|e| format!("epoch-{e:02}"))
        .chain(["final".to_string()]);
    for folder in names.map(|n| out.join(n)) {
        let Err(e) = retort::models::folder::check_replaceable(&folder) else {
            continue;
        };
        if !force {
            return Err(e.with_hint(
                "move it away, choose another `--out`, or pass `--force` to replace it",
            ));
        }
        let removed = if folder.is_dir() {
            fs_err::remove_dir_all(&folder)
        } else {
            fs_err::remove_file(&folder)
        };
        removed.map_err(|e| io_error(format!("cannot remove `{}`", folder.display()), e))?;
    }
    Ok(())
}

/// Refuses an explicit `--precision` the student architecture cannot run its teachers in,
/// before any generation is trained (students train in f32; their soft labels are inferred
/// at the asked precision where the architecture can).
fn check_student_precision(train: &TrainConfig) -> Result<()> {
    let compute = train.placement.open()?;
    let arch = train.student.arch();
    let runs_in = arch.inference_dtype(compute.dtype);
    compute.check_runs_in(
        runs_in,
        &format!(
            "a `{}` student (it runs in {})",
            arch.name(),
            dtype_name(runs_in)
        ),
    )
}

/// Runs `retort selfdistill`: trains every generation and prints their table.
pub fn selfdistill(args: SelfdistillArgs) -> Result<i32> {
    let mut train = train_config(&args.sets)?;
    train.placement = args.models.placement()?;
    check_student_precision(&train)?;
    let cfg = distill::selfdistill::SelfDistillConfig {
        generations: args.generations,
        ensemble: args.ensemble,
        alpha: args.alpha,
        copies: args.copies,
        fresh_copies: args.fresh_copies,
        crossfit: args.crossfit,
        unlabeled: args.unlabeled,
        train,
    };
    let gens = distill::selfdistill::run(
        &cfg,
        &args.data,
        args.eval.as_deref(),
        &args.out,
        !args.quiet,
    )?;
    print!("{}", distill::selfdistill::table_text(&gens));
    Ok(0)
}

/// Runs `retort experiment`: every setting over every seed, then the results table.
pub fn experiment(args: ExperimentArgs) -> Result<i32> {
    let quiet = args.quiet;
    let out = args.out.clone();
    let (cfg, rows) = experiment_config(args)?;
    if !quiet {
        eprintln!(
            "{rows} training rows: EDA α = {} with {} copies, {} generation(s), {} seed(s)",
            cfg.alpha, cfg.copies, cfg.generations, cfg.seeds
        );
    }
    let report = distill::experiment::run(&cfg, &out, !quiet)?;
    print!("{}", distill::experiment::results_markdown(&report));
    println!(
        "wrote {0}/results.json, {0}/results.md, {0}/curves.json, {0}/results.svg",
        out.display()
    );
    Ok(0)
}

/// The experiment's settings (EDA defaults chosen by training size) and the training rows.
fn experiment_config(
    args: ExperimentArgs,
) -> Result<(distill::experiment::ExperimentConfig, usize)> {
    let mut sets = args.sets;
    sets.insert(0, ("student".into(), args.student));
    sets.insert(1, ("epochs".into(), args.epochs.to_string()));
    sets.insert(2, ("keep_epochs".into(), "1".into()));
    let mut student = train_config(&sets)?;
    student.placement = args.models.placement()?;
    check_student_precision(&student)?;
    distill::experiment::default_init(&mut student, !args.quiet);
    let rows = distill::data::load(&args.train, "text", "label", None)?
        .examples
        .len();
    let (auto_alpha, auto_copies) = distill::experiment::eda_defaults(rows);
    let teacher_init = match args.teacher.as_deref() {
        Some("none") => None,
        Some(dir) => Some(PathBuf::from(dir)),
        None => {
            let dir = retort::assets::minilm_dir();
            if dir.is_none() && !args.quiet {
                eprintln!(
                    "no `distill` setting: all-MiniLM-L6-v2 is not in the asset cache (`make assets`)"
                );
            }
            dir
        }
    };
    let cfg = distill::experiment::ExperimentConfig {
        train: args.train,
        test: args.test,
        seeds: args.seeds,
        alpha: args.alpha.unwrap_or(auto_alpha),
        copies: args.copies.unwrap_or(auto_copies),
        generations: args.generations,
        fresh_copies: args.fresh_copies,
        crossfit: args.crossfit,
        teacher_init,
        teacher_epochs: args.teacher_epochs,
        dev_fraction: args.dev_fraction,
        unlabeled: args.unlabeled,
        wordnet_sentences: args.wordnet_sentences,
        replacement_copies: args.replacement_copies,
        student,
    };
    Ok((cfg, rows))
}

/// Runs `retort eval MODEL`: prints the metrics as JSON and optionally writes them. The model
/// runs at the `--precision` asked (f32: the training network; another dtype: its inference
/// copy), and an explicit precision it cannot run in is refused.
/// Runs `retort calibrate MODEL`: fits the temperature on `--data`, saves it with the model
/// and prints the temperature and the metrics before and after as JSON.
pub fn calibrate(args: &CalibrateArgs) -> Result<i32> {
    let device = retort::models::device::Placement::default().open()?.device;
    let m = retort::models::folder::Model::load(&args.model, &device)?;
    let ds = distill::data::load(&args.data, "text", "label", Some(&m.info.label_names))?;
    let out = args.out.as_ref().unwrap_or(&args.model);
    let c = distill::calibrate::calibrate_model(m, &ds, out)?;
    let report = serde_json::json!({
        "temperature": c.temperature,
        "before": c.before,
        "after": c.after,
        "model": out,
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&report).unwrap_or_default()
    );
    Ok(0)
}

pub fn eval(args: &EvalArgs) -> Result<i32> {
    let compute = args.models.placement()?.open()?;
    let m = retort::models::folder::Model::load(&args.model, &compute.device)?;
    let ds = distill::data::load(&args.data, "text", "label", Some(&m.info.label_names))?;
    let metrics = if compute.dtype == DType::F32 {
        distill::train::evaluate(&m, &ds)?
    } else {
        distill::train::evaluate_on(&m, &ds, &compute)?
    };
    if let Some(out) = &args.out {
        retort::io::manifest::write_json_atomic(out, &metrics)?;
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&metrics).unwrap_or_default()
    );
    Ok(0)
}

/// Training settings from `--set KEY=VALUE` flags.
fn train_config(sets: &[(String, String)]) -> Result<TrainConfig> {
    let mut table = toml::Table::new();
    for (k, v) in sets {
        table.insert(k.clone(), spec::typed_scalar(v));
    }
    let cfg: TrainConfig = kind::parse_table(&table).map_err(|e| {
        Error::user(format!("`--set`: {e}"))
            .with_hint("`retort train --help-keys` lists the settings")
    })?;
    cfg.validate()?;
    Ok(cfg)
}

/// Reads several training inputs; they must agree on classes.
fn load_many(paths: &[String]) -> Result<distill::data::Dataset> {
    let mut all: Option<distill::data::Dataset> = None;
    for p in paths {
        let expected = all.as_ref().map(|d| d.label_names.clone());
        let d = distill::data::load(p, "text", "label", expected.as_deref())?;
        match &mut all {
            Some(a) => a.examples.extend(d.examples),
            None => all = Some(d),
        }
    }
    all.ok_or_else(|| Error::user("give at least one `--data`"))
}

/// The table printed after `retort train`: one line per epoch, then the final model.
fn train_summary(r: &distill::train::TrainReport) -> String {
    let mut s = format!(
        "trained on {} rows ({} with gold labels, {} with teacher logits)\n{:>5} {:>10} {:>9} {:>9} {:>9} {:>8} {:>8}\n",
        r.rows, r.labelled, r.soft_labelled, "epoch", "loss", "accuracy", "macro-F1", "NLL", "ECE", "seconds"
    );
    for e in &r.epochs {
        let m = e
            .eval
            .map(|m| {
                format!(
                    "{:>9.4} {:>9.4} {:>9.4} {:>8.4}",
                    m.accuracy, m.macro_f1, m.nll, m.ece
                )
            })
            .unwrap_or_else(|| format!("{:>9} {:>9} {:>9} {:>8}", "-", "-", "-", "-"));
        s.push_str(&format!(
            "{:>5} {:>10.4} {m} {:>8.1}\n",
            e.epoch, e.loss, e.seconds
        ));
    }
    s.push_str(&format!("final model: {}", r.final_model.display()));
    s
}
