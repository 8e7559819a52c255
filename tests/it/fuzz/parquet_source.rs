//! `parquet_source` on hostile files: random bytes, truncated and bit-flipped files, and valid
//! Parquet with hostile strings, nulls, wrong types, every string encoding and invalid UTF-8 in
//! BYTE_ARRAY columns. Opening or reading may fail (with an error), never panic; a file that
//! reads accounts for every row exactly: passed on with its text unchanged, or rejected with the
//! reason it deserves.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BinaryArray, DictionaryArray, Float64Array, Int64Array, LargeStringArray,
    StringArray, StringViewArray,
};
use arrow::datatypes::{Field, Int32Type, Schema};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, GzipLevel, ZstdLevel};
use parquet::file::properties::WriterProperties;
use rand::Rng;
use retort::batch::Reject;
use retort::registry;
use retort::stage::kind::{BuildContext, Built};
use retort::stage::{RunSettings, StageContext};

use super::gen::{self, campaign, Gen};

/// What reading a file gave: rows passed on (id, text), rejects, and the rows read.
struct Read {
    rows: Vec<(String, String)>,
    rejects: Vec<Reject>,
    rows_in: u64,
}

/// Opens `path` with `parquet_source` (extra keys in `keys`) and reads it to the end.
fn read_source(path: &Path, keys: &str, batch_size: usize) -> retort::error::Result<Read> {
    let mut table: toml::Table = keys.parse().unwrap();
    table.insert("path".into(), path.display().to_string().into());
    let settings = RunSettings {
        batch_size,
        allow_incomplete: true,
        ..RunSettings::with_seed(3)
    };
    let cx = BuildContext {
        stage: "input",
        settings: &settings,
        after_model: false,
    };
    let Built::Source(mut src): Built = registry::find("parquet_source")
        .unwrap()
        .build(&table, &cx)?
    else {
        panic!("parquet_source is not a source");
    };
    let pool = Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap(),
    );
    let mut scx = StageContext::new("input", Arc::new(settings.clone()), pool);
    let mut read = Read {
        rows: Vec::new(),
        rejects: Vec::new(),
        rows_in: 0,
    };
    let mut last_seq = None;
    while let Some(batch) = src.next_batch(&mut scx)? {
        assert!(last_seq < Some(batch.seq), "sequence numbers must grow");
        last_seq = Some(batch.seq);
        let entry = scx.take_entry();
        read.rows_in += entry.tally.rows_in;
        read.rejects.extend(entry.rejects);
        let ids = strings(&batch.data, "id");
        let texts = strings(&batch.data, "text");
        for i in 0..batch.data.num_rows() {
            assert!(
                ids.is_valid(i) && texts.is_valid(i),
                "a null id or text was passed on"
            );
            read.rows
                .push((ids.value(i).to_string(), texts.value(i).to_string()));
        }
    }
    Ok(read)
}

fn strings(b: &RecordBatch, name: &str) -> StringArray {
    b.column_by_name(name)
        .unwrap()
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap()
        .clone()
}

fn props(g: &mut Gen) -> WriterProperties {
    let compression = match g.random_range(0..5) {
        0 => Compression::UNCOMPRESSED,
        1 => Compression::SNAPPY,
        2 => Compression::ZSTD(ZstdLevel::default()),
        3 => Compression::LZ4_RAW,
        _ => Compression::GZIP(GzipLevel::default()),
    };
    WriterProperties::builder()
        .set_compression(compression)
        .set_dictionary_enabled(g.random())
        .set_max_row_group_row_count(Some(g.random_range(1..40)))
        .set_data_page_row_count_limit(g.random_range(1..20))
        .build()
}

/// A hostile corpus: texts (with nulls, blanks, huge ones) in a random string encoding, ids
/// (strings, integers, nulls, or none), a label and a carried column.
struct Corpus {
    texts: Vec<Option<String>>,
    /// `None`: the file has no id column (ids are derived).
    ids: Option<Vec<Option<String>>>,
}

fn write_corpus(g: &mut Gen, path: &Path) -> Corpus {
    let n = g.random_range(0..60);
    let texts: Vec<Option<String>> = (0..n)
        .map(|_| match g.random_range(0..25) {
            0 => None,
            1 => Some(String::new()),
            2 => Some(" \u{3000}\n".into()),
            3 => Some("x".repeat(g.random_range(290..310))),
            _ => Some(gen::text(g)),
        })
        .collect();
    let text_col: ArrayRef = match g.random_range(0..4) {
        0 => Arc::new(StringArray::from(texts.clone())),
        1 => Arc::new(LargeStringArray::from(texts.clone())),
        2 => Arc::new(StringViewArray::from(texts.clone())),
        _ => Arc::new(
            texts
                .iter()
                .map(|t| t.as_deref())
                .collect::<DictionaryArray<Int32Type>>(),
        ),
    };
    let mut columns: Vec<(&str, ArrayRef)> = vec![("text", text_col)];
    let ids = match g.random_range(0..4) {
        0 => None,
        1 => {
            let ids: Vec<Option<i64>> = (0..n as i64)
                .map(|i| (g.random_range(0..15) != 0).then_some(i * 1_000_003 - 7))
                .collect();
            columns.push(("id", Arc::new(Int64Array::from(ids.clone()))));
            Some(ids.iter().map(|i| i.map(|i| i.to_string())).collect())
        }
        _ => {
            let ids: Vec<Option<String>> = (0..n)
                .map(|i| (g.random_range(0..15) != 0).then(|| format!("{i}:{}", gen::any_char(g))))
                .collect();
            columns.push(("id", Arc::new(StringArray::from(ids.clone()))));
            Some(ids)
        }
    };
    if g.random() {
        let labels: Vec<Option<i64>> = (0..n)
            .map(|i| (i % 4 != 3).then_some(i as i64 % 2))
            .collect();
        columns.push(("label", Arc::new(Int64Array::from(labels))));
    }
    if g.random() {
        let score: Vec<Option<f64>> = (0..n).map(|i| (i % 5 != 0).then_some(f64::NAN)).collect();
        columns.push(("score", Arc::new(Float64Array::from(score))));
    }
    let order: Vec<usize> = {
        let mut v: Vec<usize> = (0..columns.len()).collect();
        for i in (1..v.len()).rev() {
            v.swap(i, g.random_range(0..=i));
        }
        v
    };
    let columns: Vec<(&str, ArrayRef)> = order.into_iter().map(|i| columns[i].clone()).collect();
    let schema = Arc::new(Schema::new(
        columns
            .iter()
            .map(|(name, a)| Field::new(*name, a.data_type().clone(), true))
            .collect::<Vec<_>>(),
    ));
    let batch =
        RecordBatch::try_new(schema.clone(), columns.into_iter().map(|c| c.1).collect()).unwrap();
    let mut w =
        ArrowWriter::try_new(std::fs::File::create(path).unwrap(), schema, Some(props(g))).unwrap();
    // Several writes: row groups and pages fall anywhere.
    let mut at = 0;
    while at < n {
        let len = g.random_range(1..=n - at);
        w.write(&batch.slice(at, len)).unwrap();
        at += len;
    }
    w.close().unwrap();
    Corpus { texts, ids }
}

const MAX_TEXT_BYTES: usize = 300;

/// The reason the source must give for a row, or `None` when it must pass it on.
fn expected_reason(id: Option<&str>, text: Option<&str>) -> Option<&'static str> {
    match (id, text) {
        (None, _) => Some("null_id"),
        (_, None) => Some("null_text"),
        (_, Some(t)) if t.trim().is_empty() => Some("empty_text"),
        (_, Some(t)) if t.len() > MAX_TEXT_BYTES => Some("text_too_long"),
        _ => None,
    }
}

/// Valid Parquet with hostile content: every row is passed on unchanged or rejected with its
/// reason, whatever the encoding, row groups, pages and batch size.
#[test]
fn parquet_source_accounts_for_every_row_of_hostile_files() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rows_total = 0;
    campaign("parquet source rows", 200, |g, case| {
        let path = tmp.path().join(format!("c{case}.parquet"));
        let corpus = write_corpus(g, &path);
        let keys = format!("max_text_bytes = {MAX_TEXT_BYTES}");
        let read = read_source(&path, &keys, g.random_range(1..50))
            .unwrap_or_else(|e| panic!("a valid file failed: {}", e.render()));
        let n = corpus.texts.len();
        rows_total += n;
        assert_eq!(read.rows_in, n as u64);
        assert_eq!(
            read.rows.len() + read.rejects.len(),
            n,
            "rows lost or doubled"
        );
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let mut passed = read.rows.iter();
        let mut rejected = read.rejects.iter();
        for (i, text) in corpus.texts.iter().enumerate() {
            let id = match &corpus.ids {
                Some(ids) => ids[i].clone(),
                None => Some(format!("{name}#{i}")),
            };
            match expected_reason(id.as_deref(), text.as_deref()) {
                None => {
                    let (got_id, got_text) = passed.next().expect("a row is missing");
                    assert_eq!(Some(got_id), id.as_ref(), "row {i}");
                    assert_eq!(Some(got_text), text.as_ref(), "row {i}: the text changed");
                }
                Some(reason) => {
                    let r = rejected.next().expect("a reject is missing");
                    assert_eq!(r.reason, reason, "row {i}: {}", r.detail);
                    assert_eq!(r.id, id, "row {i}");
                    assert_eq!(r.text, text.clone(), "row {i}: a reject keeps the text");
                    assert!(
                        r.detail.contains(&name),
                        "the detail names the file: {}",
                        r.detail
                    );
                }
            }
        }
    });
    gen::say(&format!(
        "fuzz: parquet source rows: {rows_total} rows checked"
    ));
}

/// Random bytes, truncations and bit flips of valid files: an error or a result, never a panic.
#[test]
fn parquet_source_survives_corrupt_files() {
    let tmp = tempfile::tempdir().unwrap();
    let mut refused = 0;
    let n = campaign("parquet source corrupt files", 300, |g, case| {
        let good = tmp.path().join(format!("good{case}.parquet"));
        write_corpus(g, &good);
        let mut bytes = std::fs::read(&good).unwrap();
        match g.random_range(0..4) {
            0 => {
                // Random bytes, sometimes framed like Parquet.
                bytes = (0..g.random_range(0..600)).map(|_| g.random()).collect();
                if g.random() {
                    let mut framed = b"PAR1".to_vec();
                    framed.extend(&bytes);
                    framed.extend(b"PAR1");
                    bytes = framed;
                }
            }
            1 => bytes.truncate(g.random_range(0..bytes.len())),
            _ => {
                for _ in 0..g.random_range(1..12) {
                    let at = g.random_range(0..bytes.len());
                    bytes[at] ^= 1 << g.random_range(0..8);
                }
            }
        }
        let bad = tmp.path().join(format!("bad{case}.parquet"));
        std::fs::write(&bad, &bytes).unwrap();
        match read_source(&bad, "", g.random_range(1..50)) {
            Ok(read) => {
                assert_eq!(read.rows.len() + read.rejects.len(), read.rows_in as usize);
            }
            Err(e) => {
                refused += 1;
                let text = e.render();
                assert!(
                    text.contains(&*bad.to_string_lossy()),
                    "the error names the file: {text}"
                );
            }
        }
        std::fs::remove_file(&good).unwrap();
        std::fs::remove_file(&bad).unwrap();
    });
    gen::say(&format!(
        "fuzz: parquet source corrupt files: {refused} of {n} refused with an error"
    ));
}

/// Writes a file whose `text` and `id` BYTE_ARRAY columns are annotated as UTF-8 (or not)
/// and hold `texts` as raw bytes.
fn write_raw_byte_array(path: &Path, texts: &[Option<Vec<u8>>], utf8: bool) {
    use parquet::data_type::{ByteArray, ByteArrayType};
    use parquet::file::writer::SerializedFileWriter;
    let annotation = if utf8 { " (UTF8)" } else { "" };
    let message = format!(
        "message schema {{ optional binary text{annotation}; required binary id (UTF8); }}"
    );
    let schema = Arc::new(parquet::schema::parser::parse_message_type(&message).unwrap());
    let file = std::fs::File::create(path).unwrap();
    let mut w =
        SerializedFileWriter::new(file, schema, Arc::new(WriterProperties::builder().build()))
            .unwrap();
    let mut rg = w.next_row_group().unwrap();
    let values: Vec<ByteArray> = texts
        .iter()
        .flatten()
        .map(|t| ByteArray::from(t.clone()))
        .collect();
    let defs: Vec<i16> = texts.iter().map(|t| i16::from(t.is_some())).collect();
    let mut col = rg.next_column().unwrap().unwrap();
    col.typed::<ByteArrayType>()
        .write_batch(&values, Some(&defs), None)
        .unwrap();
    col.close().unwrap();
    let ids: Vec<ByteArray> = (0..texts.len())
        .map(|i| ByteArray::from(format!("r{i}").as_str()))
        .collect();
    let mut col = rg.next_column().unwrap().unwrap();
    col.typed::<ByteArrayType>()
        .write_batch(&ids, None, None)
        .unwrap();
    col.close().unwrap();
    rg.close().unwrap();
    w.close().unwrap();
}

/// Invalid UTF-8 in a BYTE_ARRAY column that claims to be UTF-8 (lone surrogates as CESU-8,
/// overlong forms, stray continuation bytes, a cut sequence): a clear error that names the
/// file, never a panic and never a row with replaced characters. A binary column without the
/// annotation is refused as "not strings".
#[test]
fn parquet_source_refuses_invalid_utf8_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let bad: [&[u8]; 6] = [
        b"\xed\xa0\x80 lone surrogate",
        b"\xc0\xaf overlong slash",
        b"\x80\x80 continuation",
        b"cut \xe2\x82",
        b"\xff\xfe",
        b"ok then \xf5\x80\x80\x80 beyond U+10FFFF",
    ];
    for (k, bytes) in bad.iter().enumerate() {
        let mut texts: Vec<Option<Vec<u8>>> = vec![Some(b"A fine text.".to_vec()), None];
        texts.insert(k % 3, Some(bytes.to_vec()));
        let f = tmp.path().join(format!("bad{k}.parquet"));
        write_raw_byte_array(&f, &texts, true);
        let err = read_source(&f, "", 7)
            .err()
            .unwrap_or_else(|| panic!("{bytes:?} was read"));
        let text = err.render();
        assert!(text.contains(&*f.to_string_lossy()), "{text}");
        assert!(
            text.contains("UTF-8") || text.contains("utf-8") || text.contains("utf8"),
            "{text}"
        );
    }
    let f = tmp.path().join("binary.parquet");
    write_raw_byte_array(&f, &[Some(b"\xff".to_vec())], false);
    let err = read_source(&f, "", 7)
        .err()
        .expect("a binary text column was read")
        .render();
    assert!(err.contains("must hold strings"), "{err}");
    // A binary passthrough column with invalid UTF-8 is carried as it is.
    let f = tmp.path().join("carried.parquet");
    let schema = Arc::new(Schema::new(vec![
        Field::new("text", arrow::datatypes::DataType::Utf8, true),
        Field::new("blob", arrow::datatypes::DataType::Binary, true),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(vec!["Fine.", "Also fine."])) as ArrayRef,
            Arc::new(BinaryArray::from(vec![Some(&b"\xff\xfe"[..]), None])) as ArrayRef,
        ],
    )
    .unwrap();
    let mut w = ArrowWriter::try_new(std::fs::File::create(&f).unwrap(), schema, None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    let read = read_source(&f, "", 7).unwrap_or_else(|e| panic!("{}", e.render()));
    assert_eq!(read.rows.len(), 2);
}

/// Columns of the wrong type are refused with a message naming the column, never a panic.
#[test]
fn parquet_source_refuses_wrong_types() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("types.parquet");
    // (columns, keys, what the error must say)
    type Case<'a> = (Vec<(&'a str, ArrayRef)>, &'a str, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec![("text", Arc::new(Float64Array::from(vec![1.5])) as ArrayRef)],
            "",
            "must hold strings",
        ),
        (
            vec![
                ("text", Arc::new(StringArray::from(vec!["a"])) as ArrayRef),
                ("id", Arc::new(Float64Array::from(vec![1.5])) as ArrayRef),
            ],
            "",
            "ids must be strings or integers",
        ),
        (
            vec![("body", Arc::new(StringArray::from(vec!["a"])) as ArrayRef)],
            "",
            "no text column",
        ),
        (
            vec![("text", Arc::new(StringArray::from(vec!["a"])) as ArrayRef)],
            "id_column = \"nope\"",
            "no id column",
        ),
        (
            vec![
                ("text", Arc::new(StringArray::from(vec!["a"])) as ArrayRef),
                ("op", Arc::new(StringArray::from(vec!["x"])) as ArrayRef),
            ],
            "",
            "has the name of a column retort writes",
        ),
    ];
    for (columns, keys, want) in cases {
        crate::common::write_parquet(&f, columns, 10);
        let err = read_source(&f, keys, 7).err().expect("read").render();
        assert!(err.contains(want), "{want}: {err}");
    }
}
