//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Int64Array, StringArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
pub use retort::stage::kind::Needs;
/// What a test needs from the machine, and visible skips (`SKIPPED <test>: ...`; a failure
/// under `RETORT_REQUIRE_DEPS=1`, as `make test` runs).
pub use retort::testing::{available, available_for, Dep};

/// The project root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs the `retort` binary from the project root.
pub fn retort(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_retort"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("run retort")
}

/// Runs `retort` and asserts success; returns stdout.
pub fn ok(args: &[&str]) -> String {
    let out = retort(args);
    assert!(
        out.status.success(),
        "retort {args:?} failed with {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `retort`, asserts the exit code, returns stderr.
pub fn fails(args: &[&str], code: i32) -> String {
    let out = retort(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(code),
        "retort {args:?}\nstderr:\n{stderr}"
    );
    stderr
}

/// The fixture corpus.
pub fn fixture() -> String {
    root()
        .join("fixtures/reviews.parquet")
        .display()
        .to_string()
}

/// Trains a small CNN teacher on the fixture corpus into `dir`; returns its `final` folder.
pub fn train_tiny_teacher(dir: &Path) -> String {
    train_tiny_teacher_with(dir, &[])
}

/// [`train_tiny_teacher`] with more arguments (`--set seed=7`, ...).
pub fn train_tiny_teacher_with(dir: &Path, extra: &[&str]) -> String {
    let data = fixture();
    let mut args = vec![
        "train",
        "--data",
        &data,
        "--out",
        dir.to_str().unwrap(),
        "--quiet",
        "--set",
        "epochs=1",
        "--set",
        "vocab_size=1000",
        "--set",
        "embed_dim=16",
    ];
    args.extend_from_slice(extra);
    ok(&args);
    dir.join("final").display().to_string()
}

/// Arguments of `retort stage KIND --input INPUT --output OUTPUT --quiet`, each of `sets`
/// passed as `--set KEY=VALUE`.
pub fn stage_args(kind: &str, input: &str, output: &Path, sets: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "stage".into(),
        kind.into(),
        "--input".into(),
        input.into(),
        "--output".into(),
        output.display().to_string(),
        "--quiet".into(),
    ];
    for s in sets {
        args.extend(["--set".to_string(), s.to_string()]);
    }
    args
}

/// Runs `retort` with owned arguments and asserts success; returns stdout.
pub fn ok_owned(args: &[String]) -> String {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ok(&args)
}

/// The dependencies of a stage kind's needs (Apertium: the `spa` pivot of its examples).
pub fn deps_of(needs: Needs) -> Vec<Dep> {
    let mut deps = Vec::new();
    if needs.wordnet {
        deps.push(Dep::WordNet);
    }
    if needs.apertium {
        deps.push(Dep::Apertium("spa"));
    }
    if needs.lm_asset {
        deps.push(Dep::SmolLm2);
    }
    deps
}

/// Whether every dependency of `needs` is available for `part` of the running test; each
/// missing one is reported as a skip ([`available_for`]).
#[track_caller]
pub fn needs_available(needs: Needs, part: &str) -> bool {
    for dep in deps_of(needs) {
        if !available_for(dep, part) {
            return false;
        }
    }
    true
}

/// One output row, decoded.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Row {
    pub id: String,
    pub parent_id: Option<String>,
    pub op: String,
    pub op_params: String,
    pub seed: u64,
    pub text: String,
    pub label: Option<i64>,
}

fn strings(b: &RecordBatch, name: &str) -> Option<StringArray> {
    let c = b.column_by_name(name)?;
    let c = arrow::compute::cast(c, &DataType::Utf8).ok()?;
    c.as_any().downcast_ref::<StringArray>().cloned()
}

/// Every batch of every visible Parquet file of `dir` (files in name order); none when the
/// folder is absent.
pub fn read_batches(dir: &Path) -> Vec<RecordBatch> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            n.ends_with(".parquet") && !n.starts_with('_') && !n.starts_with('.')
        })
        .collect();
    files.sort();
    let mut batches = Vec::new();
    for f in files {
        let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&f).unwrap())
            .unwrap()
            .build()
            .unwrap();
        batches.extend(reader.map(|b| b.unwrap()));
    }
    batches
}

/// Reads every visible Parquet file of a folder, sorted by id.
pub fn read_rows(dir: &Path) -> Vec<Row> {
    let mut rows = Vec::new();
    for b in read_batches(dir) {
        let id = strings(&b, "id").unwrap();
        let parent = strings(&b, "parent_id");
        let op = strings(&b, "op");
        let params = strings(&b, "op_params");
        let text = strings(&b, "text").unwrap();
        let seed = b
            .column_by_name("seed")
            .map(|c| c.as_any().downcast_ref::<UInt64Array>().unwrap().clone());
        let label = b
            .column_by_name("label")
            .map(|c| c.as_any().downcast_ref::<Int64Array>().unwrap().clone());
        for i in 0..b.num_rows() {
            rows.push(Row {
                id: id.value(i).to_string(),
                parent_id: parent
                    .as_ref()
                    .and_then(|p| p.is_valid(i).then(|| p.value(i).to_string())),
                op: op
                    .as_ref()
                    .map(|o| o.value(i).to_string())
                    .unwrap_or_default(),
                op_params: params
                    .as_ref()
                    .map(|o| o.value(i).to_string())
                    .unwrap_or_default(),
                seed: seed.as_ref().map_or(0, |s| s.value(i)),
                text: text.value(i).to_string(),
                label: label
                    .as_ref()
                    .and_then(|l| l.is_valid(i).then(|| l.value(i))),
            });
        }
    }
    rows.sort();
    rows
}

/// One row of a `_rejects/` file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RejectRow {
    pub stage: String,
    pub reason: String,
    pub detail: String,
    pub id: Option<String>,
    pub text: Option<String>,
}

/// Reads every file of `dir/_rejects`, sorted by (stage, reason, detail, id, text).
pub fn read_rejects(dir: &Path) -> Vec<RejectRow> {
    let mut rows = Vec::new();
    let rejects = dir.join("_rejects");
    for b in read_batches(&rejects) {
        let col = |n: &str| strings(&b, n).unwrap_or_else(|| panic!("{rejects:?}: no `{n}`"));
        let (stage, reason, detail, id, text) = (
            col("stage"),
            col("reason"),
            col("detail"),
            col("id"),
            col("text"),
        );
        let opt = |a: &StringArray, i: usize| a.is_valid(i).then(|| a.value(i).to_string());
        for i in 0..b.num_rows() {
            rows.push(RejectRow {
                stage: stage.value(i).to_string(),
                reason: reason.value(i).to_string(),
                detail: detail.value(i).to_string(),
                id: opt(&id, i),
                text: opt(&text, i),
            });
        }
    }
    rows.sort();
    rows
}

/// Writes a Parquet file with the given columns (row groups of `rg` rows).
pub fn write_parquet(path: &Path, columns: Vec<(&str, ArrayRef)>, rg: usize) {
    let fields: Vec<Field> = columns
        .iter()
        .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(
        schema.clone(),
        columns.into_iter().map(|(_, a)| a).collect(),
    )
    .unwrap();
    let props = parquet::file::properties::WriterProperties::builder()
        .set_max_row_group_row_count(Some(rg))
        .build();
    let mut w =
        ArrowWriter::try_new(std::fs::File::create(path).unwrap(), schema, Some(props)).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

/// A text column.
pub fn texts<'a>(v: impl IntoIterator<Item = Option<&'a str>>) -> ArrayRef {
    Arc::new(StringArray::from_iter(v))
}

/// Reads the manifest of a folder.
pub fn manifest(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("_SUCCESS.json")).unwrap()).unwrap()
}

/// The fixture corpus as (id, text, label) read from the TSV.
pub fn fixture_tsv() -> Vec<(String, String, String)> {
    std::fs::read_to_string(root().join("fixtures/reviews.tsv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            let mut f = l.split('\t');
            (
                f.next().unwrap().into(),
                f.next().unwrap().into(),
                f.next().unwrap().into(),
            )
        })
        .collect()
}

/// Writes the first `n` fixture rows (id, text, label) to `path`, for tests of slow stages.
pub fn small_fixture(path: &Path, n: usize) -> String {
    let rows: Vec<_> = fixture_tsv().into_iter().take(n).collect();
    let labels: Int64Array = rows
        .iter()
        .map(|r| Some(i64::from(r.2 == "positive")))
        .collect();
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("id", texts(rows.iter().map(|r| Some(r.0.as_str())))),
        ("text", texts(rows.iter().map(|r| Some(r.1.as_str())))),
        ("label", Arc::new(labels)),
    ];
    // The fixture's class names, as the full fixture carries them.
    let fields: Vec<Field> = columns
        .iter()
        .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
        .collect();
    let names = std::collections::HashMap::from([(
        "label_names".to_string(),
        r#"["negative","positive"]"#.to_string(),
    )]);
    let schema = Arc::new(Schema::new(fields).with_metadata(names));
    let batch = RecordBatch::try_new(
        schema.clone(),
        columns.into_iter().map(|(_, a)| a).collect(),
    )
    .unwrap();
    let mut w = ArrowWriter::try_new(std::fs::File::create(path).unwrap(), schema, None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    path.display().to_string()
}
