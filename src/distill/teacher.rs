//! `teacher` stage: labels every row (original and augmented) with a teacher's logits, so
//! teacher and student see the same text. Several model folders form an ensemble: the mean of
//! their probabilities, stored as log-probabilities.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, FixedSizeListArray, Float32Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::batch::{col, Batch};
use crate::distill::crossfit::FoldAssignment;
use crate::distill::data::TEACHER_LOGITS;
use crate::error::{Error, Result};
use crate::models::device::Compute;
use crate::models::folder::Model;
use crate::models::infer::{BatchLimits, PassStats, Predictor};
use crate::stage::kind::{keys_of, parse_table, BuildContext, Built, Kind, Needs, Role};
use crate::stage::{Emit, StageContext, Transform};

/// One model folder or several.
#[derive(Debug, Clone, Deserialize, serde::Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Folders {
    /// A single teacher.
    One(String),
    /// An ensemble.
    Many(Vec<String>),
}

impl Folders {
    /// The folders, one or many.
    pub fn list(&self) -> Vec<String> {
        match self {
            Folders::One(s) => vec![s.clone()],
            Folders::Many(v) => v.clone(),
        }
    }
}

/// Configuration of `teacher`.
#[derive(Debug, Clone, Deserialize, serde::Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TeacherConfig {
    /// A model folder (`config.json`, `tokenizer.json`, `model.safetensors`, such as a
    /// checkpoint written by `retort train`), or a list of folders for an ensemble teacher.
    pub model: Folders,
    /// Most rows per forward pass (default 64 on the CPU, 512 on a GPU). Rows of similar
    /// token length share a pass, so padding stays small.
    #[serde(default)]
    pub batch_size: Option<usize>,
    /// Most padded tokens (rows × longest row) per forward pass, which bounds the memory a
    /// pass needs (default 8192 on the CPU, 65536 on a GPU). A longer row goes alone.
    #[serde(default)]
    pub batch_tokens: Option<usize>,
}

/// The registry entry.
pub static KIND: Kind<TeacherConfig> = Kind {
    name: "teacher",
    role: Role::Transform,
    summary: "Add teacher logits (`teacher_logits`, fixed_size_list<float32, C>) to every row; several models form an ensemble",
    needs: Needs {
        models: true,
        ..Needs::NOTHING
    },
    example: r#"model = "${teacher}"
batch_tokens = 8192"#,
    parse: parse_table::<TeacherConfig>,
    keys: keys_of::<TeacherConfig>,
    build: |cfg, cx| Ok(Built::Transform(Box::new(TeacherStage::new(cfg, cx)?))),
    config: std::marker::PhantomData,
};

/// One member of a teacher: a model folder, or a cross-fit folder's fold models (see
/// [`crate::distill::crossfit`]).
enum Member {
    /// A model (boxed: a predictor is large next to the fold list).
    Model(Box<Predictor>),
    /// Fold models and which rows each one may label.
    Folds {
        assignment: FoldAssignment,
        models: Vec<Predictor>,
    },
}

/// A row's id and parent id, which choose the fold model of a cross-fitted teacher.
pub type RowKey<'a> = (Option<&'a str>, Option<&'a str>);

/// A loaded teacher (one model or an ensemble) on its device.
pub struct Teacher {
    members: Vec<Member>,
    /// How rows are grouped into forward passes.
    pub limits: BatchLimits,
    /// Class names in logit order.
    pub label_names: Vec<String>,
    /// Provenance recorded in the output's metadata.
    pub description: serde_json::Value,
}

/// Loads one model folder for a teacher, with its provenance.
fn load_model(f: &Path, compute: &Compute) -> Result<(Predictor, Vec<String>, serde_json::Value)> {
    let shown = f.display().to_string();
    let model = Model::load(f, &candle_core::Device::Cpu)
        .map_err(|e| e.context(format!("teacher `{shown}`")))?;
    let described = serde_json::json!({
        // Normalised, so `./m` and `m` write the same file metadata.
        "folder": crate::io::identity::normalise_path(&shown),
        "sha256": Model::content_hash(f)?,
        "kind": model.info.kind,
        "tokenizer_sha256": model.tokenizer.hash()?,
    });
    let predictor = model
        .predictor(compute)
        .map_err(|e| e.context(format!("teacher `{shown}`")))?;
    Ok((predictor, model.info.label_names.clone(), described))
}

/// Refuses members whose classes differ from the first's.
fn check_classes(first: &str, names: &[String], f: &str, m: &[String]) -> Result<()> {
    if m != names {
        return Err(Error::user(format!(
            "ensemble members disagree on classes: `{first}` has {names:?}, `{f}` has {m:?}"
        )));
    }
    Ok(())
}

impl Teacher {
    /// Loads every folder onto `compute`; all must share class names. A cross-fit folder
    /// (one holding `folds.json`) is one member made of its fold models.
    pub fn load(folders: &[String], compute: &Compute) -> Result<Teacher> {
        if folders.is_empty() {
            return Err(Error::user("`model` lists no folder"));
        }
        let mut members = Vec::new();
        let mut label_names: Option<Vec<String>> = None;
        let mut described = Vec::new();
        for f in folders {
            let dir = PathBuf::from(f);
            let mut check = |names: Vec<String>, shown: &str| match &label_names {
                Some(first) => check_classes(&folders[0], first, shown, &names),
                None => {
                    label_names = Some(names);
                    Ok(())
                }
            };
            match FoldAssignment::read(&dir)? {
                None => {
                    let (p, names, d) = load_model(&dir, compute)?;
                    check(names, f)?;
                    described.push(d);
                    members.push(Member::Model(Box::new(p)));
                }
                Some(assignment) => {
                    let mut models = Vec::new();
                    let mut folds = Vec::new();
                    for m in assignment.model_dirs(&dir) {
                        let (p, names, d) = load_model(&m, compute)?;
                        check(names, &m.display().to_string())?;
                        folds.push(d);
                        models.push(p);
                    }
                    described.push(serde_json::json!({
                        "folder": crate::io::identity::normalise_path(f),
                        "crossfit": { "k": assignment.k, "seed": assignment.seed, "folds": folds },
                    }));
                    members.push(Member::Folds { assignment, models });
                }
            }
        }
        let label_names = label_names.unwrap_or_default();
        let combine = match members.as_slice() {
            [Member::Model(_)] => "logits",
            [Member::Folds { .. }] => {
                "cross-fitted: a training row's fold model alone, other rows the log of the mean of the fold models' probabilities"
            }
            _ => "log of the mean of member probabilities",
        };
        let description = serde_json::json!({
            "members": described,
            "combine": combine,
            "label_names": label_names,
            "dtype": format!("{:?}", compute.dtype).to_lowercase(),
        });
        Ok(Teacher {
            members,
            limits: BatchLimits::default_for(compute),
            label_names,
            description,
        })
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.label_names.len()
    }

    /// Whether a member is cross-fitted (its labels depend on the rows' ids).
    pub fn is_crossfit(&self) -> bool {
        self.members
            .iter()
            .any(|m| matches!(m, Member::Folds { .. }))
    }

    /// Logits at temperature 1 for each text (for an ensemble: log mean probability). Rows
    /// without a key are outside every cross-fit assignment.
    pub fn logits(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        Ok(self.logits_with_stats(texts, None, None)?.0)
    }

    /// [`Self::logits`] for rows with their ids (`keys`, one per text, which route a
    /// cross-fitted member's rows to their fold model), tokenizing on `pool` (default: the
    /// global rayon pool), with the forward passes' token counts (summed over members).
    pub fn logits_with_stats(
        &self,
        texts: &[&str],
        keys: Option<&[RowKey<'_>]>,
        pool: Option<&rayon::ThreadPool>,
    ) -> Result<(Vec<Vec<f32>>, PassStats)> {
        let mut stats = PassStats::default();
        if let [m] = self.members.as_slice() {
            let logits = self.member_logits(m, texts, keys, pool, &mut stats)?;
            return Ok((logits, stats));
        }
        let mut all = Vec::with_capacity(self.members.len());
        for m in &self.members {
            all.push(self.member_logits(m, texts, keys, pool, &mut stats)?);
        }
        Ok((mean_of_probabilities(&all, texts.len()), stats))
    }

    /// One member's logits for `texts`.
    fn member_logits(
        &self,
        member: &Member,
        texts: &[&str],
        keys: Option<&[RowKey<'_>]>,
        pool: Option<&rayon::ThreadPool>,
        stats: &mut PassStats,
    ) -> Result<Vec<Vec<f32>>> {
        let mut run = |p: &Predictor, texts: &[&str]| -> Result<Vec<Vec<f32>>> {
            let (l, s) = p.logits(texts, self.limits, pool)?;
            stats.batches += s.batches;
            stats.tokens += s.tokens;
            stats.padded_tokens += s.padded_tokens;
            Ok(l)
        };
        let (assignment, models) = match member {
            Member::Model(p) => return run(p, texts),
            Member::Folds { assignment, models } => (assignment, models),
        };
        // Group the rows by fold; the last group holds rows outside the assignment.
        let k = models.len();
        let mut groups: Vec<Vec<usize>> = vec![Vec::new(); k + 1];
        for i in 0..texts.len() {
            let fold = keys
                .and_then(|keys| keys[i].0.map(|id| assignment.fold_of(id, keys[i].1)))
                .flatten();
            groups[fold.unwrap_or(k)].push(i);
        }
        let mut out = vec![Vec::new(); texts.len()];
        for (fold, rows) in groups.iter().enumerate().filter(|(_, r)| !r.is_empty()) {
            let sub: Vec<&str> = rows.iter().map(|&i| texts[i]).collect();
            let logits = if fold < k {
                run(&models[fold], &sub)?
            } else {
                let each = models
                    .iter()
                    .map(|p| run(p, &sub))
                    .collect::<Result<Vec<_>>>()?;
                mean_of_probabilities(&each, sub.len())
            };
            for (&i, l) in rows.iter().zip(logits) {
                out[i] = l;
            }
        }
        Ok(out)
    }
}

/// The log of the mean of several members' probabilities, row by row.
fn mean_of_probabilities(members: &[Vec<Vec<f32>>], rows: usize) -> Vec<Vec<f32>> {
    let mut mean: Vec<Vec<f64>> = vec![Vec::new(); rows];
    for logits in members {
        for (acc, l) in mean.iter_mut().zip(logits) {
            let p = crate::distill::metrics::softmax(l);
            if acc.is_empty() {
                acc.resize(p.len(), 0.0);
            }
            for (a, p) in acc.iter_mut().zip(p) {
                *a += p / members.len() as f64;
            }
        }
    }
    mean.into_iter()
        .map(|row| row.into_iter().map(|p| p.max(1e-30).ln() as f32).collect())
        .collect()
}

/// The stage.
pub struct TeacherStage {
    teacher: Teacher,
    /// The model folders, for the run fingerprint.
    folders: Vec<PathBuf>,
}

impl TeacherStage {
    /// Loads the teacher models.
    pub fn new(cfg: TeacherConfig, cx: &BuildContext<'_>) -> Result<Self> {
        if cfg.batch_size == Some(0) {
            return Err(Error::user("`batch_size` must be at least 1"));
        }
        if cfg.batch_tokens == Some(0) {
            return Err(Error::user("`batch_tokens` must be at least 1"));
        }
        let folders = cfg.model.list();
        let mut teacher = Teacher::load(&folders, &cx.settings.compute()?)?;
        teacher.limits = BatchLimits {
            max_rows: cfg.batch_size.unwrap_or(teacher.limits.max_rows),
            max_tokens: cfg.batch_tokens.unwrap_or(teacher.limits.max_tokens),
        };
        Ok(TeacherStage {
            teacher,
            folders: folders.into_iter().map(PathBuf::from).collect(),
        })
    }

    fn list_field(&self) -> Field {
        Field::new(
            TEACHER_LOGITS,
            DataType::FixedSizeList(
                Arc::new(Field::new("item", DataType::Float32, false)),
                self.teacher.classes() as i32,
            ),
            true,
        )
    }
}

impl Transform for TeacherStage {
    fn model_paths(&self) -> Vec<PathBuf> {
        // A cross-fit folder's identity is its `folds.json`; its fold models are listed too.
        let mut paths = Vec::new();
        for f in &self.folders {
            paths.push(f.clone());
            if let Ok(Some(a)) = FoldAssignment::read(f) {
                paths.extend(a.model_dirs(f));
            }
        }
        paths
    }

    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef> {
        match input.field_with_name(col::TEXT) {
            Ok(f) if f.data_type() == &DataType::Utf8 => {}
            _ => {
                return Err(Error::user("needs a string column `text`")
                    .with_hint("read the corpus with a `parquet_source` stage"))
            }
        }
        let mut metadata = input.metadata().clone();
        if let Some(names) = metadata.get("label_names") {
            let names = crate::distill::data::parse_label_names(names).unwrap_or_default();
            if !names.is_empty() && names != self.teacher.label_names {
                return Err(Error::user(format!(
                    "the corpus has classes {names:?} but the teacher predicts {:?}",
                    self.teacher.label_names
                ))
                .with_hint("use a teacher trained on this corpus's classes"));
            }
        }
        metadata.insert(
            "label_names".to_string(),
            serde_json::to_string(&self.teacher.label_names).unwrap_or_default(),
        );
        metadata.insert(
            "retort.teacher".to_string(),
            self.teacher.description.to_string(),
        );
        // A relabelled corpus (the next generation) replaces the old soft labels.
        let mut fields: Vec<Field> = input
            .fields()
            .iter()
            .filter(|f| f.name() != TEACHER_LOGITS)
            .map(|f| f.as_ref().clone())
            .collect();
        fields.push(self.list_field());
        Ok(Arc::new(Schema::new_with_metadata(fields, metadata)))
    }

    fn process(&mut self, batch: &Batch, out: &mut Emit, cx: &mut StageContext) -> Result<()> {
        let data = &batch.data;
        let n = data.num_rows();
        let text = data
            .column_by_name(col::TEXT)
            .and_then(|c| c.as_any().downcast_ref::<StringArray>())
            .ok_or_else(|| Error::runtime("column `text` is missing"))?;
        let rows: Vec<usize> = (0..n).filter(|&i| text.is_valid(i)).collect();
        let texts: Vec<&str> = rows.iter().map(|&i| text.value(i)).collect();
        let classes = self.teacher.classes();
        let ids = data
            .column_by_name(col::ID)
            .and_then(|c| c.as_any().downcast_ref::<StringArray>());
        let parents = data
            .column_by_name(col::PARENT_ID)
            .and_then(|c| c.as_any().downcast_ref::<StringArray>());
        fn value(a: Option<&StringArray>, i: usize) -> Option<&str> {
            a.filter(|a| a.is_valid(i)).map(|a| a.value(i))
        }
        let key = |i: usize| (value(ids, i), value(parents, i));
        let keys: Vec<RowKey<'_>> = rows.iter().map(|&i| key(i)).collect();
        let mut logits: Vec<Option<Vec<f32>>> = vec![None; n];
        match self
            .teacher
            .logits_with_stats(&texts, Some(&keys), Some(&cx.pool))
        {
            Ok((ls, stats)) => {
                for (&i, l) in rows.iter().zip(ls) {
                    logits[i] = Some(l);
                }
                let counters = &mut cx.tally().counters;
                *counters.entry("teacher_tokens".into()).or_default() += stats.tokens;
                *counters.entry("teacher_padded_tokens".into()).or_default() += stats.padded_tokens;
            }
            Err(_) => {
                // Retry row by row so one bad row does not sink the others.
                for &i in &rows {
                    let one =
                        self.teacher
                            .logits_with_stats(&[text.value(i)], Some(&[key(i)]), None);
                    match one {
                        Ok((mut l, _)) => logits[i] = l.pop(),
                        Err(e) => {
                            let id = value(ids, i).map(str::to_string);
                            cx.reject(
                                "teacher_failed",
                                format!("the teacher could not label the row: {e}"),
                                id,
                                Some(text.value(i).to_string()),
                            );
                        }
                    }
                }
            }
        }
        let id_of = |i: usize| value(ids, i).map(str::to_string);
        for (i, l) in logits.iter_mut().enumerate() {
            // A model with NaN or infinite weights gives logits no student can learn from.
            if l.as_ref().is_some_and(|l| l.iter().any(|x| !x.is_finite())) {
                *l = None;
                cx.reject(
                    "non_finite_logits",
                    "the teacher's logits for this row are NaN or infinite: check the model's weights"
                        .into(),
                    id_of(i),
                    Some(text.value(i).to_string()),
                );
            }
        }
        for i in 0..n {
            if text.is_null(i) {
                cx.reject("null_text", "the row has no text".into(), id_of(i), None);
            }
        }
        let keep: Vec<bool> = logits.iter().map(Option::is_some).collect();
        let flat: Vec<f32> = logits.iter().flatten().flatten().copied().collect();
        let values = Arc::new(Float32Array::from(flat)) as ArrayRef;
        let item = Arc::new(Field::new("item", DataType::Float32, false));
        let list = FixedSizeListArray::try_new(item, classes as i32, values, None)?;
        let kept =
            arrow::compute::filter_record_batch(data, &arrow::array::BooleanArray::from(keep))?;
        let schema = self.output_schema(&data.schema())?;
        let mut columns: Vec<ArrayRef> = kept
            .schema()
            .fields()
            .iter()
            .zip(kept.columns())
            .filter(|(f, _)| f.name() != TEACHER_LOGITS)
            .map(|(_, c)| c.clone())
            .collect();
        columns.push(Arc::new(list));
        let result = RecordBatch::try_new(schema, columns)?;
        let t = cx.tally();
        t.rows_in += n as u64;
        t.rows_changed += result.num_rows() as u64;
        for (op, c) in crate::batch::count_ops(&result) {
            *cx.tally().rows_out.entry(op).or_default() += c;
        }
        out.push(result);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::Ledger;
    use crate::models::{CnnConfig, TextTokenizer};
    use crate::stage::RunSettings;

    /// A seeded, untrained CNN saved as a model folder under `dir`: a real teacher whose
    /// logits are finite.
    fn cnn_folder(dir: &Path) -> PathBuf {
        let texts = [
            "a good film",
            "a bad film",
            "the plot was dull",
            "great acting",
        ];
        let tok = TextTokenizer::train_wordpiece(&texts, 60).unwrap();
        let cfg = CnnConfig {
            embed_dim: 8,
            filters: 4,
            ..CnnConfig::new(tok.vocab_size(), 2)
        };
        let labels = vec!["neg".to_string(), "pos".to_string()];
        let model =
            Model::new_cnn(cfg, tok, labels, 3, &candle_core::Device::Cpu).expect("a CNN model");
        let folder = dir.join("teacher");
        model.save(&folder).unwrap();
        folder
    }

    /// A row with a null text goes to the rejects with its own id and the reason `null_text`,
    /// and the other rows keep their id and get logits.
    #[test]
    fn a_row_with_a_null_text_is_rejected_with_its_id() {
        let tmp = tempfile::tempdir().unwrap();
        let folder = cnn_folder(tmp.path());
        let settings = RunSettings::with_seed(1);
        let cx = BuildContext {
            stage: "teacher",
            settings: &settings,
            after_model: false,
        };
        let cfg = TeacherConfig {
            model: Folders::One(folder.display().to_string()),
            batch_size: None,
            batch_tokens: None,
        };
        let mut stage = TeacherStage::new(cfg, &cx).unwrap();
        let ids: ArrayRef = Arc::new(StringArray::from(vec![Some("r0"), Some("r1"), Some("r2")]));
        let texts: ArrayRef = Arc::new(StringArray::from(vec![
            Some("a good film"),
            None,
            Some("the plot was dull"),
        ]));
        let schema = Arc::new(Schema::new(vec![
            Field::new(col::ID, DataType::Utf8, true),
            Field::new(col::TEXT, DataType::Utf8, true),
        ]));
        let data = RecordBatch::try_new(schema.clone(), vec![ids, texts]).unwrap();
        stage.output_schema(&schema).unwrap();
        let pool = Arc::new(
            rayon::ThreadPoolBuilder::new()
                .num_threads(1)
                .build()
                .unwrap(),
        );
        let mut scx = StageContext::new("teacher", Arc::new(settings.clone()), pool);
        let batch = Batch {
            data,
            seq: 0,
            ledger: Ledger::default(),
        };
        let mut out = Emit::default();
        stage.process(&batch, &mut out, &mut scx).unwrap();
        let entry = scx.take_entry();
        assert_eq!(entry.rejects.len(), 1, "{:?}", entry.rejects);
        let reject = &entry.rejects[0];
        assert_eq!(
            reject.id.as_deref(),
            Some("r1"),
            "the reject keeps the row id"
        );
        assert_eq!(reject.reason, "null_text");
        assert_eq!(reject.stage, "teacher");
        assert!(!reject.detail.is_empty());
        assert_eq!(reject.text, None);
        assert_eq!(entry.tally.rows_in, 3);
        assert_eq!(entry.tally.rows_rejected, 1);
        assert_eq!(entry.tally.rejected_by_reason.get("null_text"), Some(&1));
        let written = out.take();
        assert_eq!(written.len(), 1);
        let kept = written[0]
            .column_by_name(col::ID)
            .and_then(|c| c.as_any().downcast_ref::<StringArray>())
            .unwrap();
        let kept: Vec<&str> = kept.iter().flatten().collect();
        assert_eq!(kept, ["r0", "r2"]);
        let logits = written[0].column_by_name(TEACHER_LOGITS).unwrap();
        assert_eq!(logits.null_count(), 0);
    }
}
