//! The pipeline file parser and planner on arbitrary and adversarial TOML: every input gives a
//! plan or an error, never a panic, and the command line never dies of a signal on a hostile
//! pipeline file.

use rand::Rng;
use retort::pipeline::{plan, spec};
use retort::registry::STAGE_KINDS;
use retort::stage::kind::StageKind;
use retort::stage::RunSettings;
use toml::{Table, Value};

use super::gen::{self, campaign, Gen};
use crate::common::*;

/// Kinds that load models when built: their tables are checked (parsed) but always carry an
/// unknown key inside whole pipelines, so that planning never loads a model.
fn loads_models(kind: &dyn StageKind) -> bool {
    kind.needs().models
}

/// Strings that pipeline files hold: paths (existing, missing, globs), variables, hostile text.
fn a_string(g: &mut Gen) -> String {
    const STRINGS: &[&str] = &[
        "fixtures/reviews.parquet",
        "fixtures",
        "fixtures/*.parquet",
        "fixtures/reviews.tsv",
        "fixtures/[",
        "nope/missing.parquet",
        "",
        "${input}",
        "${output}",
        "${undefined}",
        "${",
        "${}",
        "${${input}}",
        "out/fuzz-never-written",
        "swap",
        "delete",
        "insert",
        "zstd",
        "cnn",
        "apertium",
        "spa",
        "/dev/null",
    ];
    if g.random_range(0..4) == 0 {
        gen::text(g)
    } else {
        STRINGS[g.random_range(0..STRINGS.len())].to_string()
    }
}

/// A TOML value of a random type, with the extremes of each.
fn a_value(g: &mut Gen, depth: u32) -> Value {
    match g.random_range(0..if depth > 2 { 9 } else { 11 }) {
        0 => Value::Integer(
            [0, 1, -1, 2, 1000, 1001, i64::MAX, i64::MIN, 4_000_000_000][g.random_range(0..9)],
        ),
        1 => Value::Integer(g.random_range(-5..100)),
        2 => Value::Float(
            [
                0.0,
                0.5,
                1.0,
                1.5,
                -0.1,
                f64::NAN,
                f64::INFINITY,
                f64::NEG_INFINITY,
                1e308,
                5e-324,
            ][g.random_range(0..10)],
        ),
        3 => Value::Float(g.random()),
        4 => Value::Boolean(g.random()),
        5..=7 => Value::String(a_string(g)),
        8 => Value::Datetime("1979-05-27T07:32:00Z".parse().unwrap()),
        9 => Value::Array(
            (0..g.random_range(0..4))
                .map(|_| a_value(g, depth + 1))
                .collect(),
        ),
        _ => {
            let mut t = Table::new();
            for _ in 0..g.random_range(0..3) {
                t.insert(a_string(g), a_value(g, depth + 1));
            }
            Value::Table(t)
        }
    }
}

/// A stage table for `kind`: some of its own keys with values of random types, sometimes an
/// unknown key, `kind` and `inputs` of random shapes.
fn a_stage(g: &mut Gen, kind: &dyn StageKind, ids: &[String]) -> Table {
    let mut t = Table::new();
    let keys = kind.keys();
    for _ in 0..g.random_range(0..4) {
        if keys.is_empty() {
            break;
        }
        let k = &keys[g.random_range(0..keys.len())];
        t.insert(k.name.clone(), a_value(g, 0));
    }
    if g.random_range(0..6) == 0 {
        t.insert(a_string(g), a_value(g, 0));
    }
    if loads_models(kind) {
        t.insert("fuzz_unknown_key".into(), Value::Boolean(true));
    }
    let kind_value = match g.random_range(0..12) {
        0 => a_value(g, 0),
        1 => Value::String(format!("{}x", kind.name())),
        _ => Value::String(kind.name().into()),
    };
    t.insert("kind".into(), kind_value);
    let pick_id = |g: &mut Gen| -> Value {
        if ids.is_empty() || g.random_range(0..8) == 0 {
            Value::String(a_string(g))
        } else {
            Value::String(ids[g.random_range(0..ids.len())].clone())
        }
    };
    match g.random_range(0..8) {
        0 => {}
        1 => {
            t.insert("inputs".into(), pick_id(g));
        }
        2 => {
            t.insert("inputs".into(), a_value(g, 0));
        }
        _ => {
            let inputs = (0..g.random_range(0..3)).map(|_| pick_id(g)).collect();
            t.insert("inputs".into(), Value::Array(inputs));
        }
    }
    t
}

/// A whole pipeline: `[pipeline]`, `[vars]` and stages whose inputs may be missing, cyclic or
/// of the wrong type.
fn a_pipeline(g: &mut Gen) -> Table {
    let mut root = Table::new();
    if g.random_range(0..3) != 0 {
        let mut p = Table::new();
        for k in ["name", "seed", "threads", "batch_size", "other"] {
            if g.random_range(0..3) == 0 {
                p.insert(k.into(), a_value(g, 0));
            }
        }
        root.insert("pipeline".into(), Value::Table(p));
    }
    if g.random_range(0..2) == 0 {
        let mut v = Table::new();
        for k in ["input", "output", "copies", "x"] {
            if g.random_range(0..2) == 0 {
                v.insert(k.into(), a_value(g, 0));
            }
        }
        root.insert("vars".into(), Value::Table(v));
    }
    let n = g.random_range(0..6);
    let ids: Vec<String> = (0..n)
        .map(|i| {
            if g.random_range(0..10) == 0 {
                gen::text(g)
            } else {
                format!("s{i}")
            }
        })
        .collect();
    let mut stages = Table::new();
    for id in &ids {
        let kind = STAGE_KINDS[g.random_range(0..STAGE_KINDS.len())];
        stages.insert(id.clone(), Value::Table(a_stage(g, kind, &ids)));
    }
    match g.random_range(0..10) {
        0 => {}
        1 => {
            root.insert("stages".into(), a_value(g, 0));
        }
        _ => {
            root.insert("stages".into(), Value::Table(stages));
        }
    }
    if g.random_range(0..10) == 0 {
        root.insert(a_string(g), a_value(g, 0));
    }
    root
}

fn vars(g: &mut Gen) -> Vec<(String, String)> {
    let mut v = Vec::new();
    for name in ["input", "output", "copies", "nope"] {
        if g.random_range(0..3) == 0 {
            v.push((name.to_string(), a_string(g)));
        }
    }
    v
}

/// Parses `text` and, when it parses, plans it: either may fail, neither may panic.
fn parse_and_plan(text: &str, vars: &[(String, String)], seed: u64) -> bool {
    let Ok(spec) = spec::parse(text, "fuzz", vars) else {
        return false;
    };
    let settings = RunSettings::with_seed(seed);
    plan::build(&spec, &settings, "fuzz.toml").is_ok()
}

/// Structured adversarial pipelines: every kind, keys of the right names with values of every
/// type and extreme, bad inputs, cycles, variables.
#[test]
fn pipeline_planner_never_panics_on_adversarial_pipelines() {
    let mut planned = 0;
    let n = campaign("pipeline planner", 300, |g, _| {
        let root = a_pipeline(g);
        let text = toml::to_string(&root).unwrap_or_default();
        let v = vars(g);
        if parse_and_plan(&text, &v, g.random()) {
            planned += 1;
        }
        // Each stage table on its own, as `retort validate` and `retort stage --set` check it.
        for kind in STAGE_KINDS {
            let mut t = a_stage(g, *kind, &[]);
            t.remove("kind");
            t.remove("inputs");
            let _ = kind.check(&t);
        }
    });
    gen::say(&format!(
        "fuzz: pipeline planner: {planned} of {n} random pipelines were valid"
    ));
}

/// Random mutations of real pipeline files and of raw hostile text: the parser gives a
/// result, never a panic.
#[test]
fn pipeline_parser_never_panics_on_arbitrary_text() {
    let mut examples: Vec<String> = std::fs::read_dir(root().join("pipelines"))
        .unwrap()
        .flatten()
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect();
    examples.sort();
    campaign("pipeline parser", 400, |g, _| {
        let text = match g.random_range(0..3) {
            0 => gen::text(g),
            _ => {
                let base = &examples[g.random_range(0..examples.len())];
                mutate(g, base)
            }
        };
        let v = vars(g);
        if let Ok(spec) = spec::parse(&text, "fuzz", &v) {
            // Only cheap kinds are planned from mutated text (a mutation can make a valid
            // model stage, and loading a model is not what this test is about).
            let heavy = spec
                .stages
                .iter()
                .any(|s| retort::registry::find(&s.kind).is_none_or(loads_models));
            if !heavy {
                let _ = plan::build(&spec, &RunSettings::with_seed(1), "fuzz.toml");
            }
        }
    });
}

/// Byte-level mutations: delete, duplicate or replace a span, insert hostile text.
fn mutate(g: &mut Gen, base: &str) -> String {
    let mut s = base.to_string();
    for _ in 0..g.random_range(1..6) {
        let len = s.len();
        let mut at = g.random_range(0..=len);
        while !s.is_char_boundary(at) {
            at -= 1;
        }
        let mut end = (at + g.random_range(0..40)).min(len);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        match g.random_range(0..5) {
            0 => s.replace_range(at..end, ""),
            1 => {
                let span = s[at..end].to_string();
                s.insert_str(at, &span);
            }
            2 => s.insert_str(at, &gen::text(g)),
            3 => s.insert_str(
                at,
                [
                    "[", "]", "\"", "=", "[[", "{", "}", "'''", "\\u", "\n", "#", ".", "${",
                ][g.random_range(0..13)],
            ),
            _ => s.replace_range(at..end, &a_string(g)),
        }
    }
    s
}

/// Pathological files through `retort validate`: deep nesting, huge keys, NUL, invalid UTF-8.
/// The process must end with an error (exit 1), never be killed by a signal (stack overflow).
#[test]
fn validate_survives_pathological_pipeline_files() {
    let tmp = tempfile::tempdir().unwrap();
    let deep_array = format!("x = {}{}", "[".repeat(100_000), "]".repeat(100_000));
    let deep_table = format!("x = {}{}", "{a = ".repeat(50_000), "}".repeat(50_000));
    let deep_keys = format!("[{}]\n", vec!["a"; 50_000].join("."));
    let huge_key = format!("[stages.{}]\nkind = \"shuffle\"\n", "k".repeat(1 << 20));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("deep array", deep_array.into_bytes()),
        ("deep inline table", deep_table.into_bytes()),
        ("deep dotted key", deep_keys.into_bytes()),
        ("huge key", huge_key.into_bytes()),
        ("nul", b"[stages.a]\nkind = \"shuf\0fle\"\n".to_vec()),
        (
            "invalid utf-8",
            b"[stages.a]\nkind = \"\xff\xfe\"\n".to_vec(),
        ),
        ("empty", Vec::new()),
    ];
    for (what, bytes) in cases {
        let f = tmp.path().join("p.toml");
        std::fs::write(&f, &bytes).unwrap();
        let out = retort(&["validate", f.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{what}: {:?}\n{}",
            out.status,
            &stderr[..stderr.len().min(2000)]
        );
        assert!(
            stderr.starts_with("error: "),
            "{what}: {}",
            &stderr[..stderr.len().min(500)]
        );
    }
}
