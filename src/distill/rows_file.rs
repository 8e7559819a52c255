//! Rows written as one Parquet file that `parquet_source` and [`crate::distill::data::load`]
//! read back: `id`, `text` and, when class names are given, `label` (the class index as
//! int64, null for a row without a gold label) with the names in the schema metadata key
//! `label_names`, as the data sets of `../shared/datasets` store them.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;

use crate::error::{Error, Result};

/// One row: its id, its text and its class index when it has a gold label.
pub type Row = (String, String, Option<usize>);

/// Writes `rows` to `path` (with a `label` column when `label_names` is given), unless the file
/// already holds exactly these bytes, so that a rerun leaves its identity, and every step that
/// read it, up to date. The file appears whole or not at all (written beside, then renamed).
pub fn write_rows(path: &Path, rows: &[Row], label_names: Option<&[String]>) -> Result<()> {
    let mut fields = vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("text", DataType::Utf8, false),
    ];
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.0))),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.1))),
    ];
    let mut metadata = HashMap::new();
    if let Some(names) = label_names {
        fields.push(Field::new("label", DataType::Int64, true));
        columns.push(Arc::new(Int64Array::from_iter(
            rows.iter().map(|r| r.2.map(|l| l as i64)),
        )));
        let names = serde_json::to_string(names)
            .map_err(|e| Error::runtime("cannot encode the class names").with_source(e))?;
        metadata.insert("label_names".to_string(), names);
    }
    let schema = Arc::new(Schema::new_with_metadata(fields, metadata));
    let batch = RecordBatch::try_new(schema.clone(), columns)
        .map_err(|e| Error::runtime("cannot build the rows").with_source(e))?;
    let mut bytes = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut bytes, schema, None)
        .map_err(|e| Error::runtime("cannot encode the rows as Parquet").with_source(e))?;
    writer
        .write(&batch)
        .and_then(|_| writer.close().map(|_| ()))
        .map_err(|e| Error::runtime("cannot encode the rows as Parquet").with_source(e))?;
    if fs_err::read(path).is_ok_and(|old| old == bytes) {
        return Ok(());
    }
    let shown = path.display();
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs_err::create_dir_all(dir).map_err(|e| {
            Error::user(format!("cannot create the folder of `{shown}`")).with_source(e)
        })?;
    }
    let tmp = path.with_extension("parquet.tmp");
    fs_err::write(&tmp, &bytes)
        .and_then(|_| fs_err::rename(&tmp, path))
        .map_err(|e| Error::user(format!("cannot write `{shown}`")).with_source(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_read_back_with_their_labels_and_class_names() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rows.parquet");
        let names = vec!["negative".to_string(), "positive".to_string()];
        let rows = vec![
            ("a".to_string(), "a happy outcome".to_string(), Some(1)),
            ("b".to_string(), "the pursuit of sorrow".to_string(), None),
        ];
        write_rows(&path, &rows, Some(&names)).unwrap();
        let data = crate::distill::data::load(path.to_str().unwrap(), "text", "label", None);
        let data = data.unwrap();
        assert_eq!(data.label_names, names);
        let read: Vec<_> = data
            .examples
            .iter()
            .map(|e| (e.id.as_str(), e.text.as_str(), e.label))
            .collect();
        assert_eq!(
            read,
            [
                ("a", "a happy outcome", Some(1)),
                ("b", "the pursuit of sorrow", None)
            ]
        );
    }

    #[test]
    fn a_file_is_rewritten_only_when_its_rows_change() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pool.parquet");
        let rows = vec![
            ("x-0".to_string(), "a happy outcome".to_string(), None),
            ("x-1".to_string(), "the pursuit of love".to_string(), None),
        ];
        write_rows(&path, &rows, None).unwrap();
        let first = fs_err::metadata(&path).unwrap().modified().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        write_rows(&path, &rows, None).unwrap();
        assert_eq!(fs_err::metadata(&path).unwrap().modified().unwrap(), first);
        write_rows(&path, &rows[..1], None).unwrap();
        assert_ne!(fs_err::metadata(&path).unwrap().modified().unwrap(), first);
    }
}
