//! The new rows of `generate`: ids, provenance, parameters and labels, in the input's schema.

use std::sync::Arc;

use arrow::array::{
    new_null_array, Array, ArrayRef, Int64Array, StringArray, StringBuilder, UInt64Array,
};
use arrow::datatypes::{FieldRef, SchemaRef};
use arrow::record_batch::RecordBatch;

use super::{Attempt, GenerateStage, NewRow, OP_PSEUDO};
use crate::batch::col;
use crate::error::{Error, Result};

impl GenerateStage {
    /// The batch of new rows, with the input's columns (those it does not set are null).
    pub(super) fn new_rows(
        &self,
        schema: SchemaRef,
        rows: &[NewRow],
        attempts: &[Attempt],
        classes: &[(String, String)],
    ) -> Result<RecordBatch> {
        let n = rows.len();
        let mut b_id = StringBuilder::new();
        let mut b_op = StringBuilder::new();
        let mut b_params = StringBuilder::new();
        let mut b_text = StringBuilder::new();
        let mut seeds = Vec::with_capacity(n);
        let mut labels = StringBuilder::new();
        for (j, text, finished, verdict) in rows {
            let a = &attempts[*j];
            b_id.append_value(format!("{}/{j}", self.stage));
            b_op.append_value(OP_PSEUDO);
            let teacher = verdict.map(
                |(best, conf)| serde_json::json!({"label": classes[best].1, "confidence": conf}),
            );
            b_params.append_value(
                serde_json::json!({
                    "intended_label": classes[a.class].1,
                    "prompt": j,
                    "shots": a.shots.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
                    "model": self.model_name,
                    "temperature": self.cfg.temperature,
                    "top_p": self.cfg.top_p,
                    "max_new_tokens": self.cfg.max_new_tokens,
                    "finished": finished,
                    "teacher": teacher,
                })
                .to_string(),
            );
            b_text.append_value(text);
            seeds.push(a.seed);
            labels.append_value(&classes[a.class].0);
        }
        let built: Vec<(&str, ArrayRef)> = vec![
            (col::ID, Arc::new(b_id.finish())),
            (col::OP, Arc::new(b_op.finish())),
            (col::OP_PARAMS, Arc::new(b_params.finish())),
            (col::SEED, Arc::new(UInt64Array::from(seeds))),
            (col::TEXT, Arc::new(b_text.finish())),
            (col::LABEL, Arc::new(labels.finish())),
        ];
        let mut columns: Vec<ArrayRef> = Vec::new();
        for f in schema.fields() {
            columns.push(column_for(f, &built, n)?);
        }
        RecordBatch::try_new(schema, columns).map_err(|e| {
            Error::runtime(format!("stage `{}`: cannot build the new rows", self.stage))
                .with_source(e)
        })
    }
}

/// The column for field `f`: the built one (labels cast to the input's label type) or nulls.
fn column_for(f: &FieldRef, built: &[(&str, ArrayRef)], n: usize) -> Result<ArrayRef> {
    Ok(match built.iter().find(|(name, _)| name == f.name()) {
        Some((name, c)) if *name == col::LABEL => {
            if f.data_type().is_integer() {
                let ints: Int64Array = c
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .expect("strings")
                    .iter()
                    .map(|v| v.and_then(|v| v.parse::<i64>().ok()))
                    .collect();
                arrow::compute::cast(&ints, f.data_type())?
            } else {
                arrow::compute::cast(c, f.data_type())?
            }
        }
        Some((_, c)) => c.clone(),
        None => new_null_array(f.data_type(), n),
    })
}
