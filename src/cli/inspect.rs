//! `retort inspect DIR`: what an output folder holds.

use std::collections::BTreeMap;
use std::path::Path;

use arrow::array::{Array, StringArray};
use arrow::datatypes::DataType;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;
use serde::Serialize;

use retort::batch::col;
use retort::error::{Error, Result};
use retort::io::files::resolve_inputs;

/// One sample row.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    /// Row id.
    pub id: String,
    /// Operation.
    pub op: String,
    /// Label, as text.
    pub label: Option<String>,
    /// Text.
    pub text: String,
}

/// Summary of an output folder.
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    /// The folder.
    pub path: String,
    /// Whether a manifest (`_SUCCESS*.json`) is present.
    pub complete: bool,
    /// Data files.
    pub files: usize,
    /// Rows in the data files.
    pub rows: u64,
    /// Bytes of the data files.
    pub bytes: u64,
    /// Bytes per row.
    pub bytes_per_row: f64,
    /// Rows by `op`.
    pub rows_by_op: BTreeMap<String, u64>,
    /// Rows by label.
    pub labels: BTreeMap<String, u64>,
    /// Rejected rows by reason.
    pub rejects: BTreeMap<String, u64>,
    /// A few rows, the first of each op first.
    pub samples: Vec<Sample>,
}

fn strings(batch: &arrow::record_batch::RecordBatch, name: &str) -> Result<Option<StringArray>> {
    let Some(c) = batch.column_by_name(name) else {
        return Ok(None);
    };
    let c = arrow::compute::cast(c, &DataType::Utf8)?;
    Ok(c.as_any().downcast_ref::<StringArray>().cloned())
}

/// Reads the named columns (those present) of one Parquet file batch by batch.
fn read_columns(
    path: &Path,
    names: &[&str],
    mut f: impl FnMut(&arrow::record_batch::RecordBatch) -> Result<()>,
) -> Result<()> {
    let shown = path.display().to_string();
    let file = std::fs::File::open(path)
        .map_err(|e| Error::user(format!("cannot open `{shown}`")).with_source(e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| {
        Error::user(format!("`{shown}` is not a readable Parquet file")).with_source(e)
    })?;
    let schema = builder.schema().clone();
    let idx: Vec<usize> = names
        .iter()
        .filter_map(|n| schema.index_of(n).ok())
        .collect();
    let mask = ProjectionMask::roots(builder.parquet_schema(), idx);
    let reader = builder
        .with_projection(mask)
        .with_batch_size(8192)
        .build()
        .map_err(|e| Error::user(format!("cannot read `{shown}`")).with_source(e))?;
    for batch in reader {
        let batch =
            batch.map_err(|e| Error::user(format!("cannot read `{shown}`")).with_source(e))?;
        f(&batch)?;
    }
    Ok(())
}

/// Class names from the schema metadata key `label_names` (a JSON array), when present.
pub fn label_names(path: &Path) -> Vec<String> {
    let Ok(file) = std::fs::File::open(path) else {
        return vec![];
    };
    let Ok(builder) = ParquetRecordBatchReaderBuilder::try_new(file) else {
        return vec![];
    };
    builder
        .schema()
        .metadata()
        .get("label_names")
        .and_then(|v| serde_json::from_str(v).ok())
        .unwrap_or_default()
}

/// Inspects an output folder (or any Parquet file, folder or glob); samples come from rows
/// whose `op` is `only_op`, when given.
pub fn inspect(path: &str, samples: usize, only_op: Option<&str>) -> Result<Inspection> {
    let files = resolve_inputs(path)?;
    let dir = Path::new(path);
    let complete = dir.is_dir()
        && std::fs::read_dir(dir)
            .map(|d| {
                d.flatten()
                    .any(|e| e.file_name().to_string_lossy().starts_with("_SUCCESS"))
            })
            .unwrap_or(false);
    let mut out = Inspection {
        path: path.to_string(),
        complete,
        files: files.len(),
        rows: 0,
        bytes: 0,
        bytes_per_row: 0.0,
        rows_by_op: BTreeMap::new(),
        labels: BTreeMap::new(),
        rejects: BTreeMap::new(),
        samples: Vec::new(),
    };
    let mut extra: Vec<Sample> = Vec::new();
    let names = label_names(&files[0]);
    for file in &files {
        out.bytes += std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
        read_columns(file, &[col::ID, col::OP, col::LABEL, col::TEXT], |b| {
            out.rows += b.num_rows() as u64;
            let ops = strings(b, col::OP)?;
            let labels = strings(b, col::LABEL)?;
            let ids = strings(b, col::ID)?;
            let texts = strings(b, col::TEXT)?;
            for i in 0..b.num_rows() {
                let op = ops
                    .as_ref()
                    .filter(|a| a.is_valid(i))
                    .map(|a| a.value(i))
                    .unwrap_or("?");
                *out.rows_by_op.entry(op.to_string()).or_default() += 1;
                let label = labels.as_ref().filter(|a| a.is_valid(i)).map(|a| {
                    let v = a.value(i);
                    match v.parse::<usize>().ok().and_then(|k| names.get(k)) {
                        Some(name) => format!("{v} ({name})"),
                        None => v.to_string(),
                    }
                });
                if let Some(l) = &label {
                    *out.labels.entry(l.clone()).or_default() += 1;
                }
                if only_op.is_some_and(|o| o != op) {
                    continue;
                }
                let first_of_op = !out.samples.iter().any(|s| s.op == op);
                let want = out.samples.len() + extra.len() < samples * 2;
                if (first_of_op && out.samples.len() < samples) || want {
                    let s = Sample {
                        id: ids
                            .as_ref()
                            .filter(|a| a.is_valid(i))
                            .map(|a| a.value(i).to_string())
                            .unwrap_or_default(),
                        op: op.to_string(),
                        label,
                        text: texts
                            .as_ref()
                            .filter(|a| a.is_valid(i))
                            .map(|a| a.value(i).to_string())
                            .unwrap_or_default(),
                    };
                    if first_of_op && out.samples.len() < samples {
                        out.samples.push(s);
                    } else {
                        extra.push(s);
                    }
                }
            }
            Ok(())
        })?;
    }
    for s in extra {
        if out.samples.len() >= samples {
            break;
        }
        out.samples.push(s);
    }
    if out.rows > 0 {
        out.bytes_per_row = out.bytes as f64 / out.rows as f64;
    }
    let rejects_dir = dir.join("_rejects");
    if rejects_dir.is_dir() {
        if let Ok(files) = resolve_inputs(&rejects_dir.display().to_string()) {
            for file in files {
                read_columns(&file, &["reason"], |b| {
                    if let Some(r) = strings(b, "reason")? {
                        for v in r.iter().flatten() {
                            *out.rejects.entry(v.to_string()).or_default() += 1;
                        }
                    }
                    Ok(())
                })?;
            }
        }
    }
    Ok(out)
}

impl Inspection {
    /// Human-readable report.
    pub fn render(&self) -> String {
        let mut s = format!(
            "{}: {} rows in {} file{} ({}), {:.1} bytes/row\n",
            self.path,
            self.rows,
            self.files,
            if self.files == 1 { "" } else { "s" },
            if self.complete {
                "complete"
            } else {
                "no _SUCCESS manifest: incomplete or not written by retort"
            },
            self.bytes_per_row
        );
        s.push_str("rows by op:\n");
        for (op, n) in &self.rows_by_op {
            s.push_str(&format!("  {op:<14} {n:>10}\n"));
        }
        if !self.labels.is_empty() {
            s.push_str("labels:\n");
            for (l, n) in &self.labels {
                let pct = 100.0 * *n as f64 / self.rows.max(1) as f64;
                s.push_str(&format!("  {l:<14} {n:>10}  {pct:5.1}%\n"));
            }
        }
        if !self.rejects.is_empty() {
            s.push_str("rejected (in _rejects/):\n");
            for (r, n) in &self.rejects {
                s.push_str(&format!("  {r:<14} {n:>10}\n"));
            }
        }
        if !self.samples.is_empty() {
            s.push_str("samples:\n");
            for x in &self.samples {
                let label = x
                    .label
                    .as_deref()
                    .map(|l| format!(" [{l}]"))
                    .unwrap_or_default();
                let mut text: String = x.text.chars().take(100).collect();
                if text.len() < x.text.len() {
                    text.push('…');
                }
                s.push_str(&format!("  {} ({}){label}: {text}\n", x.id, x.op));
            }
        }
        s
    }
}
