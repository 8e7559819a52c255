//! Reading labelled and soft-labelled rows from Parquet for training and evaluation.

use std::collections::BTreeSet;

use arrow::array::{Array, FixedSizeListArray, Float32Array, StringArray};
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ProjectionMask;

use crate::batch::col;
use crate::error::{Error, Result};
use crate::io::files::resolve_inputs;

/// Name of the column holding teacher logits.
pub const TEACHER_LOGITS: &str = "teacher_logits";

/// One row for training or evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    /// Row id (derived from the file name and row when the files have none).
    pub id: String,
    /// The original row an augmented row came from.
    pub parent_id: Option<String>,
    /// The text.
    pub text: String,
    /// Gold class index, when labelled.
    pub label: Option<usize>,
    /// Teacher logits at temperature 1, when soft-labelled.
    pub teacher: Option<Vec<f32>>,
}

/// Rows plus the class names they use.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// The rows, in file order.
    pub examples: Vec<Example>,
    /// Class names, in class-index order.
    pub label_names: Vec<String>,
}

impl Dataset {
    /// Rows with a gold label.
    pub fn labelled(&self) -> usize {
        self.examples.iter().filter(|e| e.label.is_some()).count()
    }

    /// Rows with teacher logits.
    pub fn soft_labelled(&self) -> usize {
        self.examples.iter().filter(|e| e.teacher.is_some()).count()
    }
}

/// Parses a `label_names` metadata value: a JSON array (what retort writes) or a
/// comma-separated list (`negative,positive`, as some datasets store it).
pub fn parse_label_names(value: &str) -> Option<Vec<String>> {
    let names: Vec<String> = match serde_json::from_str(value) {
        Ok(v) => v,
        Err(_) if !value.trim_start().starts_with('[') => {
            value.split(',').map(|s| s.trim().to_string()).collect()
        }
        Err(_) => return None,
    };
    (!names.is_empty() && names.iter().all(|n| !n.is_empty())).then_some(names)
}

/// Class names recorded in a Parquet file's schema metadata (`label_names`).
fn metadata_label_names(schema: &arrow::datatypes::Schema) -> Option<Vec<String>> {
    schema
        .metadata()
        .get("label_names")
        .and_then(|v| parse_label_names(v))
}

/// Reads every row of `path` (a file, folder or glob). `expected` are the class names the
/// caller already uses (a student's); files that disagree are refused.
pub fn load(
    path: &str,
    text_column: &str,
    label_column: &str,
    expected: Option<&[String]>,
) -> Result<Dataset> {
    let files = resolve_inputs(path)?;
    let columns = Columns {
        text: text_column,
        label: label_column,
    };
    let mut rows = Rows::default();
    let mut names: Option<Vec<String>> = expected.map(|e| e.to_vec());
    for file in &files {
        let shown = file.display().to_string();
        let reader = open_file(file, &shown, &columns, &mut names)?;
        let mut row = 0usize;
        for batch in reader {
            let batch =
                batch.map_err(|e| Error::user(format!("cannot read `{shown}`")).with_source(e))?;
            read_batch(&batch, file, &shown, &columns, &mut row, &mut rows)?;
        }
    }
    let Rows {
        mut examples,
        string_labels,
    } = rows;
    number_string_labels(&mut examples, string_labels, &mut names)?;
    check_classes(path, examples, names)
}

/// The columns a data set is read from.
struct Columns<'a> {
    text: &'a str,
    label: &'a str,
}

/// The rows read so far, and the string labels still to number (row index, label).
#[derive(Default)]
struct Rows {
    examples: Vec<Example>,
    string_labels: Vec<(usize, String)>,
}

/// Opens one Parquet file, checks its text column and its class names (kept in `names`), and
/// reads only the columns a data set uses.
fn open_file(
    file: &std::path::Path,
    shown: &str,
    columns: &Columns<'_>,
    names: &mut Option<Vec<String>>,
) -> Result<ParquetRecordBatchReader> {
    let (text_column, label_column) = (columns.text, columns.label);
    let f = std::fs::File::open(file)
        .map_err(|e| Error::user(format!("cannot open `{shown}`")).with_source(e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(f).map_err(|e| {
        Error::user(format!("`{shown}` is not a readable Parquet file")).with_source(e)
    })?;
    let schema = builder.schema().clone();
    if schema.index_of(text_column).is_err() {
        return Err(Error::user(format!(
            "`{shown}` has no text column `{text_column}`; its columns are: {}",
            crate::batch::field_names(&schema)
        )));
    }
    if let Some(file_names) = metadata_label_names(&schema) {
        match &names {
            Some(n) if *n != file_names => {
                return Err(Error::user(format!(
                    "`{shown}` has classes {file_names:?}, but {n:?} are expected"
                ))
                .with_hint("train and label with models and data of the same classes"));
            }
            Some(_) => {}
            None => *names = Some(file_names),
        }
    }
    let wanted: Vec<usize> = [
        text_column,
        label_column,
        col::ID,
        col::PARENT_ID,
        TEACHER_LOGITS,
    ]
    .iter()
    .filter_map(|n| schema.index_of(n).ok())
    .collect();
    let mask = ProjectionMask::roots(builder.parquet_schema(), wanted);
    builder
        .with_projection(mask)
        .with_batch_size(8192)
        .build()
        .map_err(|e| Error::user(format!("cannot read `{shown}`")).with_source(e))
}

/// Appends the rows of one batch of `file` to `rows`; `row` numbers the file's rows (for ids
/// of files without an `id` column).
fn read_batch(
    batch: &RecordBatch,
    file: &std::path::Path,
    shown: &str,
    columns: &Columns<'_>,
    row: &mut usize,
    rows: &mut Rows,
) -> Result<()> {
    let (text_column, label_column) = (columns.text, columns.label);
    let strings = |name: &str| -> Result<Option<StringArray>> {
        let Some(c) = batch.column_by_name(name) else {
            return Ok(None);
        };
        let c = arrow::compute::cast(c, &DataType::Utf8).map_err(|e| {
            Error::user(format!(
                "column `{name}` of `{shown}` cannot be read as text"
            ))
            .with_source(e)
        })?;
        Ok(c.as_any().downcast_ref::<StringArray>().cloned())
    };
    let text = strings(text_column)?.expect("checked above");
    let ids = strings(col::ID)?;
    let parents = strings(col::PARENT_ID)?;
    let label_col = batch.column_by_name(label_column);
    let int_labels = match label_col {
        Some(c) if c.data_type().is_integer() => Some(
            arrow::compute::cast(c, &DataType::Int64)?
                .as_any()
                .downcast_ref::<arrow::array::Int64Array>()
                .cloned()
                .expect("int64"),
        ),
        _ => None,
    };
    let str_labels = match label_col {
        Some(c) if !c.data_type().is_integer() => strings(label_column)?,
        _ => None,
    };
    let teacher = match batch.column_by_name(TEACHER_LOGITS) {
        Some(c) => Some(teacher_column(c, shown)?),
        None => None,
    };
    for i in 0..batch.num_rows() {
        let id = row_id(ids.as_ref(), i, file, *row);
        if text.is_null(i) {
            return Err(Error::user(format!(
                "row `{id}` of `{shown}` has a null text"
            )));
        }
        let mut label = None;
        if let Some(l) = &int_labels {
            if l.is_valid(i) {
                let v = l.value(i);
                if v < 0 {
                    return Err(Error::user(format!(
                        "row `{id}` of `{shown}` has label {v}; labels must be ≥ 0"
                    )));
                }
                label = Some(v as usize);
            }
        }
        if let Some(l) = &str_labels {
            if l.is_valid(i) {
                rows.string_labels
                    .push((rows.examples.len(), l.value(i).to_string()));
            }
        }
        let soft = teacher.as_ref().and_then(|(values, width, list)| {
            list.is_valid(i)
                .then(|| values[i * width..(i + 1) * width].to_vec())
        });
        rows.examples.push(Example {
            id,
            parent_id: parents
                .as_ref()
                .filter(|a| a.is_valid(i))
                .map(|a| a.value(i).to_string()),
            text: text.value(i).to_string(),
            label,
            teacher: soft,
        });
        *row += 1;
    }
    Ok(())
}

/// The id of row `i` of a batch: its `id` value, else `FILE_NAME#ROW` (`row` counts the
/// file's rows).
fn row_id(ids: Option<&StringArray>, i: usize, file: &std::path::Path, row: usize) -> String {
    ids.filter(|a| a.is_valid(i))
        .map(|a| a.value(i).to_string())
        .unwrap_or_else(|| {
            format!(
                "{}#{row}",
                file.file_name()
                    .map(|n| n.to_string_lossy())
                    .unwrap_or_default()
            )
        })
}

/// String labels: numbered through the known class names, or the classes are named in
/// sorted order.
fn number_string_labels(
    examples: &mut [Example],
    string_labels: Vec<(usize, String)>,
    names: &mut Option<Vec<String>>,
) -> Result<()> {
    if !string_labels.is_empty() {
        let known = names.get_or_insert_with(|| {
            string_labels
                .iter()
                .map(|(_, s)| s.clone())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect()
        });
        for (i, s) in string_labels {
            let k = known.iter().position(|n| *n == s).ok_or_else(|| {
                Error::user(format!(
                    "row `{}` has label `{s}`, which is not one of {known:?}",
                    examples[i].id
                ))
            })?;
            examples[i].label = Some(k);
        }
    }
    Ok(())
}

/// The data set, once every label is below the class count and the teacher logits have one
/// value per class.
fn check_classes(
    path: &str,
    examples: Vec<Example>,
    names: Option<Vec<String>>,
) -> Result<Dataset> {
    let max_label = examples.iter().filter_map(|e| e.label).max();
    let label_names = match names {
        Some(n) => n,
        None => (0..=max_label.unwrap_or(0))
            .map(|i| i.to_string())
            .collect(),
    };
    let classes = label_names.len();
    if let Some(m) = max_label {
        if m >= classes {
            return Err(Error::user(format!(
                "`{path}` has label {m}, but only {classes} classes {label_names:?}"
            )));
        }
    }
    if let Some(e) = examples
        .iter()
        .find(|e| e.teacher.as_ref().is_some_and(|t| t.len() != classes))
    {
        return Err(Error::user(format!(
            "`{path}`: teacher logits have {} classes, but the labels have {classes} ({label_names:?})",
            e.teacher.as_ref().map_or(0, |t| t.len())
        ))
        .with_hint("soft labels must come from a teacher trained on the same classes"));
    }
    Ok(Dataset {
        examples,
        label_names,
    })
}

/// Flattens a `fixed_size_list<float32, C>` column into (values, C, list array).
fn teacher_column(
    c: &arrow::array::ArrayRef,
    file: &str,
) -> Result<(Vec<f32>, usize, FixedSizeListArray)> {
    let list = c
        .as_any()
        .downcast_ref::<FixedSizeListArray>()
        .ok_or_else(|| {
            Error::user(format!(
                "column `{TEACHER_LOGITS}` of `{file}` has type {}; expected fixed_size_list<float32, C>",
                c.data_type()
            ))
        })?
        .clone();
    let width = list.value_length() as usize;
    let values = list
        .values()
        .as_any()
        .downcast_ref::<Float32Array>()
        .ok_or_else(|| {
            Error::user(format!(
                "column `{TEACHER_LOGITS}` of `{file}` must hold float32"
            ))
        })?;
    // Offset-aware copy of the child values of this slice.
    let start = list.offset() * width;
    let v = values.values()[start..start + list.len() * width].to_vec();
    Ok((v, width, list))
}

#[cfg(test)]
mod tests {
    use super::parse_label_names;

    #[test]
    fn label_names_as_json_or_comma_separated() {
        let two = Some(vec!["negative".to_string(), "positive".to_string()]);
        assert_eq!(parse_label_names(r#"["negative","positive"]"#), two);
        assert_eq!(parse_label_names("negative,positive"), two);
        assert_eq!(parse_label_names("negative, positive"), two);
        assert_eq!(parse_label_names("[broken"), None);
        assert_eq!(parse_label_names("a,,b"), None);
    }
}
