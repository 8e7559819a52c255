//! `backtranslate` stage: each copy of a row is the text translated into a pivot language and
//! back (copy `i` through pivot `i`), with a real translation engine.
//!
//! Engine `apertium` (rule-based; Debian `apertium` + `apertium-eng-spa`/`apertium-eng-cat`):
//! the batch's texts are written one per line, each ending in punctuation (Apertium otherwise
//! moves words between lines), in chunks of `lines_per_call` lines, `processes` chunks at a
//! time. A call whose output has another number of lines, or that fails, is retried line by
//! line; a row that still fails goes to the rejects with the reason.
//!
//! Determinism: the output does not depend on `processes` or `--threads`. Apertium's
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
use crate::registry::{BuildContext, Built, Kind, Role};
use crate::seed;
use crate::stage::{Emit, StageContext, Transform};
use crate::translate::apertium::Apertium;

/// Translation engine.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// Apertium, the rule-based engine (a subprocess per call).
    Apertium,
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
    /// Translation engine: `apertium`.
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
}

/// The registry entry.
pub static KIND: Kind<(CopyOptions, BacktranslateConfig)> = Kind {
    name: "backtranslate",
    role: Role::Transform,
    summary: "Translate each text into a pivot language and back (Apertium), one copy per pivot",
    example: r#"[vars]
input = "data/train.parquet"
output = "out/backtranslated"

[pipeline]
name = "backtranslate"
seed = 17

[stages.corpus]
kind = "parquet_source"
path = "${input}"

[stages.bt]
kind = "backtranslate"
inputs = ["corpus"]
engine = "apertium"
pivots = ["spa"]
copies = 1
keep_original = true
lines_per_call = 1024

[stages.out]
kind = "parquet_sink"
inputs = ["bt"]
path = "${output}"
"#,
    parse: |t| {
        let (opts, cfg): (CopyOptions, BacktranslateConfig) = parse_augment(t)?;
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
        for pivot in cfg.pivots.iter().take(opts.copies as usize) {
            engine
                .check_pair(&cfg.language, pivot)
                .map_err(|e| e.context(format!("stage `{}`", cx.stage)))?;
        }
        Ok(Backtranslate {
            processes: cfg.processes.unwrap_or(cx.settings.threads).max(1),
            opts,
            cfg,
            engine,
            stage: cx.stage.to_string(),
            stage_seed: seed::stage_seed(cx.settings.seed, cx.stage),
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
