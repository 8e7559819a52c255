//! Turns any row-level [`Augmenter`] into a pipeline stage: copies, `keep_original`,
//! per-row seeding, provenance columns and data-parallel processing, written once.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, StringArray, StringBuilder, UInt32Array, UInt64Array, UInt64Builder,
};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use rand::SeedableRng;
use rayon::prelude::*;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::augment::tokens::Doc;
use crate::augment::{Augmentation, Augmenter, RowRng};
use crate::batch::{col, Batch};
use crate::error::{Error, Result};
use crate::seed;
use crate::stage::kind::{keys_of, parse_table, BuildContext, Built, KeyDoc};
use crate::stage::{Emit, StageContext, Transform};

/// Options every augmenter stage takes.
#[derive(Debug, Clone, Deserialize, serde::Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CopyOptions {
    /// Augmented copies to make of each input row, at most 1,000 (a batch's copies are held in
    /// memory). A copy that cannot be made (no operation applies) is counted in
    /// `copies_skipped`, never written as a duplicate.
    #[serde(default = "one")]
    pub copies: u32,
    /// Also pass every input row through unchanged, before its copies.
    #[serde(default)]
    pub keep_original: bool,
}

fn one() -> u32 {
    1
}

const COPY_KEYS: [&str; 2] = ["copies", "keep_original"];

/// The most copies of one row a stage makes: every copy of a batch is held in memory at once.
pub const MAX_COPIES: u32 = 1_000;

/// Parses an augmenter stage table: the shared copy options plus the augmenter's own config.
pub fn parse_augment<C: for<'de> Deserialize<'de>>(
    table: &toml::Table,
) -> std::result::Result<(CopyOptions, C), String> {
    let (mut common, mut own) = (toml::Table::new(), toml::Table::new());
    for (k, v) in table {
        if COPY_KEYS.contains(&k.as_str()) {
            common.insert(k.clone(), v.clone());
        } else {
            own.insert(k.clone(), v.clone());
        }
    }
    let opts: CopyOptions = parse_table(&common)?;
    if opts.copies > MAX_COPIES {
        return Err(format!(
            "`copies` is {}; at most {MAX_COPIES} copies per row are allowed (chain several stages for more)",
            opts.copies
        ));
    }
    if opts.copies == 0 && !opts.keep_original {
        return Err("`copies = 0` without `keep_original = true` writes nothing".into());
    }
    let config = parse_table::<C>(&own).map_err(|e| {
        if e.contains("unknown key") {
            format!("{e} (every augmenter also takes `copies` and `keep_original`)")
        } else {
            e
        }
    })?;
    Ok((opts, config))
}

/// Keys of an augmenter stage: the copy options, then the augmenter's own.
pub fn augment_keys<C: JsonSchema>() -> Vec<KeyDoc> {
    let mut keys = keys_of::<CopyOptions>();
    keys.extend(keys_of::<C>());
    keys
}

/// A transform that applies one augmenter to every row.
pub struct AugmentStage {
    augmenter: Arc<dyn Augmenter>,
    opts: CopyOptions,
    stage: String,
    stage_seed: u64,
}

impl AugmentStage {
    /// Wraps `augmenter` for stage `cx.stage`.
    pub fn new(augmenter: Arc<dyn Augmenter>, opts: CopyOptions, cx: &BuildContext<'_>) -> Self {
        AugmentStage {
            augmenter,
            opts,
            stage: cx.stage.to_string(),
            stage_seed: cx.stage_seed(),
        }
    }
}

/// Builds an augmenter stage from its parsed config with `make`.
pub fn build_augment<C>(
    (opts, config): (CopyOptions, C),
    cx: &BuildContext<'_>,
    make: impl FnOnce(C) -> Result<Arc<dyn Augmenter>>,
) -> Result<Built> {
    let augmenter = make(config).map_err(|e| e.context(format!("stage `{}`", cx.stage)))?;
    Ok(Built::Transform(Box::new(AugmentStage::new(
        augmenter, opts, cx,
    ))))
}

fn string_col<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a StringArray> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<StringArray>())
        .ok_or_else(|| Error::runtime(format!("column `{name}` is missing or not a string")))
}

/// What one input row produced.
pub(crate) struct RowResult {
    /// The copies made, with the seed each was made with.
    pub copies: Vec<(Augmentation, u64)>,
    /// Requested copies that could not be made.
    pub skipped: u32,
    /// Set when the row cannot be processed at all: it goes to the rejects with this
    /// (reason, detail) and is not written, even with `keep_original`.
    pub failure: Option<(&'static str, String)>,
}

impl Transform for AugmentStage {
    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef> {
        check_augment_input(input)
    }

    fn process(&mut self, batch: &Batch, out: &mut Emit, cx: &mut StageContext) -> Result<()> {
        let data = &batch.data;
        let n = data.num_rows();
        let text = string_col(data, col::TEXT)?;
        let ids = string_col(data, col::ID)?;
        let copies = self.opts.copies;
        let aug = self.augmenter.as_ref();
        let stage_seed = self.stage_seed;
        let results: Vec<Option<RowResult>> = cx.pool.install(|| {
            (0..n)
                .into_par_iter()
                .with_min_len(64)
                .map(|i| {
                    if text.is_null(i) || ids.is_null(i) {
                        return None;
                    }
                    let doc = Doc::new(text.value(i));
                    let row_seed = seed::row_seed(stage_seed, ids.value(i));
                    let mut made = Vec::with_capacity(copies as usize);
                    for c in 0..copies {
                        let s = seed::copy_seed(row_seed, c);
                        let mut rng = RowRng::seed_from_u64(s);
                        if let Some(a) = aug.augment_copy(&doc, c, row_seed, &mut rng) {
                            made.push((a, s));
                        }
                    }
                    Some(RowResult {
                        skipped: copies - made.len() as u32,
                        copies: made,
                        failure: None,
                    })
                })
                .collect()
        });
        write_rows(data, results, &self.opts, &self.stage, out, cx)
    }
}

/// Checks an augmenter's input has the provenance and text columns; the output schema is the
/// input's.
pub(crate) fn check_augment_input(input: &SchemaRef) -> Result<SchemaRef> {
    let want = [
        (col::ID, DataType::Utf8),
        (col::PARENT_ID, DataType::Utf8),
        (col::OP, DataType::Utf8),
        (col::OP_PARAMS, DataType::Utf8),
        (col::SEED, DataType::UInt64),
        (col::TEXT, DataType::Utf8),
    ];
    let present = || {
        input
            .fields()
            .iter()
            .map(|f| format!("`{}`", f.name()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    for (name, ty) in want {
        match input.field_with_name(name) {
            Err(_) => return Err(Error::user(format!(
                "needs column `{name}`, but its input has only {}",
                present()
            ))
            .with_hint(
                "read the corpus with a `parquet_source` stage, which adds the provenance columns",
            )),
            Ok(f) if f.data_type() != &ty => {
                return Err(Error::user(format!(
                    "column `{name}` has type {}, expected {ty}",
                    f.data_type()
                )))
            }
            Ok(_) => {}
        }
    }
    Ok(input.clone())
}

/// Sends row `i` of a batch, whose text or id is null, to the rejects with its id (when it
/// has one): reason `null_id` when the id is null, else `null_text`.
pub(crate) fn reject_null_row(ids: &StringArray, i: usize, cx: &mut StageContext) {
    let id = ids.is_valid(i).then(|| ids.value(i).to_string());
    let reason = if ids.is_null(i) {
        "null_id"
    } else {
        "null_text"
    };
    cx.reject(
        reason,
        format!("row {i} of the batch has a {}", reason.replace('_', " ")),
        id,
        None,
    );
}

/// Writes the rows of a batch: each original (with `keep_original`) followed by its copies,
/// with provenance columns, counting everything in the stage's tally. `None` marks a row with
/// a null id or text, which goes to the rejects.
pub(crate) fn write_rows(
    data: &RecordBatch,
    results: Vec<Option<RowResult>>,
    opts: &CopyOptions,
    stage: &str,
    out: &mut Emit,
    cx: &mut StageContext,
) -> Result<()> {
    {
        let n = data.num_rows();
        let text = string_col(data, col::TEXT)?;
        let ids = string_col(data, col::ID)?;
        let parents = string_col(data, col::PARENT_ID)?;
        let ops = string_col(data, col::OP)?;
        let params = string_col(data, col::OP_PARAMS)?;
        let seeds = data
            .column_by_name(col::SEED)
            .and_then(|c| c.as_any().downcast_ref::<UInt64Array>())
            .ok_or_else(|| Error::runtime("column `seed` is missing or not UInt64"))?;
        let copies = opts.copies;
        let rows_out: usize = results
            .iter()
            .map(|r| {
                r.as_ref().map_or(0, |r| r.copies.len())
                    + usize::from(opts.keep_original && r.is_some())
            })
            .sum();
        let mut take = Vec::with_capacity(rows_out);
        let mut b_id = StringBuilder::with_capacity(rows_out, rows_out * 24);
        let mut b_parent = StringBuilder::with_capacity(rows_out, rows_out * 16);
        let mut b_op = StringBuilder::with_capacity(rows_out, rows_out * 8);
        let mut b_params = StringBuilder::with_capacity(rows_out, rows_out * 16);
        let mut b_seed = UInt64Builder::with_capacity(rows_out);
        let mut b_text =
            StringBuilder::with_capacity(rows_out, text.value_data().len() * (copies as usize + 1));
        cx.tally().rows_in += n as u64;
        for (i, r) in results.into_iter().enumerate() {
            let Some(r) = r else {
                reject_null_row(ids, i, cx);
                continue;
            };
            let id = ids.value(i);
            if let Some((reason, detail)) = r.failure {
                cx.reject(
                    reason,
                    detail,
                    Some(id.to_string()),
                    Some(text.value(i).to_string()),
                );
                continue;
            }
            if opts.keep_original {
                take.push(i as u32);
                b_id.append_value(id);
                b_parent.append_option(parents.is_valid(i).then(|| parents.value(i)));
                b_op.append_option(ops.is_valid(i).then(|| ops.value(i)));
                b_params.append_option(params.is_valid(i).then(|| params.value(i)));
                b_seed.append_option(seeds.is_valid(i).then(|| seeds.value(i)));
                b_text.append_value(text.value(i));
                let op = if ops.is_valid(i) { ops.value(i) } else { "" };
                *cx.tally().rows_out.entry(op.to_string()).or_default() += 1;
            }
            let root = if parents.is_valid(i) {
                parents.value(i)
            } else {
                id
            };
            for (c, (a, s)) in r.copies.iter().enumerate() {
                take.push(i as u32);
                b_id.append_value(format!("{id}/{stage}/{c}"));
                b_parent.append_value(root);
                b_op.append_value(a.op);
                b_params.append_value(&a.params);
                b_seed.append_value(*s);
                b_text.append_value(&a.text);
                *cx.tally().rows_out.entry(a.op.to_string()).or_default() += 1;
            }
            let t = cx.tally();
            t.copies_skipped += r.skipped as u64;
            if r.copies.is_empty() {
                t.rows_unchanged += 1;
            } else {
                t.rows_changed += 1;
            }
        }
        let take = UInt32Array::from(take);
        let schema = data.schema();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
        let mut built: Vec<(&str, ArrayRef)> = vec![
            (col::ID, Arc::new(b_id.finish())),
            (col::PARENT_ID, Arc::new(b_parent.finish())),
            (col::OP, Arc::new(b_op.finish())),
            (col::OP_PARAMS, Arc::new(b_params.finish())),
            (col::SEED, Arc::new(b_seed.finish())),
            (col::TEXT, Arc::new(b_text.finish())),
        ];
        for (f, column) in schema.fields().iter().zip(data.columns()) {
            match built.iter().position(|(name, _)| name == f.name()) {
                Some(p) => columns.push(built.swap_remove(p).1),
                None => columns.push(arrow::compute::take(column.as_ref(), &take, None)?),
            }
        }
        out.push(RecordBatch::try_new(schema, columns)?);
        Ok(())
    }
}
