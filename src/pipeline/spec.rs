//! Pipeline files: the TOML model, and `${name}` variables.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::error::{Error, Result};

/// A stage as written in the pipeline file, after variable substitution.
#[derive(Debug, Clone)]
pub struct StageSpec {
    /// The stage id: its table name under `[stages]`.
    pub id: String,
    /// The `kind` key.
    pub kind: String,
    /// The `inputs` key.
    pub inputs: Vec<String>,
    /// Every other key: the stage's own configuration.
    pub config: toml::Table,
}

/// A parsed pipeline file.
#[derive(Debug, Clone)]
pub struct PipelineSpec {
    /// Pipeline name (defaults to the file stem).
    pub name: String,
    /// Pipeline seed.
    pub seed: u64,
    /// Stages in file order.
    pub stages: Vec<StageSpec>,
    /// Problems found while reading the file (reported together with the plan's).
    pub problems: Vec<String>,
}

/// Reads and parses a pipeline file, substituting variables.
pub fn load(path: &Path, vars: &[(String, String)]) -> Result<PipelineSpec> {
    let text = fs_err::read_to_string(path).map_err(|e| {
        Error::user(format!("cannot read pipeline file `{}`", path.display())).with_source(e)
    })?;
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "pipeline".into());
    parse(&text, &name, vars).map_err(|e| e.context(format!("in `{}`", path.display())))
}

/// Parses pipeline text. `default_name` is used when `[pipeline] name` is absent.
pub fn parse(text: &str, default_name: &str, vars: &[(String, String)]) -> Result<PipelineSpec> {
    let mut root: toml::Table = toml::from_str(text)
        .map_err(|e| Error::user("the pipeline file is not valid TOML").with_source(e))?;
    let mut problems = Vec::new();

    for key in root.keys() {
        if !["pipeline", "vars", "stages"].contains(&key.as_str()) {
            problems.push(format!(
                "unknown top-level key `{key}` (expected `pipeline`, `vars` or `stages`)"
            ));
        }
    }

    // Variables: defaults from [vars], overridden by --var.
    let mut values: BTreeMap<String, toml::Value> = BTreeMap::new();
    match root.remove("vars") {
        Some(toml::Value::Table(t)) => values.extend(t),
        Some(_) => problems.push("`vars` must be a table".into()),
        None => {}
    }
    let declared: BTreeSet<String> = values.keys().cloned().collect();
    for (k, v) in vars {
        values.insert(k.clone(), toml::Value::String(v.clone()));
    }
    let mut used = BTreeSet::new();
    let mut missing = BTreeSet::new();
    for (_, v) in root.iter_mut() {
        substitute(v, &values, &mut used, &mut missing);
    }
    for name in &missing {
        problems.push(format!(
            "variable `{name}` has no value: pass `--var {name}=VALUE` or give a default under `[vars]`"
        ));
    }
    for (k, _) in vars {
        if !used.contains(k) && !declared.contains(k) {
            let known: Vec<_> = used.iter().map(|s| format!("`{s}`")).collect();
            problems.push(format!(
                "`--var {k}=...`: the pipeline has no variable `{k}` (it uses: {})",
                if known.is_empty() {
                    "none".into()
                } else {
                    known.join(", ")
                }
            ));
        }
    }

    let (name, seed) = parse_header(root.remove("pipeline"), default_name, &mut problems);
    let stages = match root.remove("stages") {
        Some(toml::Value::Table(t)) => parse_stages(t, &mut problems),
        Some(_) => {
            problems.push("`stages` must be a table of stage tables".into());
            vec![]
        }
        None => {
            problems.push("the pipeline has no `[stages.NAME]` tables".into());
            vec![]
        }
    };
    Ok(PipelineSpec {
        name,
        seed,
        stages,
        problems,
    })
}

fn parse_header(
    header: Option<toml::Value>,
    default_name: &str,
    problems: &mut Vec<String>,
) -> (String, u64) {
    let mut name = default_name.to_string();
    let mut seed = 0;
    let Some(header) = header else {
        return (name, seed);
    };
    let toml::Value::Table(t) = header else {
        problems.push("`pipeline` must be a table".into());
        return (name, seed);
    };
    for (k, v) in t {
        match (k.as_str(), v) {
            ("name", toml::Value::String(s)) => name = s,
            ("seed", toml::Value::Integer(i)) if i >= 0 => seed = i as u64,
            ("seed", toml::Value::String(s)) if s.parse::<u64>().is_ok() => {
                seed = s.parse().unwrap_or(0)
            }
            ("name", _) => problems.push("`pipeline.name` must be a string".into()),
            ("seed", _) => problems.push("`pipeline.seed` must be a non-negative integer".into()),
            ("threads" | "device" | "shard" | "batch_size" | "log_level", _) => {
                problems.push(format!(
                    "`pipeline.{k}` is a run-time setting: pass it as a flag (`--{}`)",
                    k.replace('_', "-")
                ))
            }
            (other, _) => problems.push(format!(
                "unknown key `pipeline.{other}` (expected `name` or `seed`)"
            )),
        }
    }
    (name, seed)
}

fn parse_stages(table: toml::Table, problems: &mut Vec<String>) -> Vec<StageSpec> {
    let mut stages = Vec::new();
    for (id, value) in table {
        let toml::Value::Table(mut config) = value else {
            problems.push(format!("`stages.{id}` must be a table"));
            continue;
        };
        let kind = match config.remove("kind") {
            Some(toml::Value::String(s)) => s,
            Some(_) => {
                problems.push(format!("stage `{id}`: `kind` must be a string"));
                continue;
            }
            None => {
                problems.push(format!(
                    "stage `{id}` has no `kind` (run `retort stages` to list them)"
                ));
                continue;
            }
        };
        let inputs = match config.remove("inputs") {
            None => vec![],
            Some(toml::Value::Array(a)) => {
                let mut v = Vec::new();
                for x in a {
                    match x {
                        toml::Value::String(s) => v.push(s),
                        _ => problems.push(format!("stage `{id}`: `inputs` must list stage names")),
                    }
                }
                v
            }
            Some(toml::Value::String(s)) => {
                problems.push(format!(
                    "stage `{id}`: `inputs` must be an array of stage names: write `inputs = [\"{s}\"]`"
                ));
                vec![s]
            }
            Some(_) => {
                problems.push(format!(
                    "stage `{id}`: `inputs` must be an array of stage names"
                ));
                vec![]
            }
        };
        stages.push(StageSpec {
            id,
            kind,
            inputs,
            config,
        });
    }
    stages
}

/// Replaces `${name}` in every string of `v`. A string that is exactly `${name}` takes the
/// variable's value with its type (a number stays a number).
fn substitute(
    v: &mut toml::Value,
    values: &BTreeMap<String, toml::Value>,
    used: &mut BTreeSet<String>,
    missing: &mut BTreeSet<String>,
) {
    match v {
        toml::Value::String(s) => {
            if !s.contains("${") {
                return;
            }
            if let Some(name) = whole_var(s) {
                used.insert(name.to_string());
                match values.get(name) {
                    Some(toml::Value::String(raw)) => *v = typed_scalar(raw),
                    Some(other) => *v = other.clone(),
                    None => {
                        missing.insert(name.to_string());
                    }
                }
                return;
            }
            let mut out = String::with_capacity(s.len());
            let mut rest = s.as_str();
            while let Some(start) = rest.find("${") {
                out.push_str(&rest[..start]);
                let after = &rest[start + 2..];
                let Some(end) = after.find('}') else {
                    out.push_str(&rest[start..]);
                    rest = "";
                    break;
                };
                let name = &after[..end];
                used.insert(name.to_string());
                match values.get(name) {
                    Some(toml::Value::String(raw)) => out.push_str(raw),
                    Some(other) => out.push_str(&other.to_string()),
                    None => {
                        missing.insert(name.to_string());
                    }
                }
                rest = &after[end + 1..];
            }
            out.push_str(rest);
            *s = out;
        }
        toml::Value::Array(a) => a
            .iter_mut()
            .for_each(|x| substitute(x, values, used, missing)),
        toml::Value::Table(t) => t
            .iter_mut()
            .for_each(|(_, x)| substitute(x, values, used, missing)),
        _ => {}
    }
}

fn whole_var(s: &str) -> Option<&str> {
    let inner = s.strip_prefix("${")?.strip_suffix('}')?;
    (!inner.contains('}') && !inner.contains("${")).then_some(inner)
}

/// Interprets a command-line value as a TOML scalar when it looks like one (42, 0.5, true),
/// otherwise as a string.
pub fn typed_scalar(raw: &str) -> toml::Value {
    if let Ok(t) = format!("v = {raw}").parse::<toml::Table>() {
        if let Some(v) = t.get("v") {
            if !matches!(v, toml::Value::Table(_) | toml::Value::Datetime(_)) {
                return v.clone();
            }
        }
    }
    toml::Value::String(raw.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: &str = r#"
[pipeline]
name = "t"
seed = 5
[vars]
input = "in.parquet"
copies = 2
[stages.src]
kind = "parquet_source"
path = "${input}"
[stages.syn]
kind = "synonym"
inputs = ["src"]
copies = "${copies}"
note = "from ${input}!"
"#;

    #[test]
    fn variables_substitute_with_types() {
        let spec = parse(P, "x", &[("copies".into(), "3".into())]).unwrap();
        assert!(spec.problems.is_empty(), "{:?}", spec.problems);
        assert_eq!(spec.seed, 5);
        assert_eq!(spec.stages[0].id, "src");
        assert_eq!(spec.stages[0].config["path"].as_str(), Some("in.parquet"));
        assert_eq!(spec.stages[1].config["copies"].as_integer(), Some(3));
        assert_eq!(
            spec.stages[1].config["note"].as_str(),
            Some("from in.parquet!")
        );
    }

    #[test]
    fn unknown_and_missing_variables_are_reported() {
        let text = P.replace("input = \"in.parquet\"\n", "");
        let spec = parse(&text, "x", &[("nope".into(), "1".into())]).unwrap();
        assert_eq!(spec.problems.len(), 2, "{:?}", spec.problems);
        assert!(spec.problems[0].contains("`input` has no value"));
        assert!(spec.problems[1].contains("no variable `nope`"));
    }

    #[test]
    fn typed_scalars() {
        assert_eq!(typed_scalar("4"), toml::Value::Integer(4));
        assert_eq!(typed_scalar("0.5"), toml::Value::Float(0.5));
        assert_eq!(typed_scalar("true"), toml::Value::Boolean(true));
        assert_eq!(
            typed_scalar("data/x.parquet"),
            toml::Value::String("data/x.parquet".into())
        );
        assert_eq!(
            typed_scalar("[\"a\"]"),
            toml::Value::Array(vec!["a".into()])
        );
    }
}
