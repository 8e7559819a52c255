//! Pipelines built in code: each stage names its kind by the kind's `KIND` static and its
//! configuration by a value of that kind's config type, so a renamed kind or a config of the
//! wrong kind fails to compile instead of failing when the pipeline runs. The result is the
//! same [`PipelineSpec`] a pipeline file parses into, planned and run the same way.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::pipeline::spec::{PipelineSpec, StageSpec};
use crate::stage::kind::Kind;

/// Builds a [`PipelineSpec`] stage by stage.
///
/// ```
/// use retort::io::{sink, source};
/// use retort::pipeline::build::{with_defaults, PipelineBuilder};
///
/// let read: source::ParquetSourceConfig =
///     with_defaults(&source::KIND, [("path", "in.parquet")]).unwrap();
/// let write: sink::ParquetSinkConfig =
///     with_defaults(&sink::KIND, [("path", "out")]).unwrap();
/// let spec = PipelineBuilder::new("copy", 7)
///     .stage("corpus", &source::KIND, &[], &read)
///     .unwrap()
///     .stage("out", &sink::KIND, &["corpus"], &write)
///     .unwrap()
///     .finish();
/// assert_eq!(spec.stages[1].kind, "parquet_sink");
/// ```
#[derive(Debug, Clone)]
pub struct PipelineBuilder {
    spec: PipelineSpec,
}

impl PipelineBuilder {
    /// An empty pipeline called `name` with pipeline seed `seed`.
    pub fn new(name: &str, seed: u64) -> Self {
        PipelineBuilder {
            spec: PipelineSpec {
                name: name.into(),
                seed,
                stages: vec![],
                problems: vec![],
            },
        }
    }

    /// Adds stage `id` of `kind`, reading from the stages `inputs` (none for a source), with
    /// `config` written as its table. Inputs and keys are checked when the spec is planned
    /// (`plan::build`), as for a pipeline file.
    pub fn stage<C: Serialize>(
        mut self,
        id: &str,
        kind: &'static Kind<C>,
        inputs: &[&str],
        config: &C,
    ) -> Result<Self> {
        self.spec.stages.push(StageSpec {
            id: id.into(),
            kind: kind.name.into(),
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            config: stage_table(config)
                .map_err(|e| e.context(format!("stage `{id}` ({})", kind.name)))?,
        });
        Ok(self)
    }

    /// The pipeline as built.
    pub fn finish(self) -> PipelineSpec {
        self.spec
    }
}

/// A config value as its stage table. A struct becomes its keys (unset options left out); a
/// tuple of structs, such as an augmenter's `(CopyOptions, Config)`, becomes the union of
/// their keys, as its kind parses them.
pub fn stage_table<C: Serialize>(config: &C) -> Result<toml::Table> {
    let value = toml::Value::try_from(config)
        .map_err(|e| Error::runtime("cannot write a stage config as a table").with_source(e))?;
    let parts = match value {
        toml::Value::Table(t) => vec![t],
        toml::Value::Array(items) => items
            .into_iter()
            .map(|v| match v {
                toml::Value::Table(t) => Ok(t),
                other => Err(not_a_table(other.type_str())),
            })
            .collect::<Result<_>>()?,
        other => return Err(not_a_table(other.type_str())),
    };
    let mut table = toml::Table::new();
    for part in parts {
        for (k, v) in part {
            if table.insert(k.clone(), v).is_some() {
                return Err(Error::runtime(format!(
                    "two parts of a stage config both set `{k}`"
                )));
            }
        }
    }
    Ok(table)
}

fn not_a_table(found: &str) -> Error {
    Error::runtime(format!(
        "a stage config must be a struct or a tuple of structs, not a {found}"
    ))
}

/// The config `kind` reads from a table holding only `keys`: every other key takes the
/// kind's default, exactly as when a pipeline file leaves it out.
pub fn with_defaults<C, const N: usize>(kind: &Kind<C>, keys: [(&str, &str); N]) -> Result<C>
where
    C: DeserializeOwned,
{
    let table: toml::Table = keys
        .iter()
        .map(|(k, v)| (k.to_string(), toml::Value::String(v.to_string())))
        .collect();
    (kind.parse)(&table).map_err(|e| {
        Error::runtime(format!("cannot make a `{}` config: {e}", kind.name))
            .with_hint("the keys given in code no longer match the kind's config: update them")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::augment::adapter::CopyOptions;
    use crate::augment::eda::{self, EdaConfig};
    use crate::io::{sink, source};
    use crate::stage::kind::StageKind;

    #[test]
    fn a_config_round_trips_through_its_table() {
        let read: source::ParquetSourceConfig =
            with_defaults(&source::KIND, [("path", "a.parquet")]).unwrap();
        assert_eq!(read.path, "a.parquet");
        let table = stage_table(&read).unwrap();
        assert_eq!(table["path"].as_str(), Some("a.parquet"));
        assert!(
            !table.contains_key("id_column"),
            "unset options are left out"
        );
        assert!(source::KIND.check(&table).is_ok());
    }

    #[test]
    fn an_augmenter_table_is_the_union_of_its_parts() {
        let config = (
            CopyOptions {
                copies: 3,
                keep_original: true,
                unchanged: Default::default(),
            },
            EdaConfig {
                alpha: 0.2,
                ..EdaConfig::default()
            },
        );
        let table = stage_table(&config).unwrap();
        assert_eq!(table["copies"].as_integer(), Some(3));
        assert_eq!(table["keep_original"].as_bool(), Some(true));
        assert_eq!(table["alpha"].as_float(), Some(0.2));
        let (opts, eda) = (eda::KIND.parse)(&table).unwrap();
        assert_eq!((opts.copies, opts.keep_original), (3, true));
        assert_eq!(eda, config.1);
    }

    #[test]
    fn the_builder_names_kinds_from_their_statics() {
        let write: sink::ParquetSinkConfig = with_defaults(&sink::KIND, [("path", "out")]).unwrap();
        let spec = PipelineBuilder::new("p", 3)
            .stage("w", &sink::KIND, &["r"], &write)
            .unwrap()
            .finish();
        assert_eq!((spec.name.as_str(), spec.seed), ("p", 3));
        assert_eq!(spec.stages[0].kind, sink::KIND.name);
        assert_eq!(spec.stages[0].inputs, ["r"]);
        assert_eq!(spec.stages[0].config["path"].as_str(), Some("out"));
    }

    #[test]
    fn unknown_keys_say_what_to_update() {
        let err = with_defaults(&source::KIND, [("paths", "a")]).unwrap_err();
        assert!(err.to_string().contains("parquet_source"), "{err}");
        assert!(err.hint().is_some());
    }
}
