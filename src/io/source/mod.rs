//! `parquet_source`: reads text corpora from Parquet, in batches, by file and row group.

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, StringArray, StringBuilder, UInt64Array};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReader,
    ParquetRecordBatchReaderBuilder,
};
use parquet::arrow::ProjectionMask;
use schemars::JsonSchema;
use serde::Deserialize;

mod columns;
mod duplicates;

use crate::batch::field_names;
use crate::batch::{col, Batch, Ledger, OP_ORIG};
use crate::error::{Error, Result};
use crate::io::files::{check_finished, input_folders, resolve_inputs};
use crate::stage::kind::{keys_of, parse_table, BuildContext, Built, Kind, Needs, Role};
use crate::stage::{RunSettings, Source, StageContext};
use columns::{output_schema, resolve_columns, to_utf8, Columns};
use duplicates::DuplicateIds;

/// Configuration of `parquet_source`.
#[derive(Debug, Clone, Deserialize, serde::Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ParquetSourceConfig {
    /// A Parquet file, a folder of Parquet files, or a glob such as `data/*.parquet`.
    pub path: String,
    /// The column that holds the text; it is written as `text`.
    #[serde(default = "default_text_column")]
    pub text_column: String,
    /// The column that holds row ids. Unset: `id` when the files have it, otherwise ids are
    /// derived from the file name and row index (`train.parquet#17`).
    #[serde(default)]
    pub id_column: Option<String>,
    /// The column that holds the gold label; it is written as `label`. Unset: `label` when the
    /// files have it.
    #[serde(default)]
    pub label_column: Option<String>,
    /// Other columns to carry through unchanged. Unset: every other column. Only the columns
    /// needed are read.
    #[serde(default)]
    pub columns: Option<Vec<String>>,
    /// Rows whose text is longer than this many bytes go to the rejects.
    #[serde(default = "default_max_text_bytes")]
    pub max_text_bytes: usize,
}

fn default_text_column() -> String {
    col::TEXT.to_string()
}

fn default_max_text_bytes() -> usize {
    100_000
}

/// The registry entry.
pub static KIND: Kind<ParquetSourceConfig> = Kind {
    name: "parquet_source",
    role: Role::Source,
    summary: "Read a text corpus from Parquet files (a file, a folder or a glob)",
    needs: Needs::NOTHING,
    example: r#"path = "${input}"
text_column = "text"
max_text_bytes = 100000"#,
    parse: parse_table::<ParquetSourceConfig>,
    keys: keys_of::<ParquetSourceConfig>,
    build: |cfg, cx| Ok(Built::Source(Box::new(ParquetSource::open(cfg, cx)?))),
    config: std::marker::PhantomData,
};

/// One Parquet file of the input.
struct InputFile {
    path: PathBuf,
    name: String,
    meta: ArrowReaderMetadata,
    /// Root column indices to read.
    projection: Vec<usize>,
    /// First row index of each row group within the file.
    row_group_start: Vec<u64>,
}

/// A row group assigned to this shard, with the sequence number of its first batch.
struct Unit {
    file: usize,
    row_group: usize,
    rows: u64,
    first_seq: u64,
}

/// Reads Parquet files batch by batch.
pub struct ParquetSource {
    files: Vec<InputFile>,
    units: Vec<Unit>,
    columns: Columns,
    schema: SchemaRef,
    max_text_bytes: usize,
    batch_size: usize,
    seed: u64,
    next_unit: usize,
    reader: Option<(usize, ParquetRecordBatchReader, u64, u64)>,
    skip_below: u64,
    /// Whether a batch was returned yet.
    emitted: bool,
    /// Ids that occur more than once in the input.
    duplicates: DuplicateIds,
}

impl ParquetSource {
    /// Opens every input file's footer, checks columns and types, and assigns row groups to
    /// this shard. Reads no data.
    pub fn open(cfg: ParquetSourceConfig, cx: &BuildContext<'_>) -> Result<Self> {
        let paths = resolve_inputs(&cfg.path)?;
        if !cx.settings.allow_incomplete {
            for folder in input_folders(&paths) {
                check_finished(&folder)?;
            }
        }
        let mut files = Vec::new();
        let mut columns: Option<Columns> = None;
        let mut schema: Option<SchemaRef> = None;
        for path in paths {
            let shown = path.display().to_string();
            let file = File::open(&path)
                .map_err(|e| Error::user(format!("cannot open input `{shown}`")).with_source(e))?;
            let meta =
                ArrowReaderMetadata::load(&file, ArrowReaderOptions::new()).map_err(|e| {
                    Error::user(format!("`{shown}` is not a readable Parquet file"))
                        .with_source(e)
                        .with_hint("check that the file is complete and really Parquet")
                })?;
            let file_schema = meta.schema().clone();
            let cols = resolve_columns(&cfg, &file_schema, &shown)?;
            let out_schema = output_schema(&cols, &file_schema, &shown)?;
            match (&columns, &schema) {
                (Some(c), Some(s)) => {
                    if s.fields() != out_schema.fields()
                        || c.carry_provenance != cols.carry_provenance
                    {
                        return Err(Error::user(format!(
                            "`{shown}` has different columns or types than the first input file"
                        ))
                        .with_details(vec![
                            format!("first file: {}", field_names(s)),
                            format!("`{shown}`: {}", field_names(&out_schema)),
                        ])
                        .with_hint("give files of one schema, or select shared columns with `columns = [...]`"));
                    }
                }
                _ => {
                    columns = Some(cols.clone());
                    schema = Some(out_schema);
                }
            }
            let mut projection: Vec<usize> = Vec::new();
            for name in cols.read_list() {
                if let Ok(i) = file_schema.index_of(name) {
                    if !projection.contains(&i) {
                        projection.push(i);
                    }
                }
            }
            let mut start = 0u64;
            let row_group_start = meta
                .metadata()
                .row_groups()
                .iter()
                .map(|rg| {
                    let s = start;
                    start += rg.num_rows() as u64;
                    s
                })
                .collect();
            files.push(InputFile {
                name: path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                path,
                meta,
                projection,
                row_group_start,
            });
        }
        let (columns, schema) = (
            columns.expect("at least one file"),
            schema.expect("one file"),
        );
        name_files_uniquely(&mut files);
        let duplicates = match &columns.id {
            Some(id) => DuplicateIds::scan(&files, id)?,
            None => DuplicateIds::default(),
        };
        if duplicates.len() > 0 {
            let n = duplicates.len();
            let (ids, occur) = if n == 1 {
                ("id", "occurs")
            } else {
                ("ids", "occur")
            };
            eprintln!(
                "warning: {n} {ids} {occur} more than once in the input: the rows after the first with each id go to the rejects as `duplicate_id`"
            );
        }
        let units = plan_units(&files, cx.settings);
        Ok(ParquetSource {
            files,
            units,
            columns,
            schema,
            max_text_bytes: cfg.max_text_bytes,
            batch_size: cx.settings.batch_size.max(1),
            seed: cx.settings.seed,
            next_unit: 0,
            reader: None,
            skip_below: 0,
            emitted: false,
            duplicates,
        })
    }

    /// One empty batch (sequence 0) when this source has no rows at all, so that every stage
    /// still runs once and the manifest counts each of them (with zeros); `None` otherwise.
    fn empty_input_batch(&mut self) -> Option<Batch> {
        if self.emitted || self.skip_below > 0 || self.units.iter().any(|u| u.rows > 0) {
            return None;
        }
        self.emitted = true;
        Some(Batch {
            data: RecordBatch::new_empty(self.schema.clone()),
            seq: 0,
            ledger: Ledger::default(),
        })
    }

    fn open_unit(&mut self, u: usize) -> Result<ParquetRecordBatchReader> {
        let unit = &self.units[u];
        let f = &self.files[unit.file];
        let shown = f.path.display().to_string();
        let file = File::open(&f.path)
            .map_err(|e| Error::user(format!("cannot open input `{shown}`")).with_source(e))?;
        let builder = ParquetRecordBatchReaderBuilder::new_with_metadata(file, f.meta.clone());
        let mask = ProjectionMask::roots(builder.parquet_schema(), f.projection.iter().copied());
        builder
            .with_row_groups(vec![unit.row_group])
            .with_projection(mask)
            .with_batch_size(self.batch_size)
            .build()
            .map_err(|e| {
                Error::user(format!(
                    "cannot read `{shown}` (row group {})",
                    unit.row_group
                ))
                .with_source(e)
            })
    }

    /// Why row `row` of file `file` goes to the rejects, if it does: (reason, what is wrong
    /// with it, said after "row N of `FILE`").
    fn row_problem(
        &self,
        file: usize,
        row: u64,
        id: Option<&str>,
        text: Option<&str>,
    ) -> Option<(&'static str, String)> {
        let Some(id) = id else {
            return Some(("null_id", "has a null id".into()));
        };
        let Some(text) = text else {
            return Some(("null_text", "has a null text".into()));
        };
        if text.trim().is_empty() {
            return Some(("empty_text", "has an empty text".into()));
        }
        if text.len() > self.max_text_bytes {
            return Some((
                "text_too_long",
                format!(
                    "has a text of {} bytes, over max_text_bytes = {}",
                    text.len(),
                    self.max_text_bytes
                ),
            ));
        }
        let (first_file, first_row) = self.duplicates.earlier(id, file, row)?;
        Some((
            "duplicate_id",
            format!(
                "has the id `{id}` of row {first_row} of `{}`, which is kept",
                self.files[first_file].path.display()
            ),
        ))
    }

    /// Turns a raw batch from the file into output rows, rejecting bad ones.
    fn convert(
        &self,
        file: usize,
        first_row: u64,
        raw: &RecordBatch,
        cx: &mut StageContext,
    ) -> Result<RecordBatch> {
        let f = &self.files[file];
        let shown = f.path.display();
        let n = raw.num_rows();
        let column = |name: &str| -> Result<&ArrayRef> {
            raw.column_by_name(name)
                .ok_or_else(|| Error::runtime(format!("column `{name}` vanished from `{shown}`")))
        };
        let text = to_utf8(
            column(&self.columns.text)?,
            &self.columns.text,
            &shown.to_string(),
        )?;
        let text = text.as_any().downcast_ref::<StringArray>().expect("utf8");
        let ids: ArrayRef = match &self.columns.id {
            Some(name) => to_utf8(column(name)?, name, &shown.to_string())?,
            None => {
                let mut b = StringBuilder::with_capacity(n, n * (f.name.len() + 8));
                for i in 0..n {
                    b.append_value(format!("{}#{}", f.name, first_row + i as u64));
                }
                Arc::new(b.finish())
            }
        };
        let id_arr = ids.as_any().downcast_ref::<StringArray>().expect("utf8");

        let mut keep = Vec::with_capacity(n);
        cx.tally().rows_in += n as u64;
        for i in 0..n {
            let row = first_row + i as u64;
            let id = id_arr.is_valid(i).then(|| id_arr.value(i));
            let t = text.is_valid(i).then(|| text.value(i));
            match self.row_problem(file, row, id, t) {
                Some((reason, detail)) => {
                    let detail = format!("row {row} of `{shown}` {detail}");
                    cx.reject(reason, detail, id.map(Into::into), t.map(Into::into));
                    keep.push(false);
                }
                None => keep.push(true),
            }
        }
        let mut out: Vec<ArrayRef> = Vec::with_capacity(self.schema.fields().len());
        if self.columns.carry_provenance {
            out.push(ids.clone());
            for name in &col::PROVENANCE[1..] {
                let field = self.schema.field_with_name(name)?;
                out.push(arrow::compute::cast(column(name)?, field.data_type())?);
            }
        } else {
            out.push(ids.clone());
            out.push(arrow::array::new_null_array(&DataType::Utf8, n));
            out.push(Arc::new(StringArray::from_iter_values(
                std::iter::repeat_n(OP_ORIG, n),
            )));
            out.push(Arc::new(StringArray::from_iter_values(
                std::iter::repeat_n("{}", n),
            )));
            out.push(Arc::new(UInt64Array::from_value(self.seed, n)));
        }
        out.push(Arc::new(text.clone()));
        if let Some(label) = &self.columns.label {
            out.push(column(label)?.clone());
        }
        for name in &self.columns.passthrough {
            out.push(column(name)?.clone());
        }
        let batch = RecordBatch::try_new(self.schema.clone(), out)?;
        let batch = if keep.iter().all(|&k| k) {
            batch
        } else {
            arrow::compute::filter_record_batch(&batch, &BooleanArray::from(keep))?
        };
        let kept = batch.num_rows() as u64;
        cx.tally().rows_unchanged += kept;
        for (op, n) in crate::batch::count_ops(&batch) {
            *cx.tally().rows_out.entry(op).or_default() += n;
        }
        Ok(batch)
    }
}

/// Gives every file a distinct name for the ids derived from it (`NAME#ROW`): its file name,
/// or, when two inputs share a file name (`a/train.parquet`, `b/train.parquet`), its path.
fn name_files_uniquely(files: &mut [InputFile]) {
    let mut count: std::collections::HashMap<String, usize> = Default::default();
    for f in files.iter() {
        *count.entry(f.name.clone()).or_default() += 1;
    }
    for f in files.iter_mut() {
        if count[&f.name] > 1 {
            f.name = f.path.display().to_string();
        }
    }
}

/// Assigns row groups to the shard (unit k goes to shard k mod N) and numbers their batches.
fn plan_units(files: &[InputFile], settings: &RunSettings) -> Vec<Unit> {
    let bs = settings.batch_size.max(1) as u64;
    let mut units = Vec::new();
    let mut k = 0u64;
    let mut seq = 0u64;
    for (fi, f) in files.iter().enumerate() {
        for (rg, meta) in f.meta.metadata().row_groups().iter().enumerate() {
            let mine = match settings.shard {
                Some((i, n)) => k % n as u64 == i as u64,
                None => true,
            };
            k += 1;
            if !mine {
                continue;
            }
            let rows = meta.num_rows() as u64;
            units.push(Unit {
                file: fi,
                row_group: rg,
                rows,
                first_seq: seq,
            });
            seq += rows.div_ceil(bs);
        }
    }
    units
}

impl Source for ParquetSource {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn skip_to(&mut self, seq: u64) {
        self.skip_below = seq;
    }

    fn total_rows(&self) -> Option<u64> {
        Some(self.units.iter().map(|u| u.rows).sum())
    }

    fn input_identity(&self) -> String {
        self.files
            .iter()
            .map(|f| crate::io::identity::parquet_file_identity(&f.path))
            .collect::<Vec<_>>()
            .join(";")
    }

    fn next_batch(&mut self, cx: &mut StageContext) -> Result<Option<Batch>> {
        loop {
            if self.reader.is_none() {
                let bs = self.batch_size as u64;
                // Skip whole row groups that an earlier attempt already committed.
                while self.next_unit < self.units.len() {
                    let u = &self.units[self.next_unit];
                    if u.first_seq + u.rows.div_ceil(bs) <= self.skip_below {
                        self.next_unit += 1;
                    } else {
                        break;
                    }
                }
                if self.next_unit >= self.units.len() {
                    return Ok(self.empty_input_batch());
                }
                let u = self.next_unit;
                self.next_unit += 1;
                let reader = self.open_unit(u)?;
                let unit = &self.units[u];
                let first_row = self.files[unit.file].row_group_start[unit.row_group];
                self.reader = Some((u, reader, unit.first_seq, first_row));
            }
            let (u, reader, seq, row) = self.reader.as_mut().expect("reader open");
            let unit_idx = *u;
            match reader.next() {
                None => {
                    self.reader = None;
                    continue;
                }
                Some(Err(e)) => {
                    let unit = &self.units[unit_idx];
                    return Err(Error::user(format!(
                        "cannot read `{}` (row group {})",
                        self.files[unit.file].path.display(),
                        unit.row_group
                    ))
                    .with_source(e)
                    .with_hint("the file may be corrupt or truncated"));
                }
                Some(Ok(raw)) => {
                    let this_seq = *seq;
                    let first_row = *row;
                    *seq += 1;
                    *row += raw.num_rows() as u64;
                    if this_seq < self.skip_below {
                        continue;
                    }
                    let file = self.units[unit_idx].file;
                    let data = self.convert(file, first_row, &raw, cx)?;
                    self.emitted = true;
                    return Ok(Some(Batch {
                        data,
                        seq: this_seq,
                        ledger: Ledger::default(),
                    }));
                }
            }
        }
    }
}
