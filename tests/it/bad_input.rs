//! Bad input: a clear error, exit code 1 and no manifest; or, for bad rows, the rejects.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array};

use crate::common::*;

/// Runs `retort stage shuffle` on `input`, returning (exit code, stderr with paths masked).
fn stage(input: &str, output: &Path, extra: &[&str], tmp: &Path) -> (i32, String) {
    let mut args = vec![
        "stage",
        "shuffle",
        "--input",
        input,
        "--output",
        output.to_str().unwrap(),
        "--quiet",
    ];
    args.extend(extra);
    let out = retort(&args);
    let stderr = String::from_utf8_lossy(&out.stderr).replace(&tmp.display().to_string(), "[TMP]");
    (out.status.code().unwrap(), stderr)
}

#[test]
fn missing_input() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let input = tmp.path().join("nope.parquet");
    let (code, err) = stage(input.to_str().unwrap(), &out, &[], tmp.path());
    assert_eq!(code, 1);
    insta::assert_snapshot!("missing_input", err);
    assert!(!out.join("_SUCCESS.json").exists());
}

#[test]
fn corrupt_parquet() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.parquet");
    std::fs::write(&bad, b"PAR1 this is not really parquet at all PAR1").unwrap();
    let out = tmp.path().join("out");
    let (code, err) = stage(bad.to_str().unwrap(), &out, &[], tmp.path());
    assert_eq!(code, 1);
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains("[TMP]/bad.parquet"), "{err}");
    assert!(err.contains("not a readable Parquet file"), "{err}");
    assert!(!out.join("_SUCCESS.json").exists());
}

#[test]
fn truncated_parquet() {
    let tmp = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(fixture()).unwrap();
    let cut = tmp.path().join("cut.parquet");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let out = tmp.path().join("out");
    let (code, err) = stage(cut.to_str().unwrap(), &out, &[], tmp.path());
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("[TMP]/cut.parquet"), "{err}");
    assert!(!out.join("_SUCCESS.json").exists());
}

#[test]
fn missing_text_column_names_file_column_and_columns_present() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("reviews.parquet");
    write_parquet(
        &f,
        vec![
            ("sentence", texts([Some("A fine day.")])),
            ("label", Arc::new(Int64Array::from(vec![1])) as ArrayRef),
        ],
        10,
    );
    let out = tmp.path().join("out");
    let (code, err) = stage(f.to_str().unwrap(), &out, &[], tmp.path());
    assert_eq!(code, 1);
    insta::assert_snapshot!("missing_text_column", err);
    assert!(!out.join("_SUCCESS.json").exists());
    // Naming the right column fixes it.
    let (code, err) = stage(
        f.to_str().unwrap(),
        &out,
        &["--set", "source.text_column=sentence"],
        tmp.path(),
    );
    assert_eq!(code, 0, "{err}");
}

#[test]
fn wrong_text_column_type() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("numbers.parquet");
    write_parquet(
        &f,
        vec![("text", Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef)],
        10,
    );
    let out = tmp.path().join("out");
    let (code, err) = stage(f.to_str().unwrap(), &out, &[], tmp.path());
    assert_eq!(code, 1);
    insta::assert_snapshot!("wrong_text_type", err);
    assert!(!out.join("_SUCCESS.json").exists());
}

#[test]
fn bad_rows_go_to_rejects_and_every_row_is_accounted_for() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("mixed.parquet");
    let long = "word ".repeat(100);
    let rows = [
        Some("First sentence here. Second sentence there."),
        None,
        Some(""),
        Some("   "),
        Some(long.as_str()),
        Some("只有一句话。这是第二句。"),
        Some("Emoji 😀 here. And 👍🏽 there!"),
        Some("שלום עולם. מה שלומך?"),
        Some("e\u{301}te\u{301}. Cafe\u{301} fini."),
        Some("One sentence only"),
    ];
    write_parquet(&f, vec![("text", texts(rows))], 4);
    let out = tmp.path().join("out");
    let (code, err) = stage(
        f.to_str().unwrap(),
        &out,
        &[
            "--set",
            "keep_original=true",
            "--set",
            "source.max_text_bytes=200",
        ],
        tmp.path(),
    );
    assert_eq!(code, 0, "{err}");
    let m = manifest(&out);
    let src = &m["stages"]["input"];
    assert_eq!(src["rows_in"], 10);
    assert_eq!(src["rows_rejected"], 4);
    assert_eq!(src["rejected_by_reason"]["null_text"], 1);
    assert_eq!(src["rejected_by_reason"]["empty_text"], 2);
    assert_eq!(src["rejected_by_reason"]["text_too_long"], 1);
    let shuf = &m["stages"]["shuffle"];
    assert_eq!(shuf["rows_in"], 6);
    // "One sentence only" cannot be shuffled: counted, passed over.
    assert_eq!(
        shuf["rows_unchanged"].as_u64().unwrap() + shuf["rows_changed"].as_u64().unwrap(),
        6
    );
    assert!(shuf["rows_unchanged"].as_u64().unwrap() >= 1);
    let rows = read_rows(&out);
    assert_eq!(rows.iter().filter(|r| r.op == "orig").count(), 6);
    assert_eq!(m["rows_rejected"], 4);
    // The rejects keep the row id and the whole text (null for the null one).
    assert_eq!(std::fs::read_dir(out.join("_rejects")).unwrap().count(), 1);
    let rejects: Vec<_> = read_rejects(&out)
        .into_iter()
        .map(|r| (r.id.unwrap_or_default(), r.stage, r.reason, r.text))
        .collect();
    let reject = |row: usize, reason: &str, text: Option<&str>| {
        (
            format!("mixed.parquet#{row}"),
            "input".to_string(),
            reason.to_string(),
            text.map(str::to_string),
        )
    };
    let mut expected = vec![
        reject(1, "null_text", None),
        reject(2, "empty_text", Some("")),
        reject(3, "empty_text", Some("   ")),
        reject(4, "text_too_long", Some(long.as_str())),
    ];
    expected.sort();
    let mut rejects = rejects;
    rejects.sort();
    assert_eq!(rejects, expected);
    let inspect = ok(&["inspect", out.to_str().unwrap()]);
    assert!(inspect.contains("text_too_long"), "{inspect}");
    let ids: Vec<_> = rows
        .iter()
        .filter(|r| r.op == "orig")
        .map(|r| r.id.clone())
        .collect();
    assert!(ids.contains(&"mixed.parquet#0".to_string()), "{ids:?}");
}

#[test]
fn a_pipeline_with_several_mistakes_reports_them_all() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("broken.toml");
    std::fs::write(
        &p,
        r#"
[pipeline]
name = "broken"
seed = 1
threads = 4

[stages.corpus]
kind = "parquet_source"
path = "fixtures/reviews.parquet"

[stages.syn]
kind = "synonim"
inputs = ["corpus"]

[stages.swap]
kind = "perturb"
inputs = ["corpsu"]
mode = "swap"
bogus = 3

[stages.a]
kind = "shuffle"
inputs = ["b"]

[stages.b]
kind = "shuffle"
inputs = ["a"]

[stages.del]
kind = "perturb"
inputs = ["corpus"]
mode = "delete"
p = 7.0

[stages.one]
kind = "shuffle"
inputs = "corpus"

[stages.out]
kind = "parquet_sink"
inputs = ["syn", "swap", "a", "del", "one"]
path = "${output}"
"#,
    )
    .unwrap();
    let out = retort(&["validate", p.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err =
        String::from_utf8_lossy(&out.stderr).replace(&tmp.path().display().to_string(), "[TMP]");
    insta::assert_snapshot!("several_mistakes", err);
}

#[test]
fn every_augmenter_survives_any_unicode() {
    if !available(Dep::WordNet) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("unicode.parquet");
    let rows = [
        "只有一句话。这是第二句。",
        "Emoji 😀 here. And 👍🏽 there! 👨‍👩‍👧",
        "שלום עולם. מה שלומך? The movie was great.",
        "e\u{301}te\u{301} cafe\u{301}. Nai\u{308}ve re\u{301}sume\u{301} fini.",
        "مرحبا بالعالم. هذا نص عربي.",
        "!!! ??? ...",
        "a",
        "the of and to",
        "ＦＵＬＬＷＩＤＴＨ ｔｅｘｔ． Ｇｏｏｄ ｍｏｖｉｅ．",
        "Zalgo t̶̢e̷x̴t̸ here. The screen broke.",
    ];
    write_parquet(&f, vec![("text", texts(rows.map(Some)))], 100);
    for (kind, extra) in [
        ("synonym", vec!["--set", "p=1.0"]),
        ("perturb", vec!["--set", "mode=insert"]),
        ("perturb", vec!["--set", "mode=delete", "--set", "p=1.0"]),
        ("perturb", vec!["--set", "mode=swap"]),
        ("shuffle", vec![]),
        ("eda", vec!["--set", "alpha=0.5"]),
        ("eda", vec!["--set", "eda_compat=true"]),
    ] {
        let out = tmp.path().join(format!("out-{kind}-{}", extra.join("")));
        let mut args = vec![
            "stage",
            kind,
            "--input",
            f.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
            "--set",
            "copies=3",
            "--quiet",
        ];
        args.extend(extra.iter().copied());
        ok(&args);
        let m = manifest(&out);
        let t = &m["stages"][kind];
        assert_eq!(t["rows_in"], 10, "{kind}: {m}");
        let n = |k: &str| t[k].as_u64().unwrap_or(0);
        assert_eq!(
            n("rows_changed") + n("rows_unchanged") + n("rows_rejected"),
            10,
            "{kind}: {t}"
        );
        assert_eq!(
            m["rows"].as_u64().unwrap() + n("copies_skipped") + n("copies_duplicate"),
            30,
            "{kind}: {t}"
        );
    }
}

#[test]
fn an_nltk_wordnet_folder_works_too() {
    if !available(Dep::WordNet) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let nltk = tmp.path().join("nltk_data/corpora/wordnet");
    std::fs::create_dir_all(&nltk).unwrap();
    // NLTK's folder holds the same database files as Debian's.
    for pos in ["noun", "verb", "adj", "adv"] {
        for kind in ["data", "index"] {
            let name = format!("{kind}.{pos}");
            std::fs::copy(
                Path::new("/usr/share/wordnet").join(&name),
                nltk.join(&name),
            )
            .unwrap();
        }
        let exc = format!("{pos}.exc");
        std::fs::copy(Path::new("/usr/share/wordnet").join(&exc), nltk.join(&exc)).unwrap();
    }
    let out = tmp.path().join("out");
    ok(&[
        "stage",
        "synonym",
        "--input",
        &fixture(),
        "--output",
        out.to_str().unwrap(),
        "--set",
        &format!("wordnet={}", nltk.display()),
        "--quiet",
    ]);
    assert!(manifest(&out)["rows"].as_u64().unwrap() > 200);
    // A folder without WordNet is a clear error with the install command.
    let err = fails(
        &[
            "stage",
            "synonym",
            "--input",
            &fixture(),
            "--output",
            out.to_str().unwrap(),
            "--set",
            "wordnet=/nonexistent",
        ],
        1,
    );
    assert!(err.contains("apt-get install -y wordnet-base"), "{err}");
}

/// A dictionary-encoded text column (what pandas writes for a categorical) is read as text.
#[test]
fn a_dictionary_encoded_text_column_is_read_as_text() {
    use arrow::array::{DictionaryArray, StringArray};
    use arrow::datatypes::Int32Type;
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("dict.parquet");
    let text: DictionaryArray<Int32Type> = vec!["good film", "bad film", "good film"]
        .into_iter()
        .collect();
    let ids = StringArray::from(vec!["a", "b", "c"]);
    let labels = Int64Array::from(vec![1, 0, 1]);
    write_parquet(
        &input,
        vec![
            ("id", std::sync::Arc::new(ids)),
            ("text", std::sync::Arc::new(text)),
            ("label", std::sync::Arc::new(labels)),
        ],
        10,
    );
    let out = tmp.path().join("out");
    ok_owned(&stage_args(
        "perturb",
        input.to_str().unwrap(),
        &out,
        &["mode=\"swap\"", "keep_original=true"],
    ));
    let rows = read_rows(&out);
    let originals: Vec<&str> = rows
        .iter()
        .filter(|r| r.op == "orig")
        .map(|r| r.text.as_str())
        .collect();
    assert_eq!(originals, vec!["good film", "bad film", "good film"]);
}

/// An input with no rows gives an empty output whose manifest still counts every stage.
#[test]
fn a_zero_row_input_is_counted_by_every_stage() {
    use arrow::array::StringArray;
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("empty.parquet");
    let empty: Vec<&str> = vec![];
    write_parquet(
        &input,
        vec![
            ("id", Arc::new(StringArray::from(empty.clone())) as ArrayRef),
            ("text", Arc::new(StringArray::from(empty)) as ArrayRef),
        ],
        10,
    );
    let out = tmp.path().join("out");
    ok_owned(&stage_args(
        "perturb",
        input.to_str().unwrap(),
        &out,
        &["mode=\"swap\""],
    ));
    let m = manifest(&out);
    assert_eq!(m["rows"], 0, "{m}");
    for stage in ["input", "perturb"] {
        assert_eq!(m["stages"][stage]["rows_in"], 0, "{stage}: {m}");
    }
}

/// Two sinks of one pipeline with one output folder (however the path is written) are refused
/// by `validate` before anything runs.
#[test]
fn two_sinks_writing_to_one_folder_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("p.toml");
    std::fs::write(
        &p,
        format!(
            "[pipeline]\nname = \"two\"\n\n[stages.corpus]\nkind = \"parquet_source\"\npath = \"{}\"\n\n\
             [stages.a]\nkind = \"parquet_sink\"\ninputs = [\"corpus\"]\npath = \"out/x\"\n\n\
             [stages.b]\nkind = \"parquet_sink\"\ninputs = [\"corpus\"]\npath = \"./out/x/\"\n",
            fixture()
        ),
    )
    .unwrap();
    let err = fails(&["validate", p.to_str().unwrap()], 1);
    assert!(
        err.contains("stages `a` and `b` both write to `./out/x/`"),
        "{err}"
    );
}

/// An output folder that is, holds or is inside an input is refused before anything runs, so
/// `--force` can never delete the input.
#[test]
fn an_output_folder_overlapping_an_input_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let up = tmp.path().join("up");
    ok_owned(&stage_args("perturb", &fixture(), &up, &["mode=\"swap\""]));
    let up_s = up.to_str().unwrap();
    let inside = format!("{up_s}/sub");
    let outside = tmp.path().join("down");
    for (output, refused) in [
        (up_s, true),
        (inside.as_str(), true),
        (outside.to_str().unwrap(), false),
    ] {
        let mut args = stage_args("perturb", up_s, Path::new(output), &["mode=\"swap\""]);
        args.push("--force".into());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        if refused {
            let err = fails(&args, 1);
            assert!(err.contains("would delete the input"), "{output}: {err}");
        } else {
            ok(&args);
        }
    }
    // The input is intact.
    assert_eq!(manifest(&up)["rows"], 240);
    assert_eq!(read_rows(&up).len(), 240);
}

/// A model whose weights are NaN: its soft labels go to the rejects row by row, `eval` refuses
/// it, and training on NaN soft labels stops with an error instead of writing a model.
#[test]
fn non_finite_models_and_soft_labels_are_refused() {
    use arrow::array::{FixedSizeListArray, Float32Array};
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow::record_batch::RecordBatch;
    let tmp = tempfile::tempdir().unwrap();
    let teacher = train_tiny_teacher(&tmp.path().join("teacher"));
    let weights = Path::new(&teacher).join("model.safetensors");
    let dev = candle_core::Device::Cpu;
    let tensors = candle_core::safetensors::load(&weights, &dev).unwrap();
    let nan: std::collections::HashMap<String, candle_core::Tensor> = tensors
        .into_iter()
        .map(|(k, v)| (k, (v * f64::NAN).unwrap()))
        .collect();
    candle_core::safetensors::save(&nan, &weights).unwrap();

    let out = tmp.path().join("soft");
    let model = format!("model=\"{teacher}\"");
    ok_owned(&stage_args("teacher", &fixture(), &out, &[&model]));
    let m = manifest(&out);
    assert_eq!(m["rows"], 0, "{m}");
    assert_eq!(
        m["stages"]["teacher"]["rejected_by_reason"]["non_finite_logits"], 240,
        "{m}"
    );

    let err = fails(&["eval", &teacher, "--data", &fixture()], 1);
    assert!(err.contains("weights are not finite"), "{err}");

    // Rows whose soft labels are NaN.
    let n = 32;
    let rows = small_fixture(&tmp.path().join("rows.parquet"), n);
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        std::fs::File::open(&rows).unwrap(),
    )
    .unwrap()
    .build()
    .unwrap();
    let batch = reader.into_iter().next().unwrap().unwrap();
    let item = Arc::new(Field::new("item", DataType::Float32, false));
    let logits = FixedSizeListArray::try_new(
        item.clone(),
        2,
        Arc::new(Float32Array::from(vec![f32::NAN; 2 * n])),
        None,
    )
    .unwrap();
    let mut fields: Vec<Field> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new(
        "teacher_logits",
        DataType::FixedSizeList(item, 2),
        true,
    ));
    let schema = Arc::new(Schema::new(fields).with_metadata(batch.schema().metadata().clone()));
    let mut columns = batch.columns().to_vec();
    columns.push(Arc::new(logits));
    let soft = tmp.path().join("nan-soft.parquet");
    let mut w = parquet::arrow::ArrowWriter::try_new(
        std::fs::File::create(&soft).unwrap(),
        schema.clone(),
        None,
    )
    .unwrap();
    w.write(&RecordBatch::try_new(schema, columns).unwrap())
        .unwrap();
    w.close().unwrap();
    let student = tmp.path().join("student");
    let err = fails(
        &[
            "train",
            "--data",
            soft.to_str().unwrap(),
            "--out",
            student.to_str().unwrap(),
            "--quiet",
            "--set",
            "epochs=1",
            "--set",
            "vocab_size=500",
            "--set",
            "embed_dim=16",
        ],
        2,
    );
    assert!(err.contains("the training loss is NaN"), "{err}");
    assert!(!student.join("final/model.safetensors").exists());
}

/// An absurd `copies` is refused by `validate` (before any memory is spent), naming the key.
#[test]
fn an_unbounded_copies_is_refused_by_validate() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("p.toml");
    let eda = std::fs::read_to_string(root().join("pipelines/eda.toml")).unwrap();
    std::fs::write(&p, eda).unwrap();
    let input = format!("input={}", fixture());
    let output = format!("output={}", tmp.path().join("out").display());
    let err = fails(
        &[
            "validate",
            p.to_str().unwrap(),
            "--var",
            &input,
            "--var",
            &output,
            "--var",
            "copies=4000000000",
        ],
        1,
    );
    assert!(
        err.contains("`copies` is 4000000000; at most 1000"),
        "{err}"
    );
}

/// The language-model stages bound their sizes too: a billion prompts, a million new tokens or
/// a top-100,000 label would exhaust memory long before they finished.
#[test]
fn unbounded_language_model_keys_are_refused_by_validate() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("p.toml");
    let out = tmp.path().join("out");
    std::fs::write(
        &p,
        format!(
            "[stages.corpus]\nkind = \"parquet_source\"\npath = \"{}\"\n\n\
             [stages.pseudo]\nkind = \"generate\"\ninputs = [\"corpus\"]\n\
             prompts = 1000000000\nmax_new_tokens = 1000000\n\n\
             [stages.lm]\nkind = \"lm_teacher\"\ninputs = [\"corpus\"]\nk = 100000\n\n\
             [stages.a]\nkind = \"parquet_sink\"\ninputs = [\"pseudo\"]\npath = \"{}/a\"\n\n\
             [stages.b]\nkind = \"parquet_sink\"\ninputs = [\"lm\"]\npath = \"{}/b\"\n",
            fixture(),
            out.display(),
            out.display()
        ),
    )
    .unwrap();
    let err = fails(&["validate", p.to_str().unwrap()], 1);
    assert!(
        err.contains("`prompts` is 1000000000; at most 1000000"),
        "{err}"
    );
    assert!(err.contains("`k` is 100000; at most 4096"), "{err}");
}
