//! What a stage kind is: its role, documentation, example, needs, and how it parses and builds
//! its configuration. Each kind defines one `static KIND` of these types in the file that
//! implements it; [`crate::registry`] lists them.

use std::marker::PhantomData;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::Result;
use crate::stage::{RunSettings, Sink, Source, Transform};

/// What a stage kind may need besides its input rows. `retort stages`, the run fingerprint and
/// the tests read these flags; nothing else keeps a list of kinds by name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Needs {
    /// Runs neural models, so it follows `--device` and `--precision`.
    pub models: bool,
    /// Reads WordNet 3.0 (Debian `wordnet-base`).
    pub wordnet: bool,
    /// Calls Apertium (its default engine).
    pub apertium: bool,
    /// Loads SmolLM2 from the asset folder unless its `model` key names another.
    pub lm_asset: bool,
}

impl Needs {
    /// Needs nothing beyond its input.
    pub const NOTHING: Needs = Needs {
        models: false,
        wordnet: false,
        apertium: false,
        lm_asset: false,
    };

    /// The needs as words, e.g. `models, WordNet`; empty when there are none.
    pub fn describe(&self) -> String {
        [
            (self.models, "models"),
            (self.wordnet, "WordNet"),
            (self.apertium, "Apertium"),
            (self.lm_asset, "SmolLM2"),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, name)| *name)
        .collect::<Vec<_>>()
        .join(", ")
    }
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
    /// Whether a model stage runs upstream of this one, so that its rows are slow to make (a
    /// sink then commits smaller parts, losing less work to a crash).
    pub after_model: bool,
}

impl BuildContext<'_> {
    /// The stage's seed: the pipeline seed mixed with the stage id, so two stages of one kind
    /// draw different streams.
    pub fn stage_seed(&self) -> u64 {
        crate::seed::stage_seed(self.settings.seed, self.stage)
    }
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
    /// What the kind may need besides its input.
    fn needs(&self) -> Needs;
    /// The keys of this kind's stage table in its example (no `kind` or `inputs`).
    fn example_keys(&self) -> &'static str;
    /// A complete pipeline file that uses this kind, with `${input}` and `${output}` variables
    /// (and `${teacher}` where the kind takes a model): its example keys in the shared shell.
    fn example(&self) -> String {
        example_pipeline(self.name(), self.role(), self.example_keys())
    }
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
    /// What the kind may need besides its input.
    pub needs: Needs,
    /// The keys of the kind's table in its example pipeline (no `kind` or `inputs`).
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
    fn needs(&self) -> Needs {
        self.needs
    }
    fn example_keys(&self) -> &'static str {
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
    // A documented enum variant is `{"type": "string", "const": "swap", ...}`: its value says
    // more than its type.
    if let Some(c) = p.get("const") {
        return c.to_string();
    }
    if let Some(vals) = p.get("enum").and_then(|e| e.as_array()) {
        return vals
            .iter()
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join(" | ");
    }
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
    "value".into()
}

/// The shared example shell: `corpus` (a `parquet_source` on `${input}`) -> the kind -> `out`
/// (a `parquet_sink` on `${output}`). A source replaces `corpus`, a sink replaces `out`; `keys`
/// are the lines of the kind's own table. A `${teacher}` in `keys` adds that variable.
pub fn example_pipeline(name: &str, role: Role, keys: &str) -> String {
    let keys = keys.trim_end();
    let mut s = String::from("[vars]\ninput = \"data/train.parquet\"\n");
    s.push_str(&format!("output = \"out/{name}\"\n"));
    if keys.contains("${teacher}") {
        s.push_str("teacher = \"out/gen-0/final\"\n");
    }
    s.push_str(&format!("\n[pipeline]\nname = \"{name}\"\nseed = 17\n\n"));
    let table = |id: &str, kind: &str, inputs: Option<&str>, keys: &str| {
        let mut t = format!("[stages.{id}]\nkind = \"{kind}\"\n");
        if let Some(i) = inputs {
            t.push_str(&format!("inputs = [\"{i}\"]\n"));
        }
        if !keys.is_empty() {
            t.push_str(keys);
            t.push('\n');
        }
        t
    };
    let source_keys = "path = \"${input}\"";
    let sink_keys = "path = \"${output}\"";
    match role {
        Role::Source => {
            s.push_str(&table("corpus", name, None, keys));
            s.push('\n');
            s.push_str(&table("out", "parquet_sink", Some("corpus"), sink_keys));
        }
        Role::Transform => {
            s.push_str(&table("corpus", "parquet_source", None, source_keys));
            s.push('\n');
            s.push_str(&table(name, name, Some("corpus"), keys));
            s.push('\n');
            s.push_str(&table("out", "parquet_sink", Some(name), sink_keys));
        }
        Role::Sink => {
            s.push_str(&table("corpus", "parquet_source", None, source_keys));
            s.push('\n');
            s.push_str(&table("out", name, Some("corpus"), keys));
        }
    }
    s
}
