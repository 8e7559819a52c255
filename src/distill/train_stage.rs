//! `train` stage: a sink that keeps the rows it receives (as Parquet, under `PATH/rows`) and,
//! once the input is complete, trains a student on them — the last step of a pipeline such as
//! `pipelines/self-distill.toml`.

use std::path::PathBuf;

use arrow::datatypes::SchemaRef;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::batch::{col, Batch};
use crate::distill::data::{self, TEACHER_LOGITS};
use crate::distill::train::{self, TrainConfig};
use crate::error::{Error, Result};
use crate::io::sink::{ParquetSink, ParquetSinkConfig};
use crate::stage::kind::{keys_of, parse_table, BuildContext, Built, KeyDoc, Kind, Needs, Role};
use crate::stage::{RunIdentity, Sink, SinkReport, SinkStart, StageContext};

/// The keys of `train` besides the training settings.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrainStageKeys {
    /// Output folder: `rows/` (the rows trained on, as Parquet with a manifest), `epoch-NN/`
    /// checkpoints, `final/` (the model folder to use as a teacher) and `train_log.json`.
    pub path: String,
    /// Labelled rows (a Parquet file, folder or glob) to evaluate after every epoch.
    #[serde(default)]
    pub eval: Option<String>,
    /// Also train a cross-fit folder `PATH/crossfit` with this many folds (at least 2): fold
    /// models that each never saw one fold of the row families. A `teacher` whose `model` is
    /// that folder labels every training row (and its augmented copies) with the model of its
    /// fold, other rows with the mean of all. Unset: no cross-fit folder.
    #[serde(default)]
    pub folds: Option<usize>,
}

/// Configuration of `train`: its own keys plus every `retort train` setting.
#[derive(Debug, Clone)]
pub struct TrainStageConfig {
    /// Output and evaluation.
    pub keys: TrainStageKeys,
    /// Training settings.
    pub train: TrainConfig,
    /// Whether `seed` was given; otherwise the pipeline's seed is used.
    pub seed_given: bool,
}

fn parse(table: &toml::Table) -> std::result::Result<TrainStageConfig, String> {
    let mut rest = table.clone();
    let mut own = toml::Table::new();
    for k in ["path", "eval", "folds"] {
        if let Some(v) = rest.remove(k) {
            own.insert(k.to_string(), v);
        }
    }
    let keys: TrainStageKeys = parse_table(&own)?;
    if keys.folds.is_some_and(|k| !(2..=20).contains(&k)) {
        return Err("`folds` must be between 2 and 20".into());
    }
    let seed_given = rest.contains_key("seed");
    let train: TrainConfig = parse_table(&rest)?;
    train
        .validate()
        .map_err(|e| e.render().trim().to_string())?;
    Ok(TrainStageConfig {
        keys,
        train,
        seed_given,
    })
}

fn keys() -> Vec<KeyDoc> {
    let mut k = keys_of::<TrainStageKeys>();
    k.extend(keys_of::<TrainConfig>());
    k
}

/// The registry entry.
pub static KIND: Kind<TrainStageConfig> = Kind {
    name: "train",
    role: Role::Sink,
    summary: "Train a student on the incoming rows (gold labels and/or `teacher_logits`); writes a model folder",
    needs: Needs {
        models: true,
        ..Needs::NOTHING
    },
    example: r#"path = "${output}"
student = "cnn"
epochs = 1
batch_size = 16
learning_rate = 0.003
vocab_size = 1000
embed_dim = 16"#,
    parse,
    keys,
    build: |cfg, cx| Ok(Built::Sink(Box::new(TrainSink::new(cfg, cx)?))),
    config: std::marker::PhantomData,
};

/// The file in `PATH` that records which run trained `final/`: written after training, removed
/// before training starts, so a model left by an earlier run (or by a run killed while
/// training) is never taken for this run's.
pub const TRAINED_FILE: &str = "_TRAINED.json";

/// What [`TRAINED_FILE`] holds.
#[derive(serde::Serialize, Deserialize)]
struct Trained {
    /// The fingerprint of the run that trained the model.
    fingerprint: String,
}

/// Stores the rows, then trains.
pub struct TrainSink {
    cfg: TrainStageConfig,
    rows: Box<ParquetSink>,
    dir: PathBuf,
    /// This run's fingerprint, once started.
    fingerprint: String,
}

impl TrainSink {
    /// Builds the sink; refuses sharded runs (each shard would train its own student).
    pub fn new(mut cfg: TrainStageConfig, cx: &BuildContext<'_>) -> Result<Self> {
        if cx.settings.shard.is_some() {
            return Err(Error::user(format!(
                "stage `{}`: `train` cannot run on one shard of the input",
                cx.stage
            ))
            .with_hint("write the shards with `parquet_sink`, then `retort train --data FOLDER`"));
        }
        if !cfg.seed_given {
            cfg.train.seed = cx.settings.seed;
        }
        let dir = PathBuf::from(&cfg.keys.path);
        let mut table = toml::Table::new();
        table.insert("path".into(), dir.join("rows").display().to_string().into());
        let sink_cfg: ParquetSinkConfig = parse_table(&table).map_err(Error::user)?;
        Ok(TrainSink {
            rows: Box::new(ParquetSink::new(sink_cfg, cx)?),
            cfg,
            dir,
            fingerprint: String::new(),
        })
    }
}

impl Sink for TrainSink {
    fn accepts(&self, input: &SchemaRef) -> Result<()> {
        let has = |n: &str| input.index_of(n).is_ok();
        if !has(col::TEXT) {
            return Err(Error::user("`train` needs a `text` column"));
        }
        if !has(col::LABEL) && !has(TEACHER_LOGITS) {
            return Err(Error::user(format!(
                "`train` needs gold labels (`{}`) or soft labels (`{TEACHER_LOGITS}`)",
                col::LABEL
            ))
            .with_hint(
                "map the label column in the source (`label = \"...\"`) or add a `teacher` stage",
            ));
        }
        self.rows.accepts(input)
    }

    fn start(&mut self, run: &RunIdentity, schema: &SchemaRef) -> Result<SinkStart> {
        // When the rows are already complete, `finish` still trains unless this run's model is
        // there.
        self.fingerprint = run.fingerprint.clone();
        self.rows.start(run, schema)
    }

    fn write(&mut self, batch: Batch, cx: &mut StageContext) -> Result<()> {
        self.rows.write(batch, cx)
    }

    fn finish(self: Box<Self>, cx: &mut StageContext) -> Result<SinkReport> {
        let TrainSink {
            mut cfg,
            rows,
            dir,
            fingerprint,
        } = *self;
        cfg.train.placement = cx.settings.placement;
        let report = rows.finish(cx)?;
        let marker = dir.join(TRAINED_FILE);
        let trained_here = crate::io::manifest::read_json::<Trained>(&marker)
            .is_ok_and(|t| t.fingerprint == fingerprint);
        let folds_done = cfg.keys.folds.is_none_or(|_| {
            dir.join("crossfit")
                .join(crate::distill::crossfit::FOLDS_FILE)
                .is_file()
        });
        if report.up_to_date
            && trained_here
            && folds_done
            && dir.join("final/model.safetensors").exists()
        {
            return Ok(report);
        }
        match fs_err::remove_file(&marker) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                let what = format!("cannot remove `{}`", marker.display());
                return Err(crate::error::io_error(what, e));
            }
            _ => {}
        }
        let device = cfg.train.placement.open()?.device;
        let data = data::load(&report.path, col::TEXT, col::LABEL, None)
            .map_err(|e| e.context(format!("stage `{}`", cx.stage)))?;
        let eval = cfg
            .keys
            .eval
            .as_deref()
            .map(|p| data::load(p, col::TEXT, col::LABEL, Some(&data.label_names)))
            .transpose()?;
        let mut student = train::new_student(&cfg.train, &data, &device)?;
        train::train(&cfg.train, &mut student, &data, eval.as_ref(), &dir, false)?;
        if let Some(k) = cfg.keys.folds {
            let crossfit = dir.join("crossfit");
            // A stale assignment must not describe the new fold models while they train.
            let _ = fs_err::remove_file(crossfit.join(crate::distill::crossfit::FOLDS_FILE));
            crate::distill::crossfit::train_folds(&cfg.train, &data, k, &crossfit, false)
                .map_err(|e| e.context(format!("stage `{}`", cx.stage)))?;
        }
        crate::io::manifest::write_json_atomic(&marker, &Trained { fingerprint })?;
        Ok(report)
    }

    fn model_paths(&self) -> Vec<PathBuf> {
        self.cfg.train.init.iter().cloned().collect()
    }
}
