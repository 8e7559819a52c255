//! `backtranslate` stage: each copy of a row is the text translated into a pivot language and
//! back (copy `i` through pivot `i`), with a real translation engine.
//!
//! Engine `apertium` (rule-based; Debian `apertium` + `apertium-eng-spa`/`apertium-eng-cat`):
//! the batch's texts are written one per line, each ending in punctuation (Apertium otherwise
//! moves words between lines), in chunks of `lines_per_call` lines, `processes` chunks at a
//! time. A call whose output has another number of lines, or that fails, is retried line by
//! line; a row that still fails goes to the rejects with the reason.
//!
//! Engine `marian` (MarianMT in candle, see `translate::marian` and docs/MARIAN.md): each
//! copy is the text translated by `forward_model` into the pivot and back by `backward_model`.
//! With `decoding = "sample"` (the default, temperature 0.9: UDA found sampling better than
//! beam for back-translation) copy `i` is sampled with generators seeded from the row's copy
//! seed, so copies differ and the output depends on nothing but the seed, the row id and the
//! models (not on `--threads`, `--batch-size`, `batch_size` or sharding). `greedy` and `beam`
//! would make identical copies, so they take `copies = 1` only.
//!
//! Apertium determinism: the output does not depend on `processes` or `--threads`. Apertium's
//! translation of a line can depend on the lines before it in the same call (measured on
//! SST-2: 1 to 3 lines in 200 change when the same text is cut into calls differently, even
//! with blank lines between texts), so the output is reproducible for the same
//! `lines_per_call` and `--batch-size` (a call never spans two batches), and can differ in a
//! few words when those change.

use std::sync::atomic::{AtomicUsize, Ordering};

use arrow::array::{Array, StringArray};
use arrow::datatypes::SchemaRef;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::augment::adapter::{augment_keys, parse_augment, write_rows, CopyOptions, RowResult};
use crate::augment::Augmentation;
use crate::batch::{col, Batch};
use crate::error::{Error, Result};
use crate::seed;
use crate::stage::kind::{BuildContext, Built, Kind, Needs, Role};
use crate::stage::{Emit, StageContext, Transform};
use crate::translate::apertium::Apertium;
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
    /// copy needs its own pivot): `spa` (Spanish), `cat` (Catalan).
    #[serde(default = "default_pivots")]
    pub pivots: Vec<String>,
    /// Engine processes run at the same time (default: the run's `--threads`).
    #[serde(default)]
    pub processes: Option<usize>,
    /// Lines per engine call (within a batch); larger calls spread the start-up cost (about
    /// 0.1 s) further. Part of what makes output reproducible: see the stage docs.
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
                    &cx.settings.compute()?.device,
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

/// One text as a line for the engine: line breaks become spaces, and a final punctuation mark
/// is added when there is none. Returns the line and whether a mark was added.
pub fn to_line(text: &str) -> (String, bool) {
    let one: String = text
        .split(['\n', '\r', '\u{2028}', '\u{2029}', '\u{0}'])
        .collect::<Vec<_>>()
        .join(" ");
    let trimmed = one.trim_end();
    let ends = trimmed
        .chars()
        .last()
        .is_some_and(|c| matches!(c, '.' | '!' | '?' | '…' | ';' | ':' | '"' | '\'' | ')'));
    if ends {
        (trimmed.to_string(), false)
    } else {
        (format!("{trimmed} ."), true)
    }
}

/// Cleans an engine output line: drops the mark [`to_line`] added, collapses runs of spaces,
/// and keeps the source's lower-case first letter (Apertium capitalises sentences).
pub fn from_line(out: &str, source: &str, added_mark: bool) -> String {
    let mut s = out.split_whitespace().collect::<Vec<_>>().join(" ");
    if added_mark {
        if let Some(stripped) = s.strip_suffix('.') {
            s = stripped.trim_end().to_string();
        }
    }
    let src_first = source.trim_start().chars().next();
    if src_first.is_some_and(|c| c.is_lowercase()) {
        let mut chars = s.chars();
        if let Some(f) = chars.next() {
            if f.is_uppercase() {
                s = f.to_lowercase().chain(chars).collect();
            }
        }
    }
    s
}

/// Round trip of one chunk: `lang → pivot → lang`. `Err` when a call fails or the line
/// count changes.
fn round_trip(
    engine: &Apertium,
    lang: &str,
    pivot: &str,
    lines: &[String],
) -> std::result::Result<Vec<String>, String> {
    let mut input = String::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
    for l in lines {
        input.push_str(l);
        input.push('\n');
    }
    let there = engine.translate(&format!("{lang}-{pivot}"), &input)?;
    let n = there.lines().count();
    if n != lines.len() {
        return Err(format!(
            "`{lang}-{pivot}` returned {n} lines for {}",
            lines.len()
        ));
    }
    let back = engine.translate(&format!("{pivot}-{lang}"), &there)?;
    let out: Vec<String> = back.lines().map(str::to_string).collect();
    if out.len() != lines.len() {
        return Err(format!(
            "`{pivot}-{lang}` returned {} lines for {}",
            out.len(),
            lines.len()
        ));
    }
    Ok(out)
}

/// Round trips every line through `pivot` with `processes` engine calls at a time; a chunk
/// that fails is retried line by line. Each line gets its translation or the reason it failed.
pub fn translate_lines(
    engine: &Apertium,
    lang: &str,
    pivot: &str,
    lines: &[String],
    lines_per_call: usize,
    processes: usize,
) -> Vec<std::result::Result<String, String>> {
    let chunks: Vec<&[String]> = lines.chunks(lines_per_call.max(1)).collect();
    let next = AtomicUsize::new(0);
    let mut results: Vec<Option<Vec<std::result::Result<String, String>>>> =
        (0..chunks.len()).map(|_| None).collect();
    let done = std::sync::Mutex::new(&mut results);
    std::thread::scope(|s| {
        for _ in 0..processes.min(chunks.len()).max(1) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(chunk) = chunks.get(i) else { break };
                let r = match round_trip(engine, lang, pivot, chunk) {
                    Ok(out) => out.into_iter().map(Ok).collect(),
                    Err(_) => chunk
                        .iter()
                        .map(|l| {
                            round_trip(engine, lang, pivot, std::slice::from_ref(l))
                                .map(|mut v| v.remove(0))
                        })
                        .collect(),
                };
                done.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(r);
            });
        }
    });
    results.into_iter().flatten().flatten().collect()
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
            let source = text.value(i).trim();
            let (mut made, mut skipped, mut errors) = (Vec::new(), 0, Vec::new());
            for (out, s) in outputs.by_ref().take(copies as usize) {
                match out {
                    Ok(t) if t.is_empty() || t == source => skipped += 1,
                    Ok(t) => made.push((
                        Augmentation {
                            text: t,
                            op: "backtranslate",
                            params: params.clone(),
                        },
                        s,
                    )),
                    Err(e) => errors.push(e),
                }
            }
            let failure = (!errors.is_empty() && made.is_empty())
                .then(|| ("backtranslate_failed", errors.join("; ")));
            skipped += errors.len() as u32;
            results[i] = Some(RowResult {
                copies: made,
                skipped,
                failure,
                no_copy: None,
            });
        }
        results
    }
}

impl Transform for Backtranslate {
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
        let prepared: Vec<(String, bool)> = valid.iter().map(|&i| to_line(text.value(i))).collect();
        let lines: Vec<String> = prepared.iter().map(|p| p.0.clone()).collect();
        let mut per_pivot = Vec::new();
        for pivot in self.cfg.pivots.iter().take(self.opts.copies as usize) {
            per_pivot.push(translate_lines(
                &self.engine,
                &self.cfg.language,
                pivot,
                &lines,
                self.cfg.lines_per_call,
                self.processes,
            ));
        }
        let mut results: Vec<Option<RowResult>> = (0..n).map(|_| None).collect();
        for (k, &i) in valid.iter().enumerate() {
            let source = text.value(i);
            let row_seed = seed::row_seed(self.stage_seed, ids.value(i));
            let mut copies = Vec::new();
            let mut skipped = 0;
            let mut errors = Vec::new();
            for (c, pivot) in self
                .cfg
                .pivots
                .iter()
                .take(self.opts.copies as usize)
                .enumerate()
            {
                match &per_pivot[c][k] {
                    Ok(raw) => {
                        let t = from_line(raw, source, prepared[k].1);
                        if t.is_empty() || t == source.trim() {
                            skipped += 1;
                        } else {
                            copies.push((
                                Augmentation {
                                    text: t,
                                    op: "backtranslate",
                                    params: serde_json::json!({
                                        "engine": "apertium",
                                        "pivot": pivot,
                                        "language": self.cfg.language,
                                    })
                                    .to_string(),
                                },
                                seed::copy_seed(row_seed, c as u32),
                            ));
                        }
                    }
                    Err(e) => errors.push(format!("pivot `{pivot}`: {e}")),
                }
            }
            let failure = (!errors.is_empty() && copies.is_empty())
                .then(|| ("backtranslate_failed", errors.join("; ")));
            skipped += errors.len() as u32;
            results[i] = Some(RowResult {
                copies,
                skipped,
                failure,
                no_copy: None,
            });
        }
        write_rows(data, results, &self.opts, &self.stage, out, cx)
    }
}

#[cfg(test)]
mod tests {
    use super::{from_line, to_line};

    #[test]
    fn lines_get_one_line_and_final_punctuation() {
        assert_eq!(to_line("Great film."), ("Great film.".into(), false));
        assert_eq!(to_line("great film"), ("great film .".into(), true));
        assert_eq!(
            to_line("one\ntwo\r\nthree"),
            ("one two  three .".into(), true)
        );
        assert_eq!(to_line("Really?  "), ("Really?".into(), false));
        assert_eq!(to_line("ünïcödé 非常好"), ("ünïcödé 非常好 .".into(), true));
    }

    #[test]
    fn outputs_are_cleaned_as_the_source_was_written() {
        assert_eq!(
            from_line("The  film was  great .", "the film", true),
            "the film was great"
        );
        assert_eq!(
            from_line("The film was great.", "The film.", false),
            "The film was great."
        );
        assert_eq!(from_line("  ", "x", true), "");
        assert_eq!(from_line("Él vino.", "él", true), "él vino");
    }
}
