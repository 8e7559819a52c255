//! `parquet_source`: reads text corpora from Parquet, in batches, by file and row group.

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, StringArray, StringBuilder, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReader,
    ParquetRecordBatchReaderBuilder,
};
use parquet::arrow::ProjectionMask;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::batch::{col, Batch, Ledger, OP_ORIG};
use crate::error::{Error, Result};
use crate::io::files::resolve_inputs;
use crate::stage::kind::{keys_of, parse_table, BuildContext, Built, Kind, Needs, Role};
use crate::stage::{RunSettings, Source, StageContext};

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

/// Where each output column comes from.
#[derive(Debug, Clone)]
struct Columns {
    text: String,
    id: Option<String>,
    label: Option<String>,
    passthrough: Vec<String>,
    /// The files already carry `retort` provenance columns (the output of an earlier run).
    carry_provenance: bool,
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
}

fn field_names(schema: &Schema) -> String {
    schema
        .fields()
        .iter()
        .map(|f| format!("`{}`", f.name()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn is_string(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

impl ParquetSource {
    /// Opens every input file's footer, checks columns and types, and assigns row groups to
    /// this shard. Reads no data.
    pub fn open(cfg: ParquetSourceConfig, cx: &BuildContext<'_>) -> Result<Self> {
        let paths = resolve_inputs(&cfg.path)?;
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
            let id = id_arr.is_valid(i).then(|| id_arr.value(i).to_string());
            let problem = if id.is_none() {
                Some((
                    "null_id",
                    format!("row {} of `{shown}` has a null id", first_row + i as u64),
                ))
            } else if text.is_null(i) {
                Some((
                    "null_text",
                    format!("row {} of `{shown}` has a null text", first_row + i as u64),
                ))
            } else if text.value(i).trim().is_empty() {
                Some((
                    "empty_text",
                    format!(
                        "row {} of `{shown}` has an empty text",
                        first_row + i as u64
                    ),
                ))
            } else if text.value(i).len() > self.max_text_bytes {
                Some((
                    "text_too_long",
                    format!(
                        "row {} of `{shown}`: text is {} bytes, over max_text_bytes = {}",
                        first_row + i as u64,
                        text.value(i).len(),
                        self.max_text_bytes
                    ),
                ))
            } else {
                None
            };
            match problem {
                Some((reason, detail)) => {
                    let t = text.is_valid(i).then(|| text.value(i).to_string());
                    cx.reject(reason, detail, id, t);
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

fn to_utf8(a: &ArrayRef, name: &str, file: &str) -> Result<ArrayRef> {
    if a.data_type() == &DataType::Utf8 {
        return Ok(a.clone());
    }
    arrow::compute::cast(a, &DataType::Utf8).map_err(|e| {
        Error::user(format!(
            "column `{name}` of `{file}` cannot be read as text"
        ))
        .with_source(e)
    })
}

impl Columns {
    fn read_list(&self) -> Vec<&str> {
        let mut v: Vec<&str> = vec![&self.text];
        v.extend(self.id.as_deref());
        v.extend(self.label.as_deref());
        if self.carry_provenance {
            v.extend(col::PROVENANCE[1..].iter().copied());
        }
        v.extend(self.passthrough.iter().map(String::as_str));
        v
    }
}

fn resolve_columns(cfg: &ParquetSourceConfig, schema: &Schema, file: &str) -> Result<Columns> {
    let has = |n: &str| schema.index_of(n).is_ok();
    let missing = |what: &str, n: &str, key: &str| {
        Error::user(format!(
            "`{file}` has no {what} column `{n}`; its columns are: {}",
            field_names(schema)
        ))
        .with_hint(format!("set `{key}` to the column that holds the {what}"))
    };
    if !has(&cfg.text_column) {
        return Err(missing("text", &cfg.text_column, "text_column"));
    }
    let text_type = schema
        .field_with_name(&cfg.text_column)?
        .data_type()
        .clone();
    if !is_string(&text_type) {
        return Err(Error::user(format!(
            "column `{}` of `{file}` has type {text_type}; the text column must hold strings",
            cfg.text_column
        ))
        .with_hint("set `text_column` to a string column"));
    }
    let carry = col::PROVENANCE.iter().all(|c| has(c));
    let id = match &cfg.id_column {
        Some(n) if !has(n) => return Err(missing("id", n, "id_column")),
        Some(n) => Some(n.clone()),
        None if has(col::ID) => Some(col::ID.to_string()),
        None => None,
    };
    if let Some(idc) = &id {
        let t = schema.field_with_name(idc)?.data_type();
        if !(is_string(t) || t.is_integer()) {
            return Err(Error::user(format!(
                "column `{idc}` of `{file}` has type {t}; ids must be strings or integers"
            ))
            .with_hint(
                "set `id_column` to another column, or remove the id column to derive ids",
            ));
        }
    }
    let label = match &cfg.label_column {
        Some(n) if !has(n) => return Err(missing("label", n, "label_column")),
        Some(n) => Some(n.clone()),
        None if has(col::LABEL) => Some(col::LABEL.to_string()),
        None => None,
    };
    let mut taken: Vec<&str> = vec![cfg.text_column.as_str()];
    taken.extend(id.as_deref());
    taken.extend(label.as_deref());
    if carry {
        taken.extend(col::PROVENANCE.iter().copied());
    }
    let passthrough: Vec<String> = match &cfg.columns {
        Some(list) => {
            for n in list {
                if !has(n) {
                    return Err(Error::user(format!(
                        "`{file}` has no column `{n}` (listed in `columns`); its columns are: {}",
                        field_names(schema)
                    )));
                }
            }
            list.iter()
                .filter(|n| !taken.contains(&n.as_str()))
                .cloned()
                .collect()
        }
        None => schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .filter(|n| !taken.contains(&n.as_str()))
            .collect(),
    };
    let reserved: Vec<&str> = col::PROVENANCE
        .iter()
        .copied()
        .chain([col::TEXT, col::LABEL])
        .collect();
    for n in &passthrough {
        if reserved.contains(&n.as_str()) {
            return Err(Error::user(format!(
                "column `{n}` of `{file}` has the name of a column retort writes"
            ))
            .with_hint("leave it out with `columns = [...]`, or rename it"));
        }
    }
    Ok(Columns {
        text: cfg.text_column.clone(),
        id,
        label,
        passthrough,
        carry_provenance: carry,
    })
}

fn output_schema(c: &Columns, schema: &Schema, _file: &str) -> Result<SchemaRef> {
    let mut fields = vec![
        Field::new(col::ID, DataType::Utf8, true),
        Field::new(col::PARENT_ID, DataType::Utf8, true),
        Field::new(col::OP, DataType::Utf8, true),
        Field::new(col::OP_PARAMS, DataType::Utf8, true),
        Field::new(col::SEED, DataType::UInt64, true),
        Field::new(col::TEXT, DataType::Utf8, true),
    ];
    if let Some(l) = &c.label {
        let f = schema.field_with_name(l)?;
        fields.push(Field::new(col::LABEL, f.data_type().clone(), true));
    }
    for n in &c.passthrough {
        let f = schema.field_with_name(n)?;
        fields.push(Field::new(n, f.data_type().clone(), true));
    }
    let mut metadata = schema.metadata().clone();
    metadata.remove("ARROW:schema");
    Ok(Arc::new(Schema::new_with_metadata(fields, metadata)))
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
            .map(|f| {
                let rows: i64 = f.meta.metadata().file_metadata().num_rows();
                let size = std::fs::metadata(&f.path).map(|m| m.len()).unwrap_or(0);
                format!("{}:{size}:{rows}", f.path.display())
            })
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
                    return Ok(None);
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
