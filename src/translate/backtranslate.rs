//! `backtranslate` stage: each copy of a row is the text translated into a pivot language and
//! back (copy `i` through pivot `i`), with a real translation engine.
//!
//! Engine `apertium` (rule-based; Debian `apertium` + `apertium-eng-spa`/`apertium-eng-cat`):
//! the batch's texts are written one per line (Unicode NFC, each ending in a sentence mark),
//! in chunks of `lines_per_call` lines, `processes` chunks at a time (`translate::lines`). A
//! call whose output has another number of lines, or that fails, is retried line by line; a
//! row that still fails goes to the rejects with the reason.
//!
//! Engine `marian` (MarianMT in candle, see `translate::marian` and docs/MARIAN.md): each
//! copy is the text translated by `forward_model` into the pivot and back by `backward_model`.
//! With `decoding = "sample"` (the default, temperature 0.9: UDA found sampling better than
//! beam for back-translation) copy `i` is sampled with generators seeded from the row's copy
//! seed, so copies differ and the output depends on nothing but the seed, the row id and the
//! models. `greedy` and `beam` would make identical copies, so they take `copies = 1` only.
//!
//! Determinism: with either engine a row's copies depend on the row alone, not on
//! `--threads`, `--batch-size`, `lines_per_call`, `processes`, `batch_size` or sharding. For
//! Apertium that needs each line translated as if it were alone, which `translate::lines`
//! arranges for the `spa` and `cat` pivots (it explains why Apertium otherwise carries state
//! from line to line). With another pivot a row's translation can still depend on the rows
//! before it in the same call.
//!
//! A copy that is empty, equals the text or equals an earlier copy of the row is dropped and
//! counted (`translate::copies`).

use arrow::array::{Array, StringArray};
use arrow::datatypes::SchemaRef;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::augment::adapter::{augment_keys, parse_augment, write_rows, CopyOptions, RowResult};
use crate::batch::{col, Batch};
use crate::error::{Error, Result};
use crate::seed;
use crate::stage::kind::{BuildContext, Built, Kind, Needs, Role};
use crate::stage::{Emit, StageContext, Transform};
use crate::translate::apertium::Apertium;
use crate::translate::copies::{Candidate, RowCopies};
use crate::translate::lines::{from_line, to_line, translate_lines};
use crate::translate::marian::{Decoding, Generation, MarianPair};
use std::path::Path;

/// Translation engine.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// Apertium, the rule-based engine (a subprocess per call).
    Apertium,
    /// MarianMT (opus-mt) models in candle, from local folders.
    Marian,
}

/// How the `marian` engine picks tokens.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DecodingKind {
    /// Sample from the softmax at `temperature` (each copy a different sample).
    Sample,
    /// The most likely token (one copy only).
    Greedy,
    /// Beam search with `beam_size` beams (one copy only).
    Beam,
}

fn default_decoding() -> DecodingKind {
    DecodingKind::Sample
}
fn default_temperature() -> f64 {
    0.9
}
fn default_beam() -> usize {
    4
}
fn default_max_new() -> usize {
    128
}
fn default_batch() -> usize {
    32
}

fn default_engine() -> Engine {
    Engine::Apertium
}
fn default_language() -> String {
    "eng".into()
}
fn default_pivots() -> Vec<String> {
    vec!["spa".into()]
}
fn default_lines() -> usize {
    1024
}
fn default_program() -> String {
    "apertium".into()
}

/// Configuration of `backtranslate` (besides `copies` and `keep_original`).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BacktranslateConfig {
    /// Translation engine: `apertium` or `marian`.
    #[serde(default = "default_engine")]
    pub engine: Engine,
    /// Language of the texts, as the engine names it (Apertium: `eng`).
    #[serde(default = "default_language")]
    pub language: String,
    /// Pivot languages; copy `i` goes through `pivots[i]` (Apertium is deterministic, so each
    /// copy needs its own pivot): `spa` (Spanish), `cat` (Catalan). With these two each row is
    /// translated as if alone; with another pivot a row's translation can depend on the rows
    /// before it in the same engine call (so on `lines_per_call` and `--batch-size`).
    #[serde(default = "default_pivots")]
    pub pivots: Vec<String>,
    /// Engine processes run at the same time (default: the run's `--threads`).
    #[serde(default)]
    pub processes: Option<usize>,
    /// Lines per engine call (within a batch); larger calls spread the start-up cost (about
    /// 0.2 s a call) further. Does not change the output (pivots `spa` and `cat`).
    #[serde(default = "default_lines")]
    pub lines_per_call: usize,
    /// The Apertium program.
    #[serde(default = "default_program")]
    pub program: String,
    /// `marian`: folder of the language → pivot model (config.json, model.safetensors,
    /// tokenizer JSON; see docs/MARIAN.md).
    #[serde(default)]
    pub forward_model: Option<String>,
    /// `marian`: folder of the pivot → language model.
    #[serde(default)]
    pub backward_model: Option<String>,
    /// `marian`: the pivot language, recorded in `op_params` (e.g. `deu`).
    #[serde(default)]
    pub pivot: Option<String>,
    /// `marian`: `sample` (default), `greedy` or `beam`.
    #[serde(default = "default_decoding")]
    pub decoding: DecodingKind,
    /// `marian`, `decoding = "sample"`: softmax temperature (> 0).
    #[serde(default = "default_temperature")]
    pub temperature: f64,
    /// `marian`, `decoding = "beam"`: beams.
    #[serde(default = "default_beam")]
    pub beam_size: usize,
    /// `marian`: most tokens generated per translation.
    #[serde(default = "default_max_new")]
    pub max_new_tokens: usize,
    /// `marian`: texts per forward pass (texts of one token length share a pass).
    #[serde(default = "default_batch")]
    pub batch_size: usize,
}

const APERTIUM_KEYS: [&str; 4] = ["pivots", "processes", "lines_per_call", "program"];
const MARIAN_KEYS: [&str; 8] = [
    "forward_model",
    "backward_model",
    "pivot",
    "decoding",
    "temperature",
    "beam_size",
    "max_new_tokens",
    "batch_size",
];

/// Checks the keys of the `marian` engine.
fn check_marian(
    t: &toml::Table,
    opts: &CopyOptions,
    cfg: &BacktranslateConfig,
) -> std::result::Result<(), String> {
    if let Some(k) = APERTIUM_KEYS.iter().find(|k| t.contains_key(**k)) {
        return Err(format!("`{k}` is an Apertium key; with `engine = \"marian\"` use `pivot`, `forward_model` and `backward_model`"));
    }
    for key in ["forward_model", "backward_model", "pivot"] {
        if !t.contains_key(key) {
            return Err(format!(
                "`engine = \"marian\"` needs `{key}` (`forward_model`/`backward_model`: model \
                 folders, see docs/MARIAN.md; `pivot`: the pivot language, e.g. \"deu\")"
            ));
        }
    }
    if cfg.decoding != DecodingKind::Sample && opts.copies > 1 {
        return Err(format!(
            "`copies` = {} with `decoding = \"{}\"`: greedy and beam decoding make the same \
             translation every time; use `decoding = \"sample\"` for several copies",
            opts.copies,
            if cfg.decoding == DecodingKind::Beam {
                "beam"
            } else {
                "greedy"
            }
        ));
    }
    if !(cfg.temperature > 0.0 && cfg.temperature.is_finite()) {
        return Err("`temperature` must be above 0".into());
    }
    for (k, v) in [
        ("beam_size", cfg.beam_size),
        ("max_new_tokens", cfg.max_new_tokens),
        ("batch_size", cfg.batch_size),
    ] {
        if v == 0 {
            return Err(format!("`{k}` must be at least 1"));
        }
    }
    Ok(())
}

/// The registry entry.
pub static KIND: Kind<(CopyOptions, BacktranslateConfig)> = Kind {
    name: "backtranslate",
    role: Role::Transform,
    summary:
        "Translate each text into a pivot language and back: Apertium (one copy per pivot) or \
              Marian models (sampled copies)",
    needs: Needs {
        models: true,
        apertium: true,
        ..Needs::NOTHING
    },
    example: r#"engine = "apertium"
pivots = ["spa"]
copies = 1
keep_original = true
lines_per_call = 1024"#,
    parse: |t| {
        let (opts, cfg): (CopyOptions, BacktranslateConfig) = parse_augment(t)?;
        if cfg.engine == Engine::Marian {
            check_marian(t, &opts, &cfg)?;
            return Ok((opts, cfg));
        }
        if let Some(k) = MARIAN_KEYS.iter().find(|k| t.contains_key(**k)) {
            return Err(format!("`{k}` is a key of `engine = \"marian\"`"));
        }
        if opts.copies as usize > cfg.pivots.len() {
            return Err(format!(
                "`copies` = {} but `pivots` lists {}: the engine is deterministic, so each copy \
                 needs its own pivot language (e.g. `pivots = [\"spa\", \"cat\"]`)",
                opts.copies,
                cfg.pivots.len()
            ));
        }
        if cfg.lines_per_call == 0 || cfg.processes == Some(0) {
            return Err("`lines_per_call` and `processes` must be at least 1".into());
        }
        Ok((opts, cfg))
    },
    keys: augment_keys::<BacktranslateConfig>,
    build: |(opts, cfg), cx| {
        Ok(Built::Transform(Box::new(Backtranslate::new(
            opts, cfg, cx,
        )?)))
    },
    config: std::marker::PhantomData,
};

/// The stage.
pub struct Backtranslate {
    opts: CopyOptions,
    cfg: BacktranslateConfig,
    engine: Apertium,
    marian: Option<MarianPair>,
    processes: usize,
    stage: String,
    stage_seed: u64,
}

/// The run's device for the Marian models, which run in f32 only (see [`crate::translate::marian`]):
/// an explicit `--precision` other than f32 is refused.
fn marian_compute(cx: &BuildContext<'_>) -> Result<crate::models::device::Compute> {
    let compute = cx.settings.compute()?;
    compute
        .check_runs_in(
            candle_core::DType::F32,
            "Marian back-translation (it runs in f32)",
        )
        .map_err(|e| e.context(format!("stage `{}`", cx.stage)))?;
    Ok(compute)
}

impl Backtranslate {
    /// Checks that the engine and every language pair are installed.
    pub fn new(opts: CopyOptions, cfg: BacktranslateConfig, cx: &BuildContext<'_>) -> Result<Self> {
        let engine = Apertium {
            program: cfg.program.clone(),
        };
        let marian = match cfg.engine {
            Engine::Marian => Some(
                MarianPair::load(
                    Path::new(cfg.forward_model.as_deref().unwrap_or_default()),
                    Path::new(cfg.backward_model.as_deref().unwrap_or_default()),
                    &marian_compute(cx)?.device,
                )
                .map_err(|e| e.context(format!("stage `{}`", cx.stage)))?,
            ),
            Engine::Apertium => None,
        };
        for pivot in cfg
            .pivots
            .iter()
            .take(opts.copies as usize * usize::from(marian.is_none()))
        {
            engine
                .check_pair(&cfg.language, pivot)
                .map_err(|e| e.context(format!("stage `{}`", cx.stage)))?;
        }
        Ok(Backtranslate {
            processes: cfg.processes.unwrap_or(cx.settings.threads).max(1),
            opts,
            cfg,
            engine,
            marian,
            stage: cx.stage.to_string(),
            stage_seed: cx.stage_seed(),
        })
    }
}

impl Backtranslate {
    /// Row results of the `marian` engine: copy `c` of a row is a round trip sampled with the
    /// row's copy seed `c`; every (row, copy) is one text for the models.
    fn marian_rows(
        &self,
        pair: &MarianPair,
        text: &StringArray,
        ids: &StringArray,
        valid: &[usize],
        n: usize,
        cx: &StageContext,
    ) -> Vec<Option<RowResult>> {
        let cfg = &self.cfg;
        let copies = self.opts.copies;
        let decoding = match cfg.decoding {
            DecodingKind::Sample => Decoding::Sample {
                temperature: cfg.temperature,
            },
            DecodingKind::Greedy => Decoding::Greedy,
            DecodingKind::Beam => Decoding::Beam {
                size: cfg.beam_size,
            },
        };
        let gen = Generation {
            decoding,
            max_new_tokens: cfg.max_new_tokens,
        };
        let (mut inputs, mut seeds) = (Vec::new(), Vec::new());
        for &i in valid {
            let row_seed = seed::row_seed(self.stage_seed, ids.value(i));
            for c in 0..copies {
                inputs.push(text.value(i).to_string());
                seeds.push(seed::copy_seed(row_seed, c));
            }
        }
        let outputs = pair.round_trip(&inputs, &seeds, &gen, cfg.batch_size, &cx.pool);
        let params = serde_json::json!({
            "engine": "marian",
            "pivot": cfg.pivot,
            "language": cfg.language,
            "decoding": match cfg.decoding {
                DecodingKind::Sample => "sample",
                DecodingKind::Greedy => "greedy",
                DecodingKind::Beam => "beam",
            },
            "temperature": (cfg.decoding == DecodingKind::Sample).then_some(cfg.temperature),
            "beam_size": (cfg.decoding == DecodingKind::Beam).then_some(cfg.beam_size),
        })
        .to_string();
        let mut results: Vec<Option<RowResult>> = (0..n).map(|_| None).collect();
        let mut outputs = outputs.into_iter().zip(seeds);
        for &i in valid {
            let candidates = outputs
                .by_ref()
                .take(copies as usize)
                .enumerate()
                .map(|(c, (translated, seed))| Candidate {
                    text: translated,
                    params: params.clone(),
                    seed,
                    label: format!("copy {c}"),
                })
                .collect::<Vec<_>>();
            results[i] = Some(RowCopies::new(text.value(i), candidates).into_result());
        }
        results
    }

    /// Row results of the `apertium` engine: copy `c` of a row is its round trip through
    /// `pivots[c]`.
    fn apertium_rows(
        &self,
        text: &StringArray,
        ids: &StringArray,
        valid: &[usize],
        n: usize,
    ) -> Vec<Option<RowResult>> {
        let prepared: Vec<(String, bool)> = valid.iter().map(|&i| to_line(text.value(i))).collect();
        let lines: Vec<String> = prepared.iter().map(|p| p.0.clone()).collect();
        let pivots: Vec<&String> = self
            .cfg
            .pivots
            .iter()
            .take(self.opts.copies as usize)
            .collect();
        let per_pivot: Vec<_> = pivots
            .iter()
            .map(|pivot| {
                translate_lines(
                    &self.engine,
                    &self.cfg.language,
                    pivot,
                    &lines,
                    self.cfg.lines_per_call,
                    self.processes,
                )
            })
            .collect();
        let mut results: Vec<Option<RowResult>> = (0..n).map(|_| None).collect();
        for (k, &i) in valid.iter().enumerate() {
            let source = text.value(i);
            let row_seed = seed::row_seed(self.stage_seed, ids.value(i));
            let candidates = pivots.iter().enumerate().map(|(c, pivot)| Candidate {
                text: per_pivot[c][k]
                    .as_ref()
                    .map(|raw| from_line(raw, source, prepared[k].1))
                    .map_err(Clone::clone),
                params: serde_json::json!({
                    "engine": "apertium",
                    "pivot": pivot,
                    "language": self.cfg.language,
                })
                .to_string(),
                seed: seed::copy_seed(row_seed, c as u32),
                label: format!("pivot `{pivot}`"),
            });
            results[i] = Some(RowCopies::new(source, candidates).into_result());
        }
        results
    }
}

impl Transform for Backtranslate {
    fn model_paths(&self) -> Vec<std::path::PathBuf> {
        match self.marian {
            Some(_) => [&self.cfg.forward_model, &self.cfg.backward_model]
                .into_iter()
                .flatten()
                .map(std::path::PathBuf::from)
                .collect(),
            None => Vec::new(),
        }
    }

    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef> {
        crate::augment::adapter::check_augment_input(input)
    }

    fn process(&mut self, batch: &Batch, out: &mut Emit, cx: &mut StageContext) -> Result<()> {
        let data = &batch.data;
        let n = data.num_rows();
        let column = |name: &str| {
            data.column_by_name(name)
                .and_then(|c| c.as_any().downcast_ref::<StringArray>())
                .ok_or_else(|| Error::runtime(format!("column `{name}` is missing")))
        };
        let text = column(col::TEXT)?;
        let ids = column(col::ID)?;
        let valid: Vec<usize> = (0..n)
            .filter(|&i| text.is_valid(i) && ids.is_valid(i))
            .collect();
        if let Some(pair) = &self.marian {
            let results = self.marian_rows(pair, text, ids, &valid, n, cx);
            return write_rows(data, results, &self.opts, &self.stage, out, cx);
        }
        let results = self.apertium_rows(text, ids, &valid, n);
        write_rows(data, results, &self.opts, &self.stage, out, cx)
    }
}
