//! The one list of stage kinds. Each entry gives `retort stages`, `retort describe KIND`,
//! `retort stage KIND`, config parsing and the contract tests.

use std::marker::PhantomData;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::Result;
use crate::stage::{RunSettings, Sink, Source, Transform};

/// Kinds that run neural models, and so follow `--device` and `--precision`.
pub const MODEL_KINDS: &[&str] = &[
    "teacher",
    "train",
    "generate",
    "lm_teacher",
    "backtranslate",
];

/// Whether stages of `kind` run neural models.
pub fn uses_models(kind: &str) -> bool {
    MODEL_KINDS.contains(&kind)
}

/// The role a stage plays in a graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads data; has no inputs.
    Source,
    /// Turns batches into batches.
    Transform,
    /// Writes data; nothing reads from it.
    Sink,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Source => "source",
            Role::Transform => "transform",
            Role::Sink => "sink",
        })
    }
}

/// A built stage, ready to run.
pub enum Built {
    /// A source.
    Source(Box<dyn Source>),
    /// A transform.
    Transform(Box<dyn Transform>),
    /// A sink.
    Sink(Box<dyn Sink>),
}

/// What a stage constructor may look at.
pub struct BuildContext<'a> {
    /// The stage id.
    pub stage: &'a str,
    /// Run settings.
    pub settings: &'a RunSettings,
}

/// Documentation of one configuration key, drawn from the config struct's `///` docs.
#[derive(Debug, Clone, Serialize)]
pub struct KeyDoc {
    /// Key name.
    pub name: String,
    /// Type, as JSON Schema names it.
    pub ty: String,
    /// Default value, when there is one.
    pub default: Option<String>,
    /// Whether the key must be given.
    pub required: bool,
    /// What the key does.
    pub doc: String,
}

/// One kind of stage.
pub trait StageKind: Sync {
    /// The `kind = "..."` name.
    fn name(&self) -> &'static str;
    /// Its role.
    fn role(&self) -> Role;
    /// One-line summary.
    fn summary(&self) -> &'static str;
    /// A complete pipeline file that uses this kind, with `${input}` and `${output}` variables.
    fn example(&self) -> &'static str;
    /// Documentation of every configuration key.
    fn keys(&self) -> Vec<KeyDoc>;
    /// Parses the stage's table, reporting unknown keys and bad values without building.
    fn check(&self, table: &toml::Table) -> std::result::Result<(), String>;
    /// Builds the stage.
    fn build(&self, table: &toml::Table, cx: &BuildContext<'_>) -> Result<Built>;
}

/// A stage kind defined by a config type `C` and a constructor.
pub struct Kind<C> {
    /// The `kind` name.
    pub name: &'static str,
    /// The role.
    pub role: Role,
    /// One-line summary.
    pub summary: &'static str,
    /// Complete example pipeline.
    pub example: &'static str,
    /// Parses the stage table into `C`.
    pub parse: fn(&toml::Table) -> std::result::Result<C, String>,
    /// Documents the keys of `C`.
    pub keys: fn() -> Vec<KeyDoc>,
    /// Builds the stage from its config.
    pub build: fn(C, &BuildContext<'_>) -> Result<Built>,
    /// Marks the config type.
    pub config: PhantomData<fn() -> C>,
}

impl<C> StageKind for Kind<C> {
    fn name(&self) -> &'static str {
        self.name
    }
    fn role(&self) -> Role {
        self.role
    }
    fn summary(&self) -> &'static str {
        self.summary
    }
    fn example(&self) -> &'static str {
        self.example
    }
    fn keys(&self) -> Vec<KeyDoc> {
        (self.keys)()
    }
    fn check(&self, table: &toml::Table) -> std::result::Result<(), String> {
        (self.parse)(table).map(|_| ())
    }
    fn build(&self, table: &toml::Table, cx: &BuildContext<'_>) -> Result<Built> {
        let config = (self.parse)(table)
            .map_err(|e| crate::error::Error::user(format!("stage `{}`: {e}", cx.stage)))?;
        (self.build)(config, cx)
    }
}

/// Parses a stage table into a config struct (which should deny unknown fields).
pub fn parse_table<C: DeserializeOwned>(table: &toml::Table) -> std::result::Result<C, String> {
    C::deserialize(toml::Value::Table(table.clone())).map_err(|e| clean_toml_error(&e.to_string()))
}

/// Turns a toml deserialisation message into one line.
fn clean_toml_error(msg: &str) -> String {
    msg.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
        .replace("unknown field", "unknown key")
}

/// Documents the keys of a config struct from its JSON Schema (which carries the `///` docs).
pub fn keys_of<C: JsonSchema>() -> Vec<KeyDoc> {
    let schema = schemars::schema_for!(C);
    let value = serde_json::to_value(&schema).unwrap_or_default();
    let required: Vec<String> = value["required"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let mut keys = Vec::new();
    if let Some(props) = value["properties"].as_object() {
        for (name, p) in props {
            keys.push(KeyDoc {
                name: name.clone(),
                ty: type_name(p, &value),
                default: p.get("default").map(|d| d.to_string()),
                required: required.contains(name),
                doc: p["description"]
                    .as_str()
                    .unwrap_or("")
                    .replace('\n', " ")
                    .trim()
                    .to_string(),
            });
        }
    }
    keys
}

fn type_name(p: &serde_json::Value, root: &serde_json::Value) -> String {
    if let Some(t) = p.get("type") {
        return match t {
            serde_json::Value::String(s) => {
                if s == "array" {
                    format!("array of {}", type_name(&p["items"], root))
                } else {
                    s.clone()
                }
            }
            serde_json::Value::Array(a) => a
                .iter()
                .filter_map(|v| v.as_str())
                .filter(|s| *s != "null")
                .collect::<Vec<_>>()
                .join(" | "),
            _ => "value".into(),
        };
    }
    if let Some(r) = p.get("$ref").and_then(|r| r.as_str()) {
        let name = r.rsplit('/').next().unwrap_or(r);
        let def = &root["$defs"][name];
        return type_name(def, root);
    }
    if let Some(vals) = p.get("enum").and_then(|e| e.as_array()) {
        return vals
            .iter()
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join(" | ");
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(alts) = p.get(key).and_then(|a| a.as_array()) {
            let names: Vec<String> = alts
                .iter()
                .map(|a| type_name(a, root))
                .filter(|s| s != "null")
                .collect();
            return names.join(" | ");
        }
    }
    if let Some(c) = p.get("const") {
        return c.to_string();
    }
    "value".into()
}

/// Every stage kind, in the order `retort stages` lists them.
pub static STAGE_KINDS: &[&dyn StageKind] = &[
    &crate::io::source::KIND,
    &crate::augment::adapter::SYNONYM,
    &crate::augment::adapter::PERTURB,
    &crate::augment::adapter::SHUFFLE,
    &crate::augment::adapter::EDA,
    &crate::translate::backtranslate::KIND,
    &crate::lm::generate::KIND,
    &crate::distill::teacher::KIND,
    &crate::lm::lm_teacher::KIND,
    &crate::io::sink::KIND,
    &crate::distill::train_stage::KIND,
];

/// Looks up a stage kind by name.
pub fn find(name: &str) -> Option<&'static dyn StageKind> {
    STAGE_KINDS.iter().copied().find(|k| k.name() == name)
}

/// The known name closest to `name`, when one is close enough to be a likely typo.
pub fn nearest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(name, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_suggests_typos_only() {
        let names = ["synonym", "perturb", "shuffle"];
        assert_eq!(nearest("synonim", names), Some("synonym"));
        assert_eq!(nearest("zzzzzzzz", names), None);
    }

    #[test]
    fn kind_names_are_unique() {
        let mut names: Vec<_> = STAGE_KINDS.iter().map(|k| k.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), STAGE_KINDS.len());
    }
}
