//! `teacher` stage: labels every row (original and augmented) with a teacher's logits, so
//! teacher and student see the same text. Several model folders form an ensemble: the mean of
//! their probabilities, stored as log-probabilities.

use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, FixedSizeListArray, Float32Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::batch::{col, Batch};
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

/// A loaded teacher (one model or an ensemble) on its device.
pub struct Teacher {
    members: Vec<Predictor>,
    /// How rows are grouped into forward passes.
    pub limits: BatchLimits,
    /// Class names in logit order.
    pub label_names: Vec<String>,
    /// Provenance recorded in the output's metadata.
    pub description: serde_json::Value,
}

impl Teacher {
    /// Loads every folder onto `compute`; all must share class names.
    pub fn load(folders: &[String], compute: &Compute) -> Result<Teacher> {
        if folders.is_empty() {
            return Err(Error::user("`model` lists no folder"));
        }
        let mut members = Vec::new();
        let mut names = Vec::new();
        let mut described = Vec::new();
        for f in folders {
            let path = PathBuf::from(f);
            let model = Model::load(&path, &candle_core::Device::Cpu)
                .map_err(|e| e.context(format!("teacher `{f}`")))?;
            let sha = Model::content_hash(&path)?;
            let tokenizer_sha = model.tokenizer.hash()?;
            described.push(serde_json::json!({
                // Normalised, so `./m` and `m` write the same file metadata.
                "folder": crate::io::identity::normalise_path(f),
                "sha256": sha,
                "kind": model.info.kind,
                "tokenizer_sha256": tokenizer_sha,
            }));
            names.push(model.info.label_names.clone());
            members.push(
                model
                    .predictor(compute)
                    .map_err(|e| e.context(format!("teacher `{f}`")))?,
            );
        }
        let label_names = names[0].clone();
        for (m, f) in names.iter().zip(folders).skip(1) {
            if *m != label_names {
                return Err(Error::user(format!(
                    "ensemble members disagree on classes: `{}` has {label_names:?}, `{f}` has {m:?}",
                    folders[0]
                )));
            }
        }
        let description = serde_json::json!({
            "members": described,
            "combine": if members.len() == 1 { "logits" } else { "log of the mean of member probabilities" },
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

    /// Logits at temperature 1 for each text (for an ensemble: log mean probability).
    pub fn logits(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        Ok(self.logits_with_stats(texts, None)?.0)
    }

    /// [`Self::logits`], tokenizing on `pool` (default: the global rayon pool), with the
    /// forward passes' token counts (summed over members).
    pub fn logits_with_stats(
        &self,
        texts: &[&str],
        pool: Option<&rayon::ThreadPool>,
    ) -> Result<(Vec<Vec<f32>>, PassStats)> {
        if self.members.len() == 1 {
            return self.members[0].logits(texts, self.limits, pool);
        }
        let mut stats = PassStats::default();
        let mut mean = vec![vec![0f64; self.classes()]; texts.len()];
        for m in &self.members {
            let (logits, s) = m.logits(texts, self.limits, pool)?;
            stats.batches += s.batches;
            stats.tokens += s.tokens;
            stats.padded_tokens += s.padded_tokens;
            for (acc, l) in mean.iter_mut().zip(logits) {
                for (a, p) in acc.iter_mut().zip(crate::distill::metrics::softmax(&l)) {
                    *a += p / self.members.len() as f64;
                }
            }
        }
        let logits = mean
            .into_iter()
            .map(|row| row.into_iter().map(|p| p.max(1e-30).ln() as f32).collect())
            .collect();
        Ok((logits, stats))
    }
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
        self.folders.clone()
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
        let mut logits: Vec<Option<Vec<f32>>> = vec![None; n];
        match self.teacher.logits_with_stats(&texts, Some(&cx.pool)) {
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
                    match self.teacher.logits(&[text.value(i)]) {
                        Ok(mut l) => logits[i] = l.pop(),
                        Err(e) => {
                            let id = data
                                .column_by_name(col::ID)
                                .and_then(|c| c.as_any().downcast_ref::<StringArray>())
                                .map(|a| a.value(i).to_string());
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
        let ids = data
            .column_by_name(col::ID)
            .and_then(|c| c.as_any().downcast_ref::<StringArray>());
        let id_of = |i: usize| {
            ids.filter(|a| a.is_valid(i))
                .map(|a| a.value(i).to_string())
        };
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
