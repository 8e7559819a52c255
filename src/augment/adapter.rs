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
    /// Augmented copies to make of each input row, at most 1,000 (made and written in chunks,
    /// so memory stays bounded). A copy that cannot be made (no operation applies) is counted
    /// in `copies_skipped`; one identical to the original or to an earlier copy of the row is
    /// dropped and counted in `copies_duplicate`.
    #[serde(default = "one")]
    pub copies: u32,
    /// Also pass every input row through unchanged, before its copies.
    #[serde(default)]
    pub keep_original: bool,
    /// What happens to a row of which no copy could be made, when `keep_original` is false:
    /// `reject` (the default) sends it to `_rejects/` with the reason (`no_synonym`,
    /// `single_sentence`, `nothing_deleted`, ...), so the output holds only augmented rows and
    /// no row vanishes unseen; `keep` writes it unchanged instead, so every input row reaches
    /// the output.
    #[serde(default)]
    pub unchanged: Unchanged,
}

/// What an augmenter stage does with a row it could not change (see [`CopyOptions`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Unchanged {
    /// Send it to the rejects with the augmenter's reason.
    #[default]
    Reject,
    /// Write it unchanged (its own `op`, usually `orig`).
    Keep,
}

fn one() -> u32 {
    1
}

const COPY_KEYS: [&str; 3] = ["copies", "keep_original", "unchanged"];

/// The most copies of one row a stage makes.
pub const MAX_COPIES: u32 = 1_000;

/// Output rows an augmenter stage makes before it hands them downstream: input batches are
/// cut into chunks of `CHUNK_ROWS / (copies + 1)` rows, so memory does not grow with `copies`.
const CHUNK_ROWS: usize = 16_384;

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
            format!("{e} (every augmenter also takes `copies`, `keep_original` and `unchanged`)")
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
    /// Why no copy was made, when none was: the reason the row is rejected with under
    /// `unchanged = "reject"`. `None` gives the generic `no_applicable_op`.
    pub no_copy: Option<(&'static str, String)>,
}

impl Transform for AugmentStage {
    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef> {
        check_augment_input(input)
    }

    fn process(&mut self, batch: &Batch, out: &mut Emit, cx: &mut StageContext) -> Result<()> {
        let data = &batch.data;
        let per_row = self.opts.copies as usize + 1;
        let chunk = (CHUNK_ROWS / per_row).max(1);
        let mut start = 0;
        while start < data.num_rows() {
            let len = chunk.min(data.num_rows() - start);
            let part = data.slice(start, len);
            let results = self.augment_rows(&part, cx)?;
            write_rows(&part, results, &self.opts, &self.stage, out, cx)?;
            start += len;
            if start < data.num_rows() && !out.flush() {
                break;
            }
        }
        Ok(())
    }
}

impl AugmentStage {
    /// Makes the copies of every row of `data` in parallel; `None` for a row whose id or text
    /// is null.
    fn augment_rows(
        &self,
        data: &RecordBatch,
        cx: &mut StageContext,
    ) -> Result<Vec<Option<RowResult>>> {
        let text = string_col(data, col::TEXT)?;
        let ids = string_col(data, col::ID)?;
        let copies = self.opts.copies;
        let aug = self.augmenter.as_ref();
        let stage_seed = self.stage_seed;
        let min_len = (64 / copies.max(1) as usize).max(1);
        Ok(cx.pool.install(|| {
            (0..data.num_rows())
                .into_par_iter()
                .with_min_len(min_len)
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
                    let no_copy = made.is_empty().then(|| aug.no_copy_reason(&doc));
                    Some(RowResult {
                        skipped: copies - made.len() as u32,
                        copies: made,
                        failure: None,
                        no_copy,
                    })
                })
                .collect()
        }))
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

/// Writes the rows of a batch: each original (with `keep_original`, or when no copy was made
/// and `unchanged = "keep"`) followed by its copies, with provenance columns, counting
/// everything in the stage's tally. Copies identical to the original or to an earlier copy of
/// the row are dropped and counted. `None` marks a row with a null id or text, which goes to
/// the rejects, as does a row of which no copy was made under `unchanged = "reject"`.
pub(crate) fn write_rows(
    data: &RecordBatch,
    results: Vec<Option<RowResult>>,
    opts: &CopyOptions,
    stage: &str,
    out: &mut Emit,
    cx: &mut StageContext,
) -> Result<()> {
    let cols = InputColumns::of(data)?;
    let mut rows = RowsBuilder::new(&cols, &results, opts);
    cx.tally().rows_in += data.num_rows() as u64;
    for (i, r) in results.into_iter().enumerate() {
        let Some(mut r) = r else {
            reject_null_row(cols.ids, i, cx);
            continue;
        };
        let id = cols.ids.value(i);
        let original = cols.text.value(i);
        if let Some((reason, detail)) = r.failure {
            cx.reject(reason, detail, Some(id.into()), Some(original.into()));
            continue;
        }
        let duplicates = drop_duplicate_copies(original, &mut r.copies);
        let t = cx.tally();
        t.copies_skipped += u64::from(r.skipped);
        t.copies_duplicate += duplicates;
        if r.copies.is_empty() && !opts.keep_original && opts.unchanged == Unchanged::Reject {
            let (reason, detail) = if duplicates > 0 {
                (
                    "copy_equals_original",
                    "every copy made equalled the original text".into(),
                )
            } else {
                r.no_copy.take().unwrap_or_else(|| {
                    (
                        "no_applicable_op",
                        "no operation applies to the text".into(),
                    )
                })
            };
            cx.reject(reason, detail, Some(id.into()), Some(original.into()));
            continue;
        }
        if r.copies.is_empty() {
            cx.tally().rows_unchanged += 1;
        } else {
            cx.tally().rows_changed += 1;
        }
        if opts.keep_original || r.copies.is_empty() {
            rows.push_original(&cols, i, cx);
        }
        let root = if cols.parents.is_valid(i) {
            cols.parents.value(i)
        } else {
            id
        };
        for (c, (a, s)) in r.copies.iter().enumerate() {
            rows.push_copy(i, &format!("{id}/{stage}/{c}"), root, a, *s, cx);
        }
    }
    out.push(rows.finish(data)?);
    Ok(())
}

/// Drops the copies whose text equals `original` or an earlier copy; returns how many.
fn drop_duplicate_copies(original: &str, copies: &mut Vec<(Augmentation, u64)>) -> u64 {
    let before = copies.len();
    let mut seen: std::collections::HashSet<&str> = std::collections::HashSet::new();
    seen.insert(original);
    let keep: Vec<bool> = copies
        .iter()
        .map(|(a, _)| seen.insert(a.text.as_str()))
        .collect();
    let mut k = keep.into_iter();
    copies.retain(|_| k.next().unwrap_or(true));
    (before - copies.len()) as u64
}

/// The provenance and text columns of an augmenter's input batch.
struct InputColumns<'a> {
    ids: &'a StringArray,
    text: &'a StringArray,
    parents: &'a StringArray,
    ops: &'a StringArray,
    params: &'a StringArray,
    seeds: &'a UInt64Array,
}

impl<'a> InputColumns<'a> {
    fn of(data: &'a RecordBatch) -> Result<Self> {
        Ok(InputColumns {
            ids: string_col(data, col::ID)?,
            text: string_col(data, col::TEXT)?,
            parents: string_col(data, col::PARENT_ID)?,
            ops: string_col(data, col::OP)?,
            params: string_col(data, col::OP_PARAMS)?,
            seeds: data
                .column_by_name(col::SEED)
                .and_then(|c| c.as_any().downcast_ref::<UInt64Array>())
                .ok_or_else(|| Error::runtime("column `seed` is missing or not UInt64"))?,
        })
    }
}

/// The output batch of an augmenter stage, built row by row: provenance and text columns are
/// built, every other column is taken from the input row each output row came from.
struct RowsBuilder {
    take: Vec<u32>,
    id: StringBuilder,
    parent: StringBuilder,
    op: StringBuilder,
    params: StringBuilder,
    seed: UInt64Builder,
    text: StringBuilder,
}

impl RowsBuilder {
    fn new(c: &InputColumns<'_>, results: &[Option<RowResult>], opts: &CopyOptions) -> Self {
        let rows: usize = results.iter().flatten().map(|r| r.copies.len() + 1).sum();
        // The text of this slice only: a sliced array's buffer is the whole batch's.
        let text_bytes: usize = (0..c.text.len())
            .map(|i| c.text.value_length(i) as usize)
            .sum();
        RowsBuilder {
            take: Vec::with_capacity(rows),
            id: StringBuilder::with_capacity(rows, rows * 24),
            parent: StringBuilder::with_capacity(rows, rows * 16),
            op: StringBuilder::with_capacity(rows, rows * 8),
            params: StringBuilder::with_capacity(rows, rows * 16),
            seed: UInt64Builder::with_capacity(rows),
            text: StringBuilder::with_capacity(rows, text_bytes * (opts.copies as usize + 1)),
        }
    }

    /// Appends input row `i` as it is.
    fn push_original(&mut self, c: &InputColumns<'_>, i: usize, cx: &mut StageContext) {
        let opt = |a: &StringArray| a.is_valid(i).then(|| a.value(i).to_string());
        self.take.push(i as u32);
        self.id.append_value(c.ids.value(i));
        self.parent.append_option(opt(c.parents));
        self.op.append_option(opt(c.ops));
        self.params.append_option(opt(c.params));
        self.seed
            .append_option(c.seeds.is_valid(i).then(|| c.seeds.value(i)));
        self.text.append_value(c.text.value(i));
        let op = opt(c.ops).unwrap_or_default();
        *cx.tally().rows_out.entry(op).or_default() += 1;
    }

    /// Appends a copy of input row `i`.
    fn push_copy(
        &mut self,
        i: usize,
        id: &str,
        root: &str,
        a: &Augmentation,
        seed: u64,
        cx: &mut StageContext,
    ) {
        self.take.push(i as u32);
        self.id.append_value(id);
        self.parent.append_value(root);
        self.op.append_value(a.op);
        self.params.append_value(&a.params);
        self.seed.append_value(seed);
        self.text.append_value(&a.text);
        *cx.tally().rows_out.entry(a.op.to_string()).or_default() += 1;
    }

    /// The output batch, with the input's schema.
    fn finish(mut self, data: &RecordBatch) -> Result<RecordBatch> {
        let take = UInt32Array::from(std::mem::take(&mut self.take));
        let schema = data.schema();
        let mut built: Vec<(&str, ArrayRef)> = vec![
            (col::ID, Arc::new(self.id.finish())),
            (col::PARENT_ID, Arc::new(self.parent.finish())),
            (col::OP, Arc::new(self.op.finish())),
            (col::OP_PARAMS, Arc::new(self.params.finish())),
            (col::SEED, Arc::new(self.seed.finish())),
            (col::TEXT, Arc::new(self.text.finish())),
        ];
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
        for (f, column) in schema.fields().iter().zip(data.columns()) {
            match built.iter().position(|(name, _)| name == f.name()) {
                Some(p) => columns.push(built.swap_remove(p).1),
                None => columns.push(arrow::compute::take(column.as_ref(), &take, None)?),
            }
        }
        Ok(RecordBatch::try_new(schema, columns)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::Ledger;
    use crate::stage::kind::StageKind;
    use crate::stage::RunSettings;
    use arrow::datatypes::{Field, Schema};

    /// `rows` input rows of 30 distinct words each, with the provenance columns a source adds.
    fn input(rows: usize) -> RecordBatch {
        let ids: Vec<String> = (0..rows).map(|i| format!("r{i}")).collect();
        let texts: Vec<String> = (0..rows)
            .map(|i| {
                (0..30)
                    .map(|w| format!("w{i}x{w}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        let columns: Vec<(&str, ArrayRef)> = vec![
            (col::ID, Arc::new(StringArray::from(ids))),
            (col::PARENT_ID, Arc::new(StringArray::new_null(rows))),
            (col::OP, Arc::new(StringArray::from(vec!["orig"; rows]))),
            (
                col::OP_PARAMS,
                Arc::new(StringArray::from(vec!["{}"; rows])),
            ),
            (col::SEED, Arc::new(UInt64Array::from(vec![0u64; rows]))),
            (col::TEXT, Arc::new(StringArray::from(texts))),
        ];
        let schema = Schema::new(
            columns
                .iter()
                .map(|(name, a)| Field::new(*name, a.data_type().clone(), true))
                .collect::<Vec<_>>(),
        );
        RecordBatch::try_new(Arc::new(schema), columns.into_iter().map(|c| c.1).collect()).unwrap()
    }

    /// `copies = 1000` of a 40-row batch: the stage hands its rows downstream in chunks of
    /// 16 input rows (16,384 / 1,001) while it works, so no batch it emits holds more than
    /// `CHUNK_ROWS` rows, although the batch makes about 40,000.
    #[test]
    fn a_thousand_copies_are_emitted_in_chunks_of_at_most_chunk_rows() {
        let table: toml::Table = "mode = \"swap\"\nn = 10\ncopies = 1000\nkeep_original = true"
            .parse()
            .unwrap();
        let settings = RunSettings::with_seed(3);
        let cx = BuildContext {
            stage: "swap",
            settings: &settings,
            after_model: false,
        };
        let Built::Transform(mut stage) = crate::augment::perturb::KIND.build(&table, &cx).unwrap()
        else {
            panic!("perturb is a transform");
        };
        let data = input(40);
        stage.output_schema(&data.schema()).unwrap();
        let pool = Arc::new(
            rayon::ThreadPoolBuilder::new()
                .num_threads(1)
                .build()
                .unwrap(),
        );
        let mut scx = StageContext::new("swap", Arc::new(settings.clone()), pool);
        let batch = Batch {
            data,
            seq: 0,
            ledger: Ledger::default(),
        };
        let mut forwarded: Vec<usize> = Vec::new();
        let mut forward = |b: RecordBatch| {
            forwarded.push(b.num_rows());
            true
        };
        let mut out = Emit::streaming(&mut forward);
        stage.process(&batch, &mut out, &mut scx).unwrap();
        let last: Vec<usize> = out.take().iter().map(RecordBatch::num_rows).collect();
        drop(out);
        let sizes: Vec<usize> = forwarded.iter().chain(&last).copied().collect();
        let total: usize = sizes.iter().sum();
        assert_eq!(
            total as u64,
            scx.take_entry().tally.rows_out.values().sum::<u64>()
        );
        assert!(
            total > 2 * CHUNK_ROWS,
            "{total} rows: too few to need chunks"
        );
        // Chunks of 16, 16 and 8 input rows: the first two sent while the stage still works.
        assert_eq!(forwarded.len(), 2, "{sizes:?}");
        assert_eq!(last.len(), 1, "{sizes:?}");
        assert!(sizes.iter().all(|&n| n <= CHUNK_ROWS), "{sizes:?}");
        assert!(sizes[0] > CHUNK_ROWS / 2, "{sizes:?}");
    }
}
