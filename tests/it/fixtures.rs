//! The fixture corpus: `fixtures/reviews.parquet` is generated from `fixtures/reviews.tsv`.
//! Regenerate with `UPDATE_FIXTURES=1 cargo test --test it fixtures`.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;

use crate::common::*;

const LABELS: [&str; 2] = ["negative", "positive"];

/// `reviews_train.parquet` and `reviews_test.parquet`: every fourth row is a test row.
fn split(rows: &[(String, String, String)], test: bool) -> Vec<(String, String, String)> {
    rows.iter()
        .enumerate()
        .filter(|(i, _)| (i % 4 == 0) == test)
        .map(|(_, r)| r.clone())
        .collect()
}

fn write_fixture(path: &std::path::Path, rows: &[(String, String, String)]) {
    let ids: ArrayRef = Arc::new(StringArray::from_iter_values(
        rows.iter().map(|r| r.0.as_str()),
    ));
    let text: ArrayRef = Arc::new(StringArray::from_iter_values(
        rows.iter().map(|r| r.1.as_str()),
    ));
    let label: ArrayRef =
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| {
            LABELS.iter().position(|l| *l == r.2).expect("known label") as i64
        })));
    let metadata = HashMap::from([(
        "label_names".to_string(),
        serde_json::to_string(&LABELS).unwrap(),
    )]);
    let schema = Arc::new(Schema::new_with_metadata(
        vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("text", DataType::Utf8, false),
            Field::new("label", DataType::Int64, false),
        ],
        metadata,
    ));
    let batch = RecordBatch::try_new(schema.clone(), vec![ids, text, label]).unwrap();
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::ZSTD(Default::default()))
        .set_max_row_group_row_count(Some(80))
        .set_created_by("retort fixtures".into())
        .build();
    let mut w =
        ArrowWriter::try_new(std::fs::File::create(path).unwrap(), schema, Some(props)).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

#[test]
fn fixture_parquet_matches_tsv() {
    let all = fixture_tsv();
    for (name, tsv) in [
        ("reviews.parquet", all.clone()),
        ("reviews_train.parquet", split(&all, false)),
        ("reviews_test.parquet", split(&all, true)),
    ] {
        let path = root().join("fixtures").join(name);
        if std::env::var_os("UPDATE_FIXTURES").is_some() || !path.exists() {
            write_fixture(&path, &tsv);
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(&path, dir.path().join(name)).unwrap();
        let rows = read_rows(dir.path());
        assert_eq!(rows.len(), tsv.len(), "{name}");
        for (r, (id, text, label)) in rows.iter().zip(&tsv) {
            assert_eq!(&r.id, id);
            assert_eq!(&r.text, text);
            assert_eq!(LABELS[r.label.unwrap() as usize], label);
        }
    }
}
