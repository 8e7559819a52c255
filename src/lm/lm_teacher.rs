//! `lm_teacher` stage: soft labels for language-model distillation. For every row it stores the
//! text's token ids (`lm_token_ids`) and, for each token, the causal LM teacher's distribution
//! over that token given the ones before it (after a start token), in one of two compact forms:
//!
//! - `top_k`: the `k` most probable ids (`lm_topk_ids`, u32), their log-probabilities
//!   (`lm_topk_logprobs`, f16) and the log of the probability left over (`lm_topk_tail`, f32);
//!   biased, since the tail's shape is lost.
//! - `sampled`: `draws` draws with replacement from the distribution at temperature 1, stored as
//!   sorted unique ids (`lm_sampled_ids`, u32) and counts (`lm_sampled_counts`, u16);
//!   `counts / draws` is an unbiased estimate (Anshumann et al. 2025, "Sparse Logit Sampling").
//!
//! A forward pass returns the logits of every position of a text at once. On the CPU each text
//! is its own pass (texts in parallel), so its labels depend on nothing else; on a GPU texts
//! with equal token counts share passes (no padding) of up to `batch_tokens` tokens.
//!
//! Position `t` of every list belongs to token `t` of `lm_token_ids`. The draws of a row are
//! seeded by the pipeline seed, the stage id and the row id, so the output does not depend on
//! threads, batch size or sharding. The manifest counts the positions (`lm_positions`) and the
//! bytes the labels take (`lm_label_bytes`, ids and values as stored, before compression).

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, Float16Builder, Float32Builder, ListBuilder, StringArray, UInt16Builder,
    UInt32Builder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use rand::SeedableRng;
use rayon::prelude::*;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::augment::adapter::reject_null_row;
use crate::batch::{col, Batch};
use crate::error::{Error, Result};
use crate::lm::causal::CausalLm;
use crate::lm::resolve::{load_stage_lm, StageLm};
use crate::lm::soft_labels::{self, Sampled, TopK};
use crate::seed;
use crate::stage::kind::{keys_of, BuildContext, Built, Kind, Needs, Role};
use crate::stage::{Emit, StageContext, Transform};

/// Token ids of the text.
pub const TOKEN_IDS: &str = "lm_token_ids";
/// Top-k ids per position.
pub const TOPK_IDS: &str = "lm_topk_ids";
/// Top-k log-probabilities per position.
pub const TOPK_LOGPROBS: &str = "lm_topk_logprobs";
/// Log of the probability outside the top k, per position.
pub const TOPK_TAIL: &str = "lm_topk_tail";
/// Sampled unique ids per position.
pub const SAMPLED_IDS: &str = "lm_sampled_ids";
/// Counts of the sampled ids per position.
pub const SAMPLED_COUNTS: &str = "lm_sampled_counts";

/// How the teacher's distribution is stored.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// The k most probable ids with log-probabilities and the tail mass (biased).
    TopK,
    /// Unique ids and counts of N draws (unbiased).
    Sampled,
}

fn default_mode() -> Mode {
    Mode::Sampled
}
fn default_k() -> usize {
    16
}
fn default_draws() -> u16 {
    50
}
fn default_max_tokens() -> usize {
    256
}

/// Configuration of `lm_teacher`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LmTeacherConfig {
    /// The teacher: a GGUF file of llama architecture, or a Hugging Face folder of llama or
    /// qwen2 architecture (default: SmolLM2-135M-Instruct from
    /// the asset folder, fetched by `make assets`).
    #[serde(default)]
    pub model: Option<String>,
    /// `sampled` (unbiased, the default) or `top_k`.
    #[serde(default = "default_mode")]
    pub mode: Mode,
    /// Ids kept per position in `top_k` mode.
    #[serde(default = "default_k")]
    pub k: usize,
    /// Draws per position in `sampled` mode.
    #[serde(default = "default_draws")]
    pub draws: u16,
    /// Tokens labelled per text at most; longer texts keep their first `max_tokens` tokens
    /// (counted as `lm_truncated` in the manifest).
    #[serde(default = "default_max_tokens")]
    pub max_tokens: usize,
    /// Tokens per forward pass at most (rows × tokens; rows of one length share a pass, whose
    /// logits take `batch_tokens × vocabulary × 4` bytes). Default on a GPU: 4,096. The CPU
    /// runs one row per pass unless this is set: batching is then about 1.5 times faster, but
    /// a row's logits can move in their last bits with the rows beside it.
    #[serde(default)]
    pub batch_tokens: Option<usize>,
}

/// The registry entry.
pub static KIND: Kind<LmTeacherConfig> = Kind {
    name: "lm_teacher",
    role: Role::Transform,
    summary: "Add a causal LM's per-token soft labels (sampled ids + counts, or top-k + tail) for language-model distillation",
    needs: Needs {
        models: true,
        lm_asset: true,
        ..Needs::NOTHING
    },
    example: r#"mode = "sampled"
draws = 50
max_tokens = 8"#,
    parse: |t| {
        let cfg: LmTeacherConfig = crate::stage::kind::parse_table(t)?;
        if cfg.k == 0 || cfg.draws == 0 || cfg.max_tokens == 0 || cfg.batch_tokens == Some(0) {
            return Err("`k`, `draws`, `max_tokens` and `batch_tokens` must be at least 1".into());
        }
        for (key, value, most) in [
            ("k", cfg.k, MAX_K),
            ("max_tokens", cfg.max_tokens, MAX_TOKENS),
            ("batch_tokens", cfg.batch_tokens.unwrap_or(1), MAX_BATCH_TOKENS),
        ] {
            if value > most {
                return Err(format!("`{key}` is {value}; at most {most} is allowed"));
            }
        }
        Ok(cfg)
    },
    keys: keys_of::<LmTeacherConfig>,
    build: |cfg, cx| Ok(Built::Transform(Box::new(LmTeacher::new(cfg, cx)?))),
    config: std::marker::PhantomData,
};

/// Most ids per position in top-k labels.
pub const MAX_K: usize = 4096;
/// Most tokens labelled per text (SmolLM2's context is 8,192 tokens).
pub const MAX_TOKENS: usize = 8192;
/// Most tokens per forward pass.
pub const MAX_BATCH_TOKENS: usize = 1 << 20;

/// The labels of one text.
enum Labels {
    TopK(Vec<TopK>),
    Sampled(Vec<Sampled>),
}

/// One text's token ids, labels, and whether it was cut at `max_tokens`.
type Labelled = (Vec<u32>, Labels, bool);

/// One text's token ids (cut at `max_tokens`), the model's input (the start token and every
/// id but the last), and whether it was cut.
struct Tokenized {
    ids: Vec<u32>,
    input: Vec<u32>,
    truncated: bool,
}

/// The stage.
pub struct LmTeacher {
    cfg: LmTeacherConfig,
    lm: CausalLm,
    batch_tokens: usize,
    /// One row per forward pass (on the CPU), for labels independent of the batching.
    per_row: bool,
    description: serde_json::Value,
    stage_seed: u64,
    /// The model file or folder, for the run fingerprint.
    path: std::path::PathBuf,
}

impl LmTeacher {
    /// Loads the model.
    pub fn new(cfg: LmTeacherConfig, cx: &BuildContext<'_>) -> Result<Self> {
        let ctx = |e: Error| e.context(format!("stage `{}`", cx.stage));
        let StageLm { path, lm, compute } = load_stage_lm(cfg.model.as_deref(), cx)?;
        if cfg.max_tokens > lm.max_positions() {
            return Err(ctx(Error::user(format!(
                "`max_tokens = {}` exceeds the model's context of {} positions",
                cfg.max_tokens,
                lm.max_positions()
            ))));
        }
        let batch_tokens = cfg.batch_tokens.unwrap_or(4096);
        let per_row = compute.device.is_cpu() && cfg.batch_tokens.is_none();
        if lm.start_id().is_none() {
            return Err(ctx(Error::user(format!(
                "`{}` names no start or end token to begin a text with",
                path.display()
            ))));
        }
        let description = serde_json::json!({
            "model": path.file_name().map(|n| n.to_string_lossy().into_owned()),
            "vocab_size": lm.tokenizer.get_vocab_size(true),
            "start_token": lm.start_id(),
            "mode": match cfg.mode { Mode::TopK => "top_k", Mode::Sampled => "sampled" },
            "k": (cfg.mode == Mode::TopK).then_some(cfg.k),
            "draws": (cfg.mode == Mode::Sampled).then_some(cfg.draws),
            "temperature": 1.0,
            "position": "list position t holds the distribution of token t given the start token and tokens before t",
        });
        Ok(LmTeacher {
            stage_seed: cx.stage_seed(),
            cfg,
            lm,
            batch_tokens,
            per_row,
            description,
            path,
        })
    }

    fn fields(&self) -> Vec<Field> {
        let list = |item: DataType| DataType::List(Arc::new(Field::new("item", item, false)));
        let nested = |item: DataType| list(list(item));
        let mut fields = vec![Field::new(TOKEN_IDS, list(DataType::UInt32), true)];
        match self.cfg.mode {
            Mode::TopK => {
                fields.push(Field::new(TOPK_IDS, nested(DataType::UInt32), true));
                fields.push(Field::new(TOPK_LOGPROBS, nested(DataType::Float16), true));
                fields.push(Field::new(TOPK_TAIL, list(DataType::Float32), true));
            }
            Mode::Sampled => {
                fields.push(Field::new(SAMPLED_IDS, nested(DataType::UInt32), true));
                fields.push(Field::new(SAMPLED_COUNTS, nested(DataType::UInt16), true));
            }
        }
        fields
    }

    /// Token ids of one text, cut at `max_tokens`, and the model's input for them.
    fn tokenize(&self, text: &str, id: &str) -> Result<Tokenized> {
        let enc = self
            .lm
            .tokenizer
            .encode(text, false)
            .map_err(|e| Error::runtime(format!("cannot tokenize row `{id}`: {e}")))?;
        let mut ids = enc.get_ids().to_vec();
        let truncated = ids.len() > self.cfg.max_tokens;
        ids.truncate(self.cfg.max_tokens);
        let mut input = Vec::with_capacity(ids.len());
        if !ids.is_empty() {
            input.extend(self.lm.start_id());
            input.extend_from_slice(&ids[..ids.len() - 1]);
        }
        Ok(Tokenized {
            ids,
            input,
            truncated,
        })
    }

    /// Labels of one text from its logits (`positions × vocab`, row-major).
    fn labels(&self, logits: &[f32], id: &str) -> Labels {
        let rows = logits.chunks(self.lm.vocab());
        match self.cfg.mode {
            Mode::TopK => Labels::TopK(rows.map(|l| soft_labels::top_k(l, self.cfg.k)).collect()),
            Mode::Sampled => {
                let mut rng =
                    rand_chacha::ChaCha8Rng::seed_from_u64(seed::row_seed(self.stage_seed, id));
                Labels::Sampled(
                    rows.map(|l| soft_labels::sample(l, self.cfg.draws, &mut rng))
                        .collect(),
                )
            }
        }
    }

    /// Labels every tokenized row. On the CPU each row is its own forward pass, rows in
    /// parallel on clones of the model, so a row's labels depend on nothing but the row. On a
    /// GPU rows of one input length share forward passes of at most `batch_tokens` tokens,
    /// and each pass's logits are turned into labels on the thread pool.
    fn label_all(
        &mut self,
        rows: &[(usize, Tokenized)],
        ids: &StringArray,
        pool: &rayon::ThreadPool,
    ) -> Vec<Result<Labels>> {
        if self.per_row {
            let this = &*self;
            return pool.install(|| {
                rows.par_iter()
                    .with_max_len(1)
                    .map_init(
                        || this.lm.clone(),
                        |lm, (i, t)| {
                            let logits = if t.input.is_empty() {
                                Vec::new()
                            } else {
                                lm.score(&[&t.input])?
                            };
                            Ok(this.labels(&logits, ids.value(*i)))
                        },
                    )
                    .collect()
            });
        }
        let mut out: Vec<Option<Result<Labels>>> = (0..rows.len()).map(|_| None).collect();
        let mut by_length: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
        for (k, (_, t)) in rows.iter().enumerate() {
            if t.input.is_empty() {
                out[k] = Some(Ok(self.labels(&[], "")));
            } else {
                by_length.entry(t.input.len()).or_default().push(k);
            }
        }
        for (len, members) in by_length {
            for pass in members.chunks((self.batch_tokens / len).max(1)) {
                let inputs: Vec<&[u32]> =
                    pass.iter().map(|&k| rows[k].1.input.as_slice()).collect();
                // candle's CPU kernels run on the pool of the thread that calls them.
                match pool.install(|| self.lm.score(&inputs)) {
                    Ok(logits) => {
                        let this = &*self;
                        let row_len = len * this.lm.vocab();
                        let labels: Vec<Labels> = pool.install(|| {
                            pass.par_iter()
                                .zip(logits.par_chunks(row_len))
                                .map(|(&k, l)| this.labels(l, ids.value(rows[k].0)))
                                .collect()
                        });
                        for (&k, l) in pass.iter().zip(labels) {
                            out[k] = Some(Ok(l));
                        }
                    }
                    Err(e) => {
                        for &k in pass {
                            out[k] = Some(Err(Error::runtime(format!(
                                "the forward pass of {} rows of {len} tokens failed: {e}",
                                pass.len()
                            ))));
                        }
                    }
                }
            }
        }
        out.into_iter()
            .map(|o| o.expect("every row is labelled"))
            .collect()
    }
}

impl Transform for LmTeacher {
    fn model_paths(&self) -> Vec<std::path::PathBuf> {
        vec![self.path.clone()]
    }

    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef> {
        match input.field_with_name(col::TEXT) {
            Ok(f) if f.data_type() == &DataType::Utf8 => {}
            _ => {
                return Err(Error::user("needs a string column `text`")
                    .with_hint("read the corpus with a `parquet_source` stage"))
            }
        }
        let ours = self.fields();
        let mut fields: Vec<Field> = input
            .fields()
            .iter()
            .filter(|f| !ours.iter().any(|o| o.name() == f.name()))
            .map(|f| f.as_ref().clone())
            .collect();
        fields.extend(ours);
        let mut metadata = input.metadata().clone();
        metadata.insert(
            "retort.lm_teacher".to_string(),
            self.description.to_string(),
        );
        Ok(Arc::new(Schema::new_with_metadata(fields, metadata)))
    }

    fn process(&mut self, batch: &Batch, out: &mut Emit, cx: &mut StageContext) -> Result<()> {
        let data = &batch.data;
        let n = data.num_rows();
        let strings = |name: &str| {
            data.column_by_name(name)
                .and_then(|c| c.as_any().downcast_ref::<StringArray>())
                .ok_or_else(|| Error::runtime(format!("column `{name}` is missing")))
        };
        let text = strings(col::TEXT)?;
        let ids = strings(col::ID)?;
        let results = self.label_batch(text, ids, cx);
        let mut keep = Vec::with_capacity(n);
        let mut columns = LabelColumns::new();
        cx.tally().rows_in += n as u64;
        for (i, r) in results.into_iter().enumerate() {
            let (tokens, labels, truncated) = match r {
                None => {
                    reject_null_row(ids, i, cx);
                    continue;
                }
                Some(Err(e)) => {
                    let id = ids.is_valid(i).then(|| ids.value(i).to_string());
                    let text = Some(text.value(i).to_string());
                    cx.reject("lm_teacher_failed", e.to_string(), id, text);
                    continue;
                }
                Some(Ok(x)) => x,
            };
            keep.push(i as u32);
            columns.push(&tokens, labels, truncated);
            *cx.tally().rows_out.entry(op_of(data, i)).or_default() += 1;
            cx.tally().rows_unchanged += 1;
        }
        let (positions, bytes, truncated_rows) =
            (columns.positions, columns.bytes, columns.truncated_rows);
        out.push(self.output_batch(data, columns.finish(self.cfg.mode), keep)?);
        let counters = &mut cx.tally().counters;
        *counters.entry("lm_positions".into()).or_default() += positions;
        *counters.entry("lm_label_bytes".into()).or_default() += bytes;
        if truncated_rows > 0 {
            *counters.entry("lm_truncated".into()).or_default() += truncated_rows;
        }
        Ok(())
    }
}

impl LmTeacher {
    /// Tokenizes (in parallel) and labels every row; `None` for rows with a null text or id.
    fn label_batch(
        &mut self,
        text: &StringArray,
        ids: &StringArray,
        cx: &StageContext,
    ) -> Vec<Option<Result<Labelled>>> {
        let n = text.len();
        let this = &*self;
        let tokenized: Vec<Option<Result<Tokenized>>> = cx.pool.install(|| {
            (0..n)
                .into_par_iter()
                .map(|i| {
                    (text.is_valid(i) && ids.is_valid(i))
                        .then(|| this.tokenize(text.value(i), ids.value(i)))
                })
                .collect()
        });
        let mut results: Vec<Option<Result<Labelled>>> = (0..n).map(|_| None).collect();
        let mut ready = Vec::new();
        for (i, t) in tokenized.into_iter().enumerate() {
            match t {
                None => {}
                Some(Err(e)) => results[i] = Some(Err(e)),
                Some(Ok(t)) => ready.push((i, t)),
            }
        }
        let labels = self.label_all(&ready, ids, &cx.pool);
        for ((i, t), l) in ready.into_iter().zip(labels) {
            results[i] = Some(l.map(|l| (t.ids, l, t.truncated)));
        }
        results
    }

    /// The output batch: the kept input rows (`keep`) with our columns (`ours`) in place.
    fn output_batch(
        &self,
        data: &RecordBatch,
        ours: Vec<(&str, ArrayRef)>,
        keep: Vec<u32>,
    ) -> Result<RecordBatch> {
        let take = arrow::array::UInt32Array::from(keep);
        let mut columns: Vec<ArrayRef> = Vec::new();
        let schema = self.output_schema(&data.schema())?;
        for f in schema.fields() {
            match ours.iter().find(|(name, _)| name == f.name()) {
                Some((_, c)) => columns.push(c.clone()),
                None => {
                    let c = data.column_by_name(f.name()).ok_or_else(|| {
                        Error::runtime(format!("column `{}` is missing", f.name()))
                    })?;
                    columns.push(arrow::compute::take(c.as_ref(), &take, None)?);
                }
            }
        }
        Ok(RecordBatch::try_new(schema, columns)?)
    }
}

/// Builders of the label columns of a batch, and its counters.
struct LabelColumns {
    tokens: ListBuilder<UInt32Builder>,
    ids: ListBuilder<ListBuilder<UInt32Builder>>,
    logp: ListBuilder<ListBuilder<Float16Builder>>,
    tail: ListBuilder<Float32Builder>,
    counts: ListBuilder<ListBuilder<UInt16Builder>>,
    /// Labelled positions.
    positions: u64,
    /// Approximate bytes of labels.
    bytes: u64,
    /// Rows cut at `max_tokens`.
    truncated_rows: u64,
}

impl LabelColumns {
    /// Empty builders with non-null items.
    fn new() -> Self {
        let inner = |t: DataType| Arc::new(Field::new("item", t, false));
        LabelColumns {
            tokens: ListBuilder::new(UInt32Builder::new()).with_field(Arc::new(Field::new(
                "item",
                DataType::UInt32,
                false,
            ))),
            ids: ListBuilder::new(
                ListBuilder::new(UInt32Builder::new()).with_field(inner(DataType::UInt32)),
            )
            .with_field(inner(DataType::List(inner(DataType::UInt32)))),
            logp: ListBuilder::new(
                ListBuilder::new(Float16Builder::new()).with_field(inner(DataType::Float16)),
            )
            .with_field(inner(DataType::List(inner(DataType::Float16)))),
            tail: ListBuilder::new(Float32Builder::new()).with_field(inner(DataType::Float32)),
            counts: ListBuilder::new(
                ListBuilder::new(UInt16Builder::new()).with_field(inner(DataType::UInt16)),
            )
            .with_field(inner(DataType::List(inner(DataType::UInt16)))),
            positions: 0,
            bytes: 0,
            truncated_rows: 0,
        }
    }

    /// Appends one row's tokens and labels.
    fn push(&mut self, tokens: &[u32], labels: Labels, truncated: bool) {
        self.truncated_rows += u64::from(truncated);
        self.positions += tokens.len() as u64;
        self.tokens.values().append_slice(tokens);
        self.tokens.append(true);
        match labels {
            Labels::TopK(rows) => {
                for t in &rows {
                    self.ids.values().values().append_slice(&t.ids);
                    self.ids.values().append(true);
                    for &v in &t.logprobs {
                        self.logp
                            .values()
                            .values()
                            .append_value(half::f16::from_f32(v));
                    }
                    self.logp.values().append(true);
                    self.tail.values().append_value(t.tail_logmass);
                    self.bytes += (t.ids.len() * 6 + 4) as u64;
                }
                self.ids.append(true);
                self.logp.append(true);
                self.tail.append(true);
            }
            Labels::Sampled(rows) => {
                for s in &rows {
                    self.ids.values().values().append_slice(&s.ids);
                    self.ids.values().append(true);
                    self.counts.values().values().append_slice(&s.counts);
                    self.counts.values().append(true);
                    self.bytes += soft_labels::sampled_bytes_per_token(s.ids.len() as f64) as u64;
                }
                self.ids.append(true);
                self.counts.append(true);
            }
        }
    }

    /// The finished columns of `mode`, by name.
    fn finish(mut self, mode: Mode) -> Vec<(&'static str, ArrayRef)> {
        let mut ours: Vec<(&str, ArrayRef)> = vec![(TOKEN_IDS, Arc::new(self.tokens.finish()))];
        match mode {
            Mode::TopK => {
                ours.push((TOPK_IDS, Arc::new(self.ids.finish())));
                ours.push((TOPK_LOGPROBS, Arc::new(self.logp.finish())));
                ours.push((TOPK_TAIL, Arc::new(self.tail.finish())));
            }
            Mode::Sampled => {
                ours.push((SAMPLED_IDS, Arc::new(self.ids.finish())));
                ours.push((SAMPLED_COUNTS, Arc::new(self.counts.finish())));
            }
        }
        ours
    }
}

fn op_of(data: &RecordBatch, i: usize) -> String {
    data.column_by_name(col::OP)
        .and_then(|c| c.as_any().downcast_ref::<StringArray>())
        .filter(|c| c.is_valid(i))
        .map(|c| c.value(i).to_string())
        .unwrap_or_default()
}
