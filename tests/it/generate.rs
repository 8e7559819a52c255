//! The `generate` and `lm_teacher` stages with the real SmolLM2 (skipped when `make assets` has not run).

use crate::common::*;

/// Whether the SmolLM2 GGUF is in the asset folder.
pub fn smollm2() -> bool {
    available(Dep::SmolLm2)
}

/// Prompts per run: enough that the kept texts are several, few enough for 2 cores.
const PROMPTS: u64 = 6;

fn pipeline(dir: &std::path::Path, extra: &str) -> std::path::PathBuf {
    let p = dir.join("generate.toml");
    std::fs::write(
        &p,
        format!(
            r#"[pipeline]
name = "gen"
seed = 5

[stages.corpus]
kind = "parquet_source"
path = "${{input}}"

[stages.pseudo]
kind = "generate"
inputs = ["corpus"]
prompts = {PROMPTS}
shots = 2
task = "product review"
max_new_tokens = 16
{extra}

[stages.out]
kind = "parquet_sink"
inputs = ["pseudo"]
path = "${{output}}"
"#
        ),
    )
    .unwrap();
    p
}

/// Runs the pipeline `p` on the fixture into `dir/name` with extra arguments.
fn run_pipeline(
    p: &std::path::Path,
    dir: &std::path::Path,
    name: &str,
    extra: &[&str],
) -> std::path::PathBuf {
    let out = dir.join(name);
    let mut args = vec![
        "run".to_string(),
        p.display().to_string(),
        "--quiet".into(),
        "--var".into(),
        format!("input={}", fixture()),
        "--var".into(),
        format!("output={}", out.display()),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    ok_owned(&args);
    out
}

/// Texts dropped by `generate`, by reason, from a manifest.
fn dropped(m: &serde_json::Value) -> std::collections::BTreeMap<String, u64> {
    m["stages"]["pseudo"]["generated_dropped"]
        .as_object()
        .map(|d| {
            d.iter()
                .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn generate_is_deterministic_across_threads_and_batch_sizes() {
    if !smollm2() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let p = pipeline(tmp.path(), "");
    let a = run_pipeline(
        &p,
        tmp.path(),
        "a",
        &["--threads", "1", "--batch-size", "1024"],
    );
    let b = run_pipeline(
        &p,
        tmp.path(),
        "b",
        &["--threads", "2", "--batch-size", "37"],
    );
    let ra = read_rows(&a);
    // Every input row passes through; the new rows are labelled as their prompt asked.
    let orig = ra.iter().filter(|r| r.op == "orig").count();
    assert_eq!(orig, 240);
    let pseudo: Vec<_> = ra.iter().filter(|r| r.op == "pseudo").collect();
    let m = manifest(&a);
    let dropped: u64 = dropped(&m).values().sum();
    assert_eq!(pseudo.len() as u64 + dropped, PROMPTS, "{m}");
    // The comparison below means something only if new texts were kept: at least half.
    assert!(
        2 * pseudo.len() as u64 >= PROMPTS,
        "{} of {PROMPTS} new texts kept: {m}",
        pseudo.len()
    );
    assert_eq!(ra, read_rows(&b), "same seed, same rows");
    for r in &pseudo {
        assert!(r.parent_id.is_none());
        assert!(!r.text.is_empty() && !r.text.contains("<|"));
        let params: serde_json::Value = serde_json::from_str(&r.op_params).unwrap();
        let prompt = params["prompt"].as_u64().unwrap();
        assert_eq!(r.id, format!("pseudo/{prompt}"));
        // Prompt j asks for class j mod 2 of (negative, positive).
        assert_eq!(r.label, Some((prompt % 2) as i64));
        assert_eq!(
            params["intended_label"],
            ["negative", "positive"][(prompt % 2) as usize]
        );
        assert_eq!(params["shots"].as_array().unwrap().len(), 2);
    }
}

/// The new texts of a run with a teacher, by id, with the teacher's confidence.
fn confidences(dir: &std::path::Path) -> std::collections::BTreeMap<String, f64> {
    read_rows(dir)
        .into_iter()
        .filter(|r| r.op == "pseudo")
        .map(|r| {
            let params: serde_json::Value = serde_json::from_str(&r.op_params).unwrap();
            (r.id, params["teacher"]["confidence"].as_f64().unwrap())
        })
        .collect()
}

/// At a threshold between the teacher's confidences, the texts at or above it are kept and
/// those below are dropped as `low_confidence`, exactly.
#[test]
fn generate_teacher_keeps_exactly_the_texts_it_is_confident_about() {
    if !smollm2() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let teacher = train_tiny_teacher(&tmp.path().join("teacher"));
    let with = |threshold: f64| {
        format!("teacher = \"{teacher}\"\nmin_confidence = {threshold}\nrequire_agreement = false")
    };
    // Threshold 0: every screened text is kept, with its confidence.
    let all = confidences(&run_pipeline(
        &pipeline(tmp.path(), &with(0.0)),
        tmp.path(),
        "all",
        &[],
    ));
    let mut sorted: Vec<f64> = all.values().copied().collect();
    sorted.sort_by(f64::total_cmp);
    sorted.dedup();
    assert!(sorted.len() >= 2, "too few distinct confidences: {all:?}");
    // Between the two middle confidences: some texts on each side.
    let mid = sorted.len() / 2;
    let threshold = (sorted[mid - 1] + sorted[mid]) / 2.0;
    let out = run_pipeline(
        &pipeline(tmp.path(), &with(threshold)),
        tmp.path(),
        "cut",
        &[],
    );
    let kept = confidences(&out);
    let expected: std::collections::BTreeMap<String, f64> = all
        .iter()
        .filter(|(_, &c)| c >= threshold)
        .map(|(id, &c)| (id.clone(), c))
        .collect();
    let below = all.values().filter(|&&c| c < threshold).count() as u64;
    assert!(!expected.is_empty() && below > 0, "{all:?} at {threshold}");
    assert_eq!(kept, expected, "kept at threshold {threshold}");
    let m = manifest(&out);
    assert_eq!(dropped(&m).get("low_confidence"), Some(&below), "{m}");
    assert_eq!(read_rows(&out).len(), 240 + kept.len());
}

fn lm_teacher_run(
    dir: &std::path::Path,
    name: &str,
    table: &str,
    extra: &[&str],
) -> Vec<serde_json::Value> {
    let input = small_fixture(&dir.join("small.parquet"), 3);
    let p = dir.join(format!("{name}.toml"));
    std::fs::write(
        &p,
        format!(
            "[pipeline]\nname = \"lm\"\nseed = 3\n\n[stages.corpus]\nkind = \"parquet_source\"\npath = \"{input}\"\n\n\
             [stages.lm]\nkind = \"lm_teacher\"\ninputs = [\"corpus\"]\nmax_tokens = 6\n{table}\n\n\
             [stages.out]\nkind = \"parquet_sink\"\ninputs = [\"lm\"]\npath = \"{}\"\n",
            dir.join(name).display()
        ),
    )
    .unwrap();
    let mut args = vec!["run", p.to_str().unwrap(), "--quiet"];
    args.extend_from_slice(extra);
    ok(&args);
    let m = manifest(&dir.join(name));
    let c = &m["stages"]["lm"]["counters"];
    assert_eq!(c["lm_positions"], 18, "3 rows x 6 tokens: {m}");
    assert!(c["lm_label_bytes"].as_u64().unwrap() > 0);
    // Read back as JSON values, row by row.
    let file = dir.join(name).join(m["files"][0]["path"].as_str().unwrap());
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        std::fs::File::open(file).unwrap(),
    )
    .unwrap()
    .build()
    .unwrap();
    let mut rows = Vec::new();
    for b in reader {
        let b = b.unwrap();
        for i in 0..b.num_rows() {
            let mut row = serde_json::Map::new();
            for (f, c) in b.schema().fields().iter().zip(b.columns()) {
                row.insert(f.name().clone(), to_json(c.as_ref(), i));
            }
            rows.push(serde_json::Value::Object(row));
        }
    }
    rows
}

fn to_json(c: &dyn arrow::array::Array, i: usize) -> serde_json::Value {
    use arrow::array::AsArray;
    use arrow::datatypes::{
        DataType, Float16Type, Float32Type, UInt16Type, UInt32Type, UInt64Type,
    };
    if c.is_null(i) {
        return serde_json::Value::Null;
    }
    match c.data_type() {
        DataType::List(_) => {
            let inner = c.as_list::<i32>().value(i);
            (0..inner.len())
                .map(|j| to_json(inner.as_ref(), j))
                .collect()
        }
        DataType::UInt16 => c.as_primitive::<UInt16Type>().value(i).into(),
        DataType::UInt32 => c.as_primitive::<UInt32Type>().value(i).into(),
        DataType::UInt64 => c.as_primitive::<UInt64Type>().value(i).into(),
        DataType::Float16 => f64::from(c.as_primitive::<Float16Type>().value(i).to_f32()).into(),
        DataType::Float32 => f64::from(c.as_primitive::<Float32Type>().value(i)).into(),
        _ => {
            let s = arrow::compute::cast(&c.slice(i, 1), &DataType::Utf8).unwrap();
            s.as_string::<i32>().value(0).into()
        }
    }
}

#[test]
fn lm_teacher_sampled_counts_sum_to_draws_and_are_reproducible() {
    if !smollm2() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let sampled = "mode = \"sampled\"\ndraws = 50";
    let a = lm_teacher_run(tmp.path(), "a", sampled, &["--threads", "1"]);
    let b = lm_teacher_run(tmp.path(), "b", sampled, &["--threads", "2"]);
    assert_eq!(a, b, "same seed, same draws, whatever the threads");
    let c = lm_teacher_run(tmp.path(), "c", sampled, &["--batch-size", "1"]);
    assert_eq!(a, c, "same seed, same draws, whatever the batch size");
    for row in &a {
        let tokens = row["lm_token_ids"].as_array().unwrap();
        let ids = row["lm_sampled_ids"].as_array().unwrap();
        let counts = row["lm_sampled_counts"].as_array().unwrap();
        assert_eq!(tokens.len(), 6);
        assert_eq!(ids.len(), 6);
        for (i, c) in ids.iter().zip(counts) {
            let i: Vec<u64> = i
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap())
                .collect();
            let c: Vec<u64> = c
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap())
                .collect();
            assert_eq!(c.iter().sum::<u64>(), 50);
            assert_eq!(i.len(), c.len());
            assert!(i.windows(2).all(|w| w[0] < w[1]), "ids sorted and unique");
            assert!(i.iter().all(|&id| id < 49152));
        }
    }
}

#[test]
fn lm_teacher_top_k_with_tail_sums_to_one() {
    if !smollm2() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let rows = lm_teacher_run(
        tmp.path(),
        "k",
        "mode = \"top_k\"\nk = 16",
        &["--threads", "2"],
    );
    // Rows batched into shared forward passes (two rows of 6 tokens, then one) get the same
    // labels up to rounding.
    let batched = lm_teacher_run(
        tmp.path(),
        "kb",
        "mode = \"top_k\"\nk = 16\nbatch_tokens = 12",
        &[],
    );
    assert_eq!(batched.len(), rows.len());
    for (x, y) in rows.iter().zip(&batched) {
        assert_eq!(x["lm_token_ids"], y["lm_token_ids"]);
        let flat = |v: &serde_json::Value| -> Vec<f64> {
            v.as_array()
                .unwrap()
                .iter()
                .flat_map(|p| p.as_array().unwrap().iter().map(|l| l.as_f64().unwrap()))
                .collect()
        };
        let (lx, ly) = (flat(&x["lm_topk_logprobs"]), flat(&y["lm_topk_logprobs"]));
        assert_eq!(lx.len(), ly.len());
        let diff = lx
            .iter()
            .zip(&ly)
            .map(|(a, b)| (a - b).abs())
            .fold(0f64, f64::max);
        assert!(diff < 1e-2, "batched vs one row per pass: {diff}");
    }
    for row in &rows {
        let tokens: Vec<u64> = row["lm_token_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        let ids = row["lm_topk_ids"].as_array().unwrap();
        let logp = row["lm_topk_logprobs"].as_array().unwrap();
        let tail = row["lm_topk_tail"].as_array().unwrap();
        for t in 0..tokens.len() {
            let i: Vec<u64> = ids[t]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap())
                .collect();
            let l: Vec<f64> = logp[t]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            assert_eq!(i.len(), 16);
            assert!(l.windows(2).all(|w| w[0] >= w[1]), "most probable first");
            let mass: f64 =
                l.iter().map(|v| v.exp()).sum::<f64>() + tail[t].as_f64().unwrap().exp();
            assert!((mass - 1.0).abs() < 1e-2, "position {t}: mass {mass}");
            let mut unique = i.clone();
            unique.sort_unstable();
            unique.dedup();
            assert_eq!(unique.len(), 16, "ids are distinct");
        }
    }
}
