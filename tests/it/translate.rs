//! Back-translation with the real Apertium engine (skipped when it is not installed; CI
//! installs `apertium`, `apertium-eng-spa` and `apertium-eng-cat`).

use std::collections::HashSet;

use crate::common::*;

/// Whether `apertium` with English-Spanish is installed (a skip is reported when not).
pub fn apertium() -> bool {
    available(Dep::Apertium("spa"))
}

/// Whether `apertium` has both directions between English and each of `pivots` (a missing one
/// is reported as a skip).
fn apertium_pairs(pivots: &[&'static str]) -> bool {
    pivots.iter().all(|p| available(Dep::Apertium(p)))
}

fn words(s: &str) -> HashSet<String> {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Jaccard similarity of the word sets.
fn similarity(a: &str, b: &str) -> f64 {
    let (a, b) = (words(a), words(b));
    let inter = a.intersection(&b).count() as f64;
    let union = a.union(&b).count().max(1) as f64;
    inter / union
}

#[test]
fn apertium_round_trip_keeps_every_line_aligned() {
    if !apertium() {
        return;
    }
    // Fixture lines, plus lines without final punctuation and with line breaks inside.
    let mut lines: Vec<String> = fixture_tsv().into_iter().map(|r| r.1).take(120).collect();
    lines.push("the acting is bad and the plot is thin".into());
    lines.push("a first line\nand a second one inside the same text".into());
    lines.push("no punctuation here either".into());
    let engine = retort::translate::apertium::Apertium {
        program: "apertium".into(),
    };
    let prepared: Vec<(String, bool)> = lines
        .iter()
        .map(|l| retort::translate::lines::to_line(l))
        .collect();
    let input: Vec<String> = prepared.iter().map(|p| p.0.clone()).collect();
    // Small calls and two processes, so chunking and parallel order are exercised too.
    let out = retort::translate::lines::translate_lines(&engine, "eng", "spa", &input, 16, 2);
    assert_eq!(out.len(), lines.len());
    let back: Vec<String> = out
        .into_iter()
        .zip(&lines)
        .zip(&prepared)
        .map(|((o, src), p)| retort::translate::lines::from_line(&o.expect("translated"), src, p.1))
        .collect();
    for (i, b) in back.iter().enumerate() {
        assert!(!b.is_empty(), "line {i} came back empty");
        assert!(!b.contains('\n') && !b.contains("  "), "line {i}: {b:?}");
        let own = similarity(b, &lines[i]);
        for (j, other) in lines.iter().enumerate() {
            if j != i && other != &lines[i] {
                assert!(
                    own > similarity(b, other),
                    "line {i} {b:?} is closer to line {j} {other:?} than to its source {:?}",
                    lines[i]
                );
            }
        }
    }
    // The mark added for translation is gone again, and lower-case sources stay lower-case.
    let thin = &back[120];
    assert!(!thin.ends_with('.'), "{thin}");
    assert!(thin.starts_with(|c: char| c.is_lowercase()), "{thin}");
}

#[test]
fn backtranslate_stage_writes_one_copy_per_pivot() {
    if !apertium() || !available(Dep::Apertium("cat")) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("bt");
    let sets = [
        "pivots=[\"spa\", \"cat\"]",
        "copies=2",
        "keep_original=true",
        "lines_per_call=64",
    ];
    ok_owned(&stage_args("backtranslate", &fixture(), &out, &sets));
    let rows = read_rows(&out);
    let originals: Vec<_> = rows.iter().filter(|r| r.op == "orig").collect();
    assert_eq!(originals.len(), 240);
    let copies: Vec<_> = rows.iter().filter(|r| r.op == "backtranslate").collect();
    assert!(copies.len() > 400, "{} copies", copies.len());
    let m = manifest(&out);
    let t = &m["stages"]["backtranslate"];
    assert_eq!(
        t["rows_in"].as_u64().unwrap(),
        t["rows_changed"].as_u64().unwrap()
            + t["rows_unchanged"].as_u64().unwrap()
            + t["rows_rejected"].as_u64().unwrap()
    );
    // Two pivots that give the same English make one copy: the other is dropped and counted.
    assert_eq!(
        copies.len() as u64
            + t["copies_skipped"].as_u64().unwrap()
            + t["copies_duplicate"].as_u64().unwrap_or(0),
        480,
        "{t}"
    );
    for c in &copies {
        let p: serde_json::Value = serde_json::from_str(&c.op_params).unwrap();
        assert_eq!(p["engine"], "apertium");
        let parent = originals
            .iter()
            .find(|o| Some(&o.id) == c.parent_id.as_ref())
            .unwrap();
        assert_ne!(c.text, parent.text);
        assert_eq!(c.label, parent.label, "copies keep their parent's label");
    }
    for pivot in ["spa", "cat"] {
        assert!(copies.iter().any(|c| c.op_params.contains(pivot)));
    }
    // Same input and settings, same output, whatever the number of processes.
    let again = tmp.path().join("bt2");
    let sets = [sets.as_slice(), &["processes=1"]].concat();
    ok_owned(&stage_args("backtranslate", &fixture(), &again, &sets));
    let texts = |rows: &[Row]| rows.iter().map(|r| r.text.clone()).collect::<Vec<_>>();
    assert_eq!(texts(&read_rows(&again)), texts(&rows));
}

/// The texts of `translate_texts.txt` (a decomposed "ï" written `\u0308` there) in a Parquet
/// file; returns its path and the texts.
fn texts_parquet(dir: &std::path::Path) -> (String, Vec<String>) {
    let texts: Vec<String> = include_str!("translate_texts.txt")
        .lines()
        .map(|l| l.replace("\\u0308", "\u{0308}"))
        .collect();
    let path = dir.join("texts.parquet");
    write_parquet(
        &path,
        vec![(
            "text",
            crate::common::texts(texts.iter().map(|t| Some(t.as_str()))),
        )],
        1000,
    );
    (path.to_str().unwrap().to_string(), texts)
}

/// Runs `backtranslate` through `spa` and `cat` on `input` into `out` with `extra` arguments.
fn backtranslate_both(input: &str, out: &std::path::Path, extra: &[&str]) -> Vec<Row> {
    let sets = [
        "pivots=[\"spa\", \"cat\"]",
        "copies=2",
        "keep_original=true",
    ];
    let mut args = stage_args("backtranslate", input, out, &sets);
    args.extend(extra.iter().map(|s| s.to_string()));
    ok_owned(&args);
    read_rows(out)
}

#[test]
fn apertium_rows_do_not_depend_on_batch_size_threads_or_call_size() {
    if !apertium_pairs(&["spa", "cat"]) {
        return;
    }
    // The texts hold words that change Apertium's tagger for the rest of a call ("drunk",
    // "known", and English words that become Catalan "més", "titular", ...) and unknown words
    // after them, and lines that end in a quote, a bracket or "…": before each line was
    // translated as if alone, batch sizes 7 and 64 gave 4 different `spa` copies and 5
    // different `cat` copies here.
    let tmp = tempfile::tempdir().unwrap();
    let (input, texts) = texts_parquet(tmp.path());
    let small = backtranslate_both(
        &input,
        &tmp.path().join("a"),
        &["--batch-size", "7", "--threads", "1"],
    );
    let large = backtranslate_both(
        &input,
        &tmp.path().join("b"),
        &[
            "--batch-size",
            "64",
            "--threads",
            "2",
            "--set",
            "lines_per_call=5",
        ],
    );
    assert_eq!(small.len(), large.len(), "row counts differ");
    for (a, b) in small.iter().zip(&large) {
        assert_eq!(a, b);
    }
    let tally = |dir: &str| manifest(&tmp.path().join(dir))["stages"]["backtranslate"].clone();
    assert_eq!(tally("a"), tally("b"));
    // Every row has its original and its copies are all different from it and each other.
    let originals: Vec<&Row> = small.iter().filter(|r| r.op == "orig").collect();
    assert_eq!(originals.len(), texts.len());
    for o in &originals {
        let mut seen = vec![o.text.clone()];
        for c in small.iter().filter(|c| c.parent_id.as_ref() == Some(&o.id)) {
            assert!(!seen.contains(&c.text), "{:?} repeats a text of its row", c);
            seen.push(c.text.clone());
        }
    }
    let t = tally("a");
    let copies = small.iter().filter(|r| r.op == "backtranslate").count() as u64;
    // Copies equal to the text are skipped; copies equal to another pivot's are dropped.
    let count = |key: &str| t[key].as_u64().unwrap_or(0);
    assert_eq!(
        copies + count("copies_skipped") + count("copies_duplicate"),
        2 * texts.len() as u64,
        "{t}"
    );
}

#[test]
fn decomposed_unicode_is_translated_as_one_letter() {
    if !apertium_pairs(&["spa", "cat"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (input, _) = texts_parquet(tmp.path());
    let rows = backtranslate_both(&input, &tmp.path().join("bt"), &[]);
    let naive = rows
        .iter()
        .find(|r| r.op == "orig" && r.text.contains("nai\u{0308}ve"))
        .expect("the decomposed row");
    let copies: Vec<&Row> = rows
        .iter()
        .filter(|r| r.parent_id.as_ref() == Some(&naive.id))
        .collect();
    assert!(!copies.is_empty());
    for c in copies {
        // Read as "nai" + a mark + "ve", Apertium made "naïsees" (Spanish "ve" = "sees") and
        // "naïcomes" (Catalan); now "naïve" comes back as "naïve" (Spanish) or "naive".
        assert!(
            c.text.contains("na\u{ef}ve") || c.text.contains("naive"),
            "{c:?}"
        );
        for wrong in ["\u{0308}", "sees", "comes"] {
            assert!(!c.text.contains(wrong), "{c:?}");
        }
    }
}

#[test]
fn backtranslate_errors_say_what_to_install() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("bt");
    let err = fails(
        &[
            "stage",
            "backtranslate",
            "--input",
            &fixture(),
            "--output",
            out.to_str().unwrap(),
            "--set",
            "program=/nonexistent/apertium",
        ],
        1,
    );
    assert!(err.contains("apt-get install -y apertium"), "{err}");
    let err = fails(
        &[
            "stage",
            "backtranslate",
            "--input",
            &fixture(),
            "--output",
            out.to_str().unwrap(),
            "--set",
            "copies=2",
        ],
        1,
    );
    assert!(err.contains("each copy needs its own pivot"), "{err}");
    if apertium() {
        let err = fails(
            &[
                "stage",
                "backtranslate",
                "--input",
                &fixture(),
                "--output",
                out.to_str().unwrap(),
                "--set",
                "pivots=[\"xyz\"]",
            ],
            1,
        );
        assert!(err.contains("no `eng-xyz` mode"), "{err}");
    }
}

/// Writes tiny random forward and backward Marian folders; returns their paths.
fn tiny_marian_pair(dir: &std::path::Path) -> (String, String) {
    use retort::translate::tiny::{write_tiny_marian, TinyMarian};
    let (f, b) = (dir.join("en-xx"), dir.join("xx-en"));
    for (path, seed) in [(&f, 1), (&b, 2)] {
        let t = TinyMarian {
            seed,
            ..TinyMarian::default()
        };
        write_tiny_marian(path, &t).unwrap();
    }
    (
        f.to_str().unwrap().to_string(),
        b.to_str().unwrap().to_string(),
    )
}

fn marian_stage(out: &std::path::Path, f: &str, b: &str, extra: &[&str]) -> Vec<String> {
    let (forward, backward) = (
        format!("forward_model=\"{f}\""),
        format!("backward_model=\"{b}\""),
    );
    let mut args = stage_args(
        "backtranslate",
        &fixture(),
        out,
        &[
            "engine=\"marian\"",
            &forward,
            &backward,
            "pivot=\"xx\"",
            "max_new_tokens=8",
        ],
    );
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

#[test]
fn marian_backtranslate_stage_runs_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let (f, b) = tiny_marian_pair(tmp.path());
    let out = tmp.path().join("bt");
    let args = marian_stage(
        &out,
        &f,
        &b,
        &["--set", "copies=2", "--set", "keep_original=true"],
    );
    ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let rows = read_rows(&out);
    let originals: Vec<_> = rows.iter().filter(|r| r.op == "orig").collect();
    assert_eq!(originals.len(), 240);
    let copies: Vec<_> = rows.iter().filter(|r| r.op == "backtranslate").collect();
    assert!(copies.len() > 400, "{} copies", copies.len());
    let m = manifest(&out);
    let t = &m["stages"]["backtranslate"];
    assert_eq!(
        t["rows_in"].as_u64().unwrap(),
        t["rows_changed"].as_u64().unwrap()
            + t["rows_unchanged"].as_u64().unwrap()
            + t["rows_rejected"].as_u64().unwrap()
    );
    // Two pivots that give the same English make one copy: the other is dropped and counted.
    assert_eq!(
        copies.len() as u64
            + t["copies_skipped"].as_u64().unwrap()
            + t["copies_duplicate"].as_u64().unwrap_or(0),
        480,
        "{t}"
    );
    for c in &copies {
        let p: serde_json::Value = serde_json::from_str(&c.op_params).unwrap();
        assert_eq!(p["engine"], "marian");
        assert_eq!(p["pivot"], "xx");
        assert_eq!(p["decoding"], "sample");
        assert_eq!(p["temperature"], 0.9);
    }
    // The two copies of a row are different samples.
    let differ = originals
        .iter()
        .filter(|o| {
            let mine: Vec<_> = copies
                .iter()
                .filter(|c| c.parent_id.as_ref() == Some(&o.id))
                .collect();
            mine.len() == 2 && mine[0].text != mine[1].text
        })
        .count();
    assert!(differ > 200, "{differ}");
    // Same output with another batch size, model batch and thread count.
    let again = tmp.path().join("bt2");
    let args = marian_stage(
        &again,
        &f,
        &b,
        &[
            "--set",
            "copies=2",
            "--set",
            "keep_original=true",
            "--set",
            "batch_size=3",
            "--batch-size",
            "50",
            "--threads",
            "1",
        ],
    );
    ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let texts = |rows: &[Row]| rows.iter().map(|r| r.text.clone()).collect::<Vec<_>>();
    assert_eq!(texts(&read_rows(&again)), texts(&rows));
}

#[test]
fn marian_keys_are_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let (f, b) = tiny_marian_pair(tmp.path());
    let out = tmp.path().join("bt");
    let run = |extra: &[&str]| {
        let args = marian_stage(&out, &f, &b, extra);
        fails(&args.iter().map(String::as_str).collect::<Vec<_>>(), 1)
    };
    let err = run(&["--set", "decoding=\"greedy\"", "--set", "copies=2"]);
    assert!(
        err.contains("`copies` = 2") && err.contains("sample"),
        "{err}"
    );
    let err = run(&["--set", "pivots=[\"spa\"]"]);
    assert!(err.contains("`pivots` is an Apertium key"), "{err}");
    let err = run(&["--set", "temperature=0"]);
    assert!(err.contains("`temperature`"), "{err}");
    let err = run(&["--set", "forward_model=\"/nonexistent/opus-mt-en-de\""]);
    assert!(
        err.contains("/nonexistent/opus-mt-en-de") && err.contains("config.json"),
        "{err}"
    );
}
