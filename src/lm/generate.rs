//! `generate` stage: teacher-generated pseudo-data. A causal LM (SmolLM2 by default) writes new
//! examples from label-conditioned few-shot prompts; the outputs are cleaned, screened for
//! empties, duplicates and near-copies of their examples, and (with a `teacher`) kept only when
//! a classifier teacher agrees with the asked-for label confidently enough.
//!
//! Every input row passes through unchanged. The new rows (`op = pseudo`) come after the last
//! input batch, because their few-shot examples are drawn from the whole corpus: per class,
//! the `pool_size` original rows with the smallest seeded hash of their id, so the pool does
//! not depend on batch size, thread count or input order. Prompt `j` asks for class
//! `j mod classes`, draws its examples from that pool with its own seed, and is sampled with
//! that seed, so each output depends only on the pipeline seed, the stage id and `j`.

use std::collections::{BTreeMap, HashSet};

use arrow::array::{Array, StringArray};
use arrow::datatypes::{DataType, SchemaRef};
use rand::SeedableRng;
use rayon::prelude::*;
use schemars::JsonSchema;
use serde::Deserialize;
use xxhash_rust::xxh3::xxh3_64_with_seed;

use crate::batch::{col, count_ops, Batch, OP_ORIG};
use crate::distill::metrics::softmax;
use crate::distill::teacher::{Folders, Teacher};
use crate::error::{Error, Result};
use crate::lm::causal::{CausalLm, Generated, Sampling};
use crate::lm::pseudo;
use crate::lm::resolve::{load_stage_lm, StageLm};
use crate::seed;
use crate::stage::kind::{keys_of, BuildContext, Built, Kind, Needs, Role};
use crate::stage::{Emit, StageContext, Transform};

mod rows;

/// The `op` of generated rows.
pub const OP_PSEUDO: &str = "pseudo";

fn default_prompts() -> usize {
    16
}
fn default_shots() -> usize {
    3
}
fn default_pool() -> usize {
    64
}
fn default_template() -> String {
    pseudo::DEFAULT_TEMPLATE.into()
}
fn default_task() -> String {
    "text classification".into()
}
fn default_prefix() -> String {
    "- ".into()
}
fn default_temperature() -> f64 {
    0.8
}
fn default_top_p() -> f64 {
    0.95
}
fn default_max_new() -> usize {
    48
}
fn default_confidence() -> f64 {
    0.5
}
fn default_true() -> bool {
    true
}
fn default_min_words() -> usize {
    3
}
fn default_overlap() -> f64 {
    0.7
}

/// Configuration of `generate`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GenerateConfig {
    /// The causal LM: a GGUF file of llama architecture, or a Hugging Face folder of llama or
    /// qwen2 architecture (default: SmolLM2-135M-Instruct from
    /// the asset folder, fetched by `make assets`).
    #[serde(default)]
    pub model: Option<String>,
    /// Prompts to run, one new text each; prompt `j` asks for class `j mod classes`.
    #[serde(default = "default_prompts")]
    pub prompts: usize,
    /// Few-shot examples per prompt, drawn from the input rows of the asked-for class.
    #[serde(default = "default_shots")]
    pub shots: usize,
    /// Original rows per class the examples are drawn from (chosen by a seeded hash of the id).
    #[serde(default = "default_pool")]
    pub pool_size: usize,
    /// The prompt, with placeholders `{label}`, `{task}` and `{examples}`; it is wrapped in the
    /// model's chat template.
    #[serde(default = "default_template")]
    pub template: String,
    /// What the corpus is, for `{task}` (e.g. `product review`).
    #[serde(default = "default_task")]
    pub task: String,
    /// Class names as the prompt says them (default: the corpus's `label_names` metadata, or
    /// the label values). With integer labels, name `i` is label `i`.
    #[serde(default)]
    pub labels: Option<Vec<String>>,
    /// Text the model's reply starts with (written into the prompt after the assistant turn
    /// opens); the default `- ` makes a small model continue the list of examples instead of
    /// chatting about it.
    #[serde(default = "default_prefix")]
    pub reply_prefix: String,
    /// Sampling temperature (0: greedy).
    #[serde(default = "default_temperature")]
    pub temperature: f64,
    /// Nucleus sampling threshold.
    #[serde(default = "default_top_p")]
    pub top_p: f64,
    /// Tokens to generate at most per prompt.
    #[serde(default = "default_max_new")]
    pub max_new_tokens: usize,
    /// A classifier teacher (model folder, or a list for an ensemble) that labels each new
    /// text; without one, nothing is filtered by label.
    #[serde(default)]
    pub teacher: Option<Folders>,
    /// Drop a new text when the teacher's top probability is below this.
    #[serde(default = "default_confidence")]
    pub min_confidence: f64,
    /// Drop a new text when the teacher's top class is not the one the prompt asked for.
    #[serde(default = "default_true")]
    pub require_agreement: bool,
    /// Drop a new text with fewer words than this.
    #[serde(default = "default_min_words")]
    pub min_words: usize,
    /// Drop a new text whose word overlap (Jaccard) with one of its examples reaches this.
    #[serde(default = "default_overlap")]
    pub max_overlap: f64,
}

/// The registry entry.
pub static KIND: Kind<GenerateConfig> = Kind {
    name: "generate",
    role: Role::Transform,
    summary: "Write new labelled examples with a causal LM from few-shot prompts (op = pseudo); a teacher keeps the confident, agreeing ones",
    needs: Needs {
        models: true,
        lm_asset: true,
        ..Needs::NOTHING
    },
    example: r#"prompts = 4
shots = 3
task = "product review"
temperature = 0.8
max_new_tokens = 24
teacher = "${teacher}"
min_confidence = 0.5"#,
    parse: parse_config,
    keys: keys_of::<GenerateConfig>,
    build: |cfg, cx| Ok(Built::Transform(Box::new(GenerateStage::new(cfg, cx)?))),
    config: std::marker::PhantomData,
};

/// Most prompts one `generate` stage runs (each keeps its prompt and text in memory).
pub const MAX_PROMPTS: usize = 1_000_000;
/// Most few-shot examples per prompt.
pub const MAX_SHOTS: usize = 64;
/// Most original rows per class the examples are drawn from.
pub const MAX_POOL_SIZE: usize = 100_000;
/// Most new tokens per prompt (SmolLM2's context is 8,192 tokens).
pub const MAX_NEW_TOKENS: usize = 4096;

fn parse_config(t: &toml::Table) -> std::result::Result<GenerateConfig, String> {
    let cfg: GenerateConfig = crate::stage::kind::parse_table(t)?;
    pseudo::check_template(&cfg.template)?;
    if !(cfg.temperature >= 0.0 && cfg.temperature.is_finite()) {
        return Err("`temperature` must be 0 or more".into());
    }
    if !(cfg.top_p > 0.0 && cfg.top_p <= 1.0) {
        return Err("`top_p` must be in (0, 1]".into());
    }
    if !(0.0..=1.0).contains(&cfg.min_confidence) || !(0.0..=1.0).contains(&cfg.max_overlap) {
        return Err("`min_confidence` and `max_overlap` must be in [0, 1]".into());
    }
    if cfg.max_new_tokens == 0 || cfg.pool_size == 0 {
        return Err("`max_new_tokens` and `pool_size` must be at least 1".into());
    }
    for (key, value, most) in [
        ("prompts", cfg.prompts, MAX_PROMPTS),
        ("shots", cfg.shots, MAX_SHOTS),
        ("pool_size", cfg.pool_size, MAX_POOL_SIZE),
        ("max_new_tokens", cfg.max_new_tokens, MAX_NEW_TOKENS),
    ] {
        if value > most {
            return Err(format!(
                "`{key}` is {value}; at most {most} is allowed (split the work over several stages or runs)"
            ));
        }
    }
    if cfg.shots > cfg.pool_size {
        return Err(format!(
            "`shots` = {} is more than `pool_size` = {}",
            cfg.shots, cfg.pool_size
        ));
    }
    Ok(cfg)
}

/// One pool entry: an original row that can serve as a few-shot example.
#[derive(Debug, Clone)]
struct Example {
    rank: u64,
    id: String,
    text: String,
}

/// The teacher's top class and its probability, when there is a teacher.
type Verdict = Option<(usize, f64)>;

/// One prompt and what became of it.
struct Attempt {
    class: usize,
    seed: u64,
    shots: Vec<Example>,
    prompt: String,
}

/// The stage.
pub struct GenerateStage {
    cfg: GenerateConfig,
    lm: CausalLm,
    model_name: String,
    teacher: Option<Teacher>,
    stage: String,
    stage_seed: u64,
    /// Label names from the corpus metadata, when it has them.
    metadata_names: Option<Vec<String>>,
    /// Whether the label column holds integers.
    integer_labels: bool,
    /// Candidate examples by label value (as text), best-ranked first after `finish` sorts.
    pool: BTreeMap<String, Vec<Example>>,
    /// Fingerprints of every input text, so copies of them are dropped.
    input_texts: HashSet<u64>,
    schema: Option<SchemaRef>,
    /// The LM and the teacher folders, for the run fingerprint.
    model_paths: Vec<std::path::PathBuf>,
}

impl GenerateStage {
    /// Loads the LM (and the teacher); refuses sharded runs.
    pub fn new(cfg: GenerateConfig, cx: &BuildContext<'_>) -> Result<Self> {
        let ctx = |e: Error| e.context(format!("stage `{}`", cx.stage));
        if cx.settings.shard.is_some() {
            return Err(ctx(Error::user(
                "`generate` cannot run on one shard: its few-shot examples come from the whole corpus",
            )
            .with_hint("run the `generate` pipeline unsharded, then shard the stages after it")));
        }
        let StageLm { path, lm, compute } = load_stage_lm(cfg.model.as_deref(), cx)?;
        let teacher = match &cfg.teacher {
            Some(f) => Some(Teacher::load(&f.list(), &compute).map_err(ctx)?),
            None => None,
        };
        let mut model_paths = vec![path.clone()];
        if let Some(f) = &cfg.teacher {
            model_paths.extend(f.list().into_iter().map(std::path::PathBuf::from));
        }
        Ok(GenerateStage {
            model_paths,
            model_name: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            lm,
            teacher,
            stage: cx.stage.to_string(),
            stage_seed: cx.stage_seed(),
            metadata_names: None,
            integer_labels: true,
            pool: BTreeMap::new(),
            input_texts: HashSet::new(),
            schema: None,
            cfg,
        })
    }

    /// The classes in order: (label value as text, name in the prompt).
    fn classes(&self) -> Result<Vec<(String, String)>> {
        let names = self.cfg.labels.clone().or(self.metadata_names.clone());
        let classes: Vec<(String, String)> = match names {
            Some(names) if self.integer_labels => names
                .into_iter()
                .enumerate()
                .map(|(i, n)| (i.to_string(), n))
                .collect(),
            Some(names) => names.into_iter().map(|n| (n.clone(), n)).collect(),
            None => {
                let mut keys: Vec<String> = self.pool.keys().cloned().collect();
                if self.integer_labels {
                    keys.sort_by_key(|k| k.parse::<i64>().unwrap_or(i64::MAX));
                }
                keys.into_iter().map(|k| (k.clone(), k)).collect()
            }
        };
        if classes.is_empty() {
            return Err(Error::user(
                "no labelled input rows and no `labels`: there is no class to ask for",
            )
            .with_hint("give the corpus a `label` column, or list the classes in `labels`"));
        }
        if let Some(t) = &self.teacher {
            let names: Vec<String> = classes.iter().map(|c| c.1.clone()).collect();
            if t.label_names != names {
                return Err(Error::user(format!(
                    "the prompts ask for classes {names:?} but the teacher predicts {:?}",
                    t.label_names
                ))
                .with_hint("set `labels` to the teacher's class names, in its order"));
            }
        }
        Ok(classes)
    }

    /// Builds prompt `j`.
    fn attempt(&self, j: usize, classes: &[(String, String)]) -> Attempt {
        let class = j % classes.len();
        let seed = seed::copy_seed(self.stage_seed, j as u32);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let empty = Vec::new();
        let pool = self.pool.get(&classes[class].0).unwrap_or(&empty);
        let k = self.cfg.shots.min(pool.len());
        let mut picked = rand::seq::index::sample(&mut rng, pool.len(), k).into_vec();
        picked.sort_unstable();
        let shots: Vec<Example> = picked.into_iter().map(|i| pool[i].clone()).collect();
        let texts: Vec<&str> = shots.iter().map(|e| e.text.as_str()).collect();
        let user = pseudo::render_prompt(
            &self.cfg.template,
            &classes[class].1,
            &self.cfg.task,
            &texts,
        );
        Attempt {
            class,
            seed,
            shots,
            prompt: format!("{}{}", self.lm.chat_prompt(&user), self.cfg.reply_prefix),
        }
    }
}

fn label_key(column: &dyn Array, i: usize) -> Option<String> {
    if column.is_null(i) {
        return None;
    }
    let one = column.slice(i, 1);
    let text = arrow::compute::cast(&one, &DataType::Utf8).ok()?;
    let text = text.as_any().downcast_ref::<StringArray>()?;
    Some(text.value(0).to_string())
}

impl Transform for GenerateStage {
    fn model_paths(&self) -> Vec<std::path::PathBuf> {
        self.model_paths.clone()
    }

    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef> {
        crate::augment::adapter::check_augment_input(input)?;
        if input.field_with_name(col::LABEL).is_err() && self.cfg.labels.is_none() {
            return Err(Error::user(
                "needs a `label` column to ask for each class, and its input has none",
            )
            .with_hint("read a labelled corpus, or list the classes in `labels`"));
        }
        Ok(input.clone())
    }

    fn needs_every_batch(&self) -> bool {
        true
    }

    fn process(&mut self, batch: &Batch, out: &mut Emit, cx: &mut StageContext) -> Result<()> {
        let data = &batch.data;
        let schema = data.schema();
        if self.schema.is_none() {
            self.metadata_names = schema
                .metadata()
                .get("label_names")
                .and_then(|v| crate::distill::data::parse_label_names(v))
                .filter(|n| !n.is_empty());
            self.integer_labels = schema
                .field_with_name(col::LABEL)
                .map(|f| f.data_type().is_integer())
                .unwrap_or(true);
            self.schema = Some(schema.clone());
        }
        let n = data.num_rows();
        let t = cx.tally();
        t.rows_in += n as u64;
        t.rows_unchanged += n as u64;
        for (op, k) in count_ops(data) {
            *t.rows_out.entry(op).or_default() += k;
        }
        out.push(data.clone());

        let strings = |name: &str| {
            data.column_by_name(name)
                .and_then(|c| c.as_any().downcast_ref::<StringArray>())
        };
        let (Some(text), Some(ids)) = (strings(col::TEXT), strings(col::ID)) else {
            return Ok(());
        };
        let ops = strings(col::OP);
        let labels = data.column_by_name(col::LABEL);
        for i in 0..n {
            if text.is_valid(i) {
                self.input_texts.insert(pseudo::fingerprint(text.value(i)));
            }
            if text.is_null(i) || ids.is_null(i) || text.value(i).trim().is_empty() {
                continue;
            }
            if ops.is_some_and(|o| o.is_valid(i) && o.value(i) != OP_ORIG) {
                continue;
            }
            let Some(key) = labels.and_then(|l| label_key(l.as_ref(), i)) else {
                continue;
            };
            let list = self.pool.entry(key).or_default();
            list.push(Example {
                rank: xxh3_64_with_seed(ids.value(i).as_bytes(), self.stage_seed),
                id: ids.value(i).to_string(),
                text: text.value(i).to_string(),
            });
            if list.len() >= 2 * self.cfg.pool_size {
                list.sort_by(|a, b| a.rank.cmp(&b.rank).then(a.id.cmp(&b.id)));
                list.truncate(self.cfg.pool_size);
            }
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Emit, cx: &mut StageContext) -> Result<()> {
        let Some(schema) = self.schema.clone() else {
            return Ok(());
        };
        for list in self.pool.values_mut() {
            list.sort_by(|a, b| a.rank.cmp(&b.rank).then(a.id.cmp(&b.id)));
            list.truncate(self.cfg.pool_size);
        }
        let classes = self.classes()?;
        let attempts: Vec<Attempt> = (0..self.cfg.prompts)
            .map(|j| self.attempt(j, &classes))
            .collect();
        let outputs = self.generate_all(&attempts, cx);
        let generated_tokens: u64 = outputs
            .iter()
            .flatten()
            .map(|g| g.tokens.len() as u64)
            .sum();
        let mut dropped: BTreeMap<String, u64> = BTreeMap::new();
        let kept = self.screen(&attempts, outputs, &mut dropped);
        let rows = self.judge(kept, &attempts, &mut dropped)?;
        let n = rows.len();
        out.push(self.new_rows(schema, &rows, &attempts, &classes)?);
        let t = cx.tally();
        t.rows_out.insert(OP_PSEUDO.into(), n as u64);
        t.generated_dropped = dropped;
        *t.counters.entry("generated_tokens".into()).or_default() += generated_tokens;
        Ok(())
    }
}

/// A screened generation: prompt number, cleaned text, whether the model ended it.
type Kept = (usize, String, bool);

/// A new row: a screened generation and the teacher's verdict on it.
type NewRow = (usize, String, bool, Verdict);

impl GenerateStage {
    /// Runs every prompt, in parallel on clones of the model, with a progress bar.
    fn generate_all(&self, attempts: &[Attempt], cx: &StageContext) -> Vec<Result<Generated>> {
        let sampling = Sampling {
            temperature: self.cfg.temperature,
            top_p: self.cfg.top_p,
            max_new_tokens: self.cfg.max_new_tokens,
            one_line: true,
        };
        let bar = crate::progress::bar(attempts.len() as u64, "texts generated", true);
        let lm = &self.lm;
        let outputs: Vec<Result<Generated>> = cx.pool.install(|| {
            attempts
                .par_iter()
                .with_max_len(1)
                .map_init(
                    || lm.clone(),
                    |m, a| {
                        let r = m.generate(&a.prompt, sampling, a.seed);
                        bar.inc(1);
                        r
                    },
                )
                .collect()
        });
        bar.finish_and_clear();
        outputs
    }

    /// Cleans and screens the generations, in prompt order; counts what is dropped and why.
    fn screen(
        &mut self,
        attempts: &[Attempt],
        outputs: Vec<Result<Generated>>,
        dropped: &mut BTreeMap<String, u64>,
    ) -> Vec<Kept> {
        let mut seen = std::mem::take(&mut self.input_texts);
        let mut kept: Vec<Kept> = Vec::new();
        for (j, (a, o)) in attempts.iter().zip(outputs).enumerate() {
            let g = match o {
                Ok(g) => g,
                Err(e) => {
                    eprintln!("warning: stage `{}`: prompt {j} failed: {e}", self.stage);
                    *dropped.entry("generation_failed".into()).or_default() += 1;
                    continue;
                }
            };
            let text = pseudo::clean(&g.text);
            let shots: Vec<&str> = a.shots.iter().map(|e| e.text.as_str()).collect();
            if !text.is_empty() && text.split_whitespace().count() < self.cfg.min_words {
                *dropped.entry("too_short".into()).or_default() += 1;
                continue;
            }
            match pseudo::screen(&text, &shots, self.cfg.max_overlap, &mut seen) {
                Some(reason) => *dropped.entry(reason.into()).or_default() += 1,
                None => kept.push((j, text, g.finished)),
            }
        }
        kept
    }

    /// The teacher's verdict on each kept text (none without a teacher); drops those it is
    /// not confident about or, with `require_agreement`, that it labels otherwise.
    fn judge(
        &self,
        kept: Vec<Kept>,
        attempts: &[Attempt],
        dropped: &mut BTreeMap<String, u64>,
    ) -> Result<Vec<NewRow>> {
        let mut verdicts: Vec<Verdict> = vec![None; kept.len()];
        if let Some(t) = &self.teacher {
            let texts: Vec<&str> = kept.iter().map(|k| k.1.as_str()).collect();
            for (logits, slot) in t.logits(&texts)?.into_iter().zip(verdicts.iter_mut()) {
                let p = softmax(&logits);
                let (best, conf) =
                    p.iter()
                        .enumerate()
                        .fold((0, f64::MIN), |b, (i, &v)| if v > b.1 { (i, v) } else { b });
                *slot = Some((best, conf));
            }
        }
        let mut rows: Vec<NewRow> = Vec::new();
        for ((j, text, finished), verdict) in kept.into_iter().zip(verdicts) {
            let class = attempts[j].class;
            if let Some((best, conf)) = verdict {
                if conf < self.cfg.min_confidence {
                    *dropped.entry("low_confidence".into()).or_default() += 1;
                    continue;
                }
                if self.cfg.require_agreement && best != class {
                    *dropped.entry("label_disagrees".into()).or_default() += 1;
                    continue;
                }
            }
            rows.push((j, text, finished, verdict));
        }
        Ok(rows)
    }
}
