//! [`ARCHITECTURES`], the one list of student architectures, and [`StudentKind`], a name
//! from it as the training config's `student` key. Nothing an architecture needs lives here,
//! so no architecture imports this file.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::bert::BertArch;
use super::cnn::CnnArch;
use super::model::Architecture;

/// Every student architecture; the first is the default `student`.
pub const ARCHITECTURES: &[&'static dyn Architecture] = &[&CnnArch, &BertArch];

/// The architecture called `name` (`"cnn"`).
pub fn find(name: &str) -> Option<&'static dyn Architecture> {
    ARCHITECTURES.iter().copied().find(|a| a.name() == name)
}

/// The architecture whose `config.json` has `model_type` `model_type`.
pub fn by_model_type(model_type: &str) -> Option<&'static dyn Architecture> {
    ARCHITECTURES
        .iter()
        .copied()
        .find(|a| a.model_type() == model_type)
}

/// `` `a`, `b` `` from the architectures' names or model types, for error messages.
pub fn quoted(field: fn(&dyn Architecture) -> &'static str, last_sep: &str) -> String {
    let names: Vec<String> = ARCHITECTURES
        .iter()
        .map(|a| format!("`{}`", field(*a)))
        .collect();
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{}{last_sep}{last}", rest.join(", ")),
        _ => names.join(""),
    }
}

/// Which student architecture to train: a name from [`ARCHITECTURES`] (serialised as that
/// name; its JSON Schema lists the names, so `retort train --help-keys` shows them).
#[derive(Clone, Copy)]
pub struct StudentKind(&'static dyn Architecture);

impl StudentKind {
    /// The kind called `name`, if an architecture has that name.
    pub fn find(name: &str) -> Option<Self> {
        find(name).map(StudentKind)
    }

    /// The architecture.
    pub fn arch(self) -> &'static dyn Architecture {
        self.0
    }

    /// Its name (`"cnn"`).
    pub fn name(self) -> &'static str {
        self.0.name()
    }
}

impl Default for StudentKind {
    fn default() -> Self {
        StudentKind(ARCHITECTURES[0])
    }
}

impl PartialEq for StudentKind {
    fn eq(&self, other: &Self) -> bool {
        self.name() == other.name()
    }
}

impl Eq for StudentKind {}

impl std::fmt::Debug for StudentKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for StudentKind {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for StudentKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        StudentKind::find(&name).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown student `{name}`, expected {}",
                quoted(|a| a.name(), " or ")
            ))
        })
    }
}

impl JsonSchema for StudentKind {
    fn schema_name() -> Cow<'static, str> {
        "StudentKind".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let names: Vec<&str> = ARCHITECTURES.iter().map(|a| a.name()).collect();
        let docs: Vec<String> = ARCHITECTURES
            .iter()
            .map(|a| format!("`{}`: {}", a.name(), a.summary()))
            .collect();
        schemars::json_schema!({
            "type": "string",
            "enum": names,
            "description": docs.join("; "),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_model_types_are_unique() {
        for (i, a) in ARCHITECTURES.iter().enumerate() {
            for b in &ARCHITECTURES[i + 1..] {
                assert_ne!(a.name(), b.name());
                assert_ne!(a.model_type(), b.model_type());
            }
        }
        assert_eq!(StudentKind::default().name(), "cnn");
        assert_eq!(find("bert").unwrap().model_type(), "bert");
        assert_eq!(by_model_type("retort-cnn").unwrap().name(), "cnn");
    }

    #[test]
    fn student_kind_round_trips_and_rejects_unknown_names() {
        let k: StudentKind = serde_json::from_str("\"bert\"").unwrap();
        assert_eq!(k.name(), "bert");
        assert_eq!(serde_json::to_string(&k).unwrap(), "\"bert\"");
        let e = serde_json::from_str::<StudentKind>("\"gpt\"").unwrap_err();
        assert!(e.to_string().contains("`cnn` or `bert`"), "{e}");
        let schema = serde_json::to_value(schemars::schema_for!(StudentKind)).unwrap();
        assert_eq!(schema["enum"], serde_json::json!(["cnn", "bert"]));
    }
}
