//! Validation of a pipeline into a runnable graph: every problem is reported at once.

use std::collections::{BTreeMap, HashMap};

use arrow::datatypes::SchemaRef;

use crate::error::{Error, Result};
use crate::pipeline::spec::PipelineSpec;
use crate::registry;
use crate::stage::kind::{BuildContext, Built, Role, StageKind};
use crate::stage::RunSettings;

/// A validated stage.
pub struct PlannedStage {
    /// Stage id.
    pub id: String,
    /// Its kind.
    pub kind: &'static dyn StageKind,
    /// Indices (into `Plan::stages`) of its inputs, in the order written.
    pub inputs: Vec<usize>,
    /// Schema of the stage's output (for sinks, of what they receive).
    pub schema: SchemaRef,
    /// The built stage; taken by the executor.
    pub built: Option<Built>,
    /// Whether a model stage (`teacher`, `generate`, `lm_teacher`, ...) runs upstream of it,
    /// as told to its build: a sink then commits smaller parts.
    pub after_model: bool,
}

/// A validated, built pipeline in topological order.
pub struct Plan {
    /// Pipeline name.
    pub name: String,
    /// Pipeline seed.
    pub seed: u64,
    /// Stages, sources first, every stage after its inputs.
    pub stages: Vec<PlannedStage>,
    /// The resolved pipeline (after variables), as recorded in manifests.
    pub config: serde_json::Value,
}

/// Checks the structure of the graph without building anything: kinds, keys, inputs, cycles.
/// Returns the topological order (indices into `spec.stages`) when the structure is sound.
/// Two sinks writing into one folder would take each other's parts, and a sink whose folder is,
/// holds or is inside a source's input would delete that input on `--force`: each sink must have
/// its own folder, apart from every input (paths compared after normalising `./`, `..` and
/// trailing slashes). Returns false on a clash.
fn check_sink_paths(
    spec: &PipelineSpec,
    kinds: &[Option<&'static dyn StageKind>],
    problems: &mut Vec<String>,
) -> bool {
    let mut seen: Vec<(std::path::PathBuf, &str)> = Vec::new();
    let mut ok = true;
    let inputs: Vec<(std::path::PathBuf, &str)> = spec
        .stages
        .iter()
        .zip(kinds)
        .filter(|(_, k)| k.is_some_and(|k| k.role() == Role::Source))
        .filter_map(|(s, _)| {
            let path = s.config.get("path")?.as_str()?;
            // A glob's folder is what it reads from.
            let folder = match path.find(['*', '?', '[']) {
                Some(i) => path[..i].rsplit_once('/').map_or(".", |(d, _)| d),
                None => path,
            };
            // Reading the current folder does not make every relative output "inside" it.
            Some((normalise_path(folder), s.id.as_str())).filter(|(p, _)| !p.as_os_str().is_empty())
        })
        .collect();
    for (s, k) in spec.stages.iter().zip(kinds) {
        let is_sink = k.is_some_and(|k| k.role() == Role::Sink);
        let Some(path) = s
            .config
            .get("path")
            .and_then(|p| p.as_str())
            .filter(|_| is_sink)
        else {
            continue;
        };
        let norm = normalise_path(path);
        for (input, source) in &inputs {
            if norm.starts_with(input) || input.starts_with(&norm) {
                ok = false;
                problems.push(format!(
                    "stage `{}` writes to `{path}`, which is, holds or is inside the input of stage `{source}`: a rerun with `--force` would delete the input; choose an output folder outside it",
                    s.id
                ));
            }
        }
        match seen.iter().find(|(p, _)| *p == norm) {
            Some((_, other)) => {
                ok = false;
                problems.push(format!(
                    "stages `{other}` and `{}` both write to `{path}`: give each sink its own folder",
                    s.id
                ));
            }
            None => seen.push((norm, &s.id)),
        }
    }
    ok
}

/// `path` without `.` components, with `..` applied where it can be, for comparing paths as
/// written (`./out/x/`, `out/x` and `out/y/../x` are one folder).
pub fn normalise_path(path: &str) -> std::path::PathBuf {
    use std::path::Component;
    let mut out = std::path::PathBuf::new();
    for c in std::path::Path::new(path).components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir if out.file_name().is_some() => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

fn check_structure(spec: &PipelineSpec, problems: &mut Vec<String>) -> Option<Vec<usize>> {
    let ids: Vec<&str> = spec.stages.iter().map(|s| s.id.as_str()).collect();
    let index: HashMap<&str, usize> = ids.iter().enumerate().map(|(i, s)| (*s, i)).collect();
    let mut sound = true;
    let mut kinds = Vec::new();
    for s in &spec.stages {
        let kind = registry::find(&s.kind);
        match kind {
            None => {
                sound = false;
                let names = registry::STAGE_KINDS.iter().map(|k| k.name());
                let mut msg = format!("stage `{}`: unknown kind `{}`", s.id, s.kind);
                match registry::nearest(&s.kind, names) {
                    Some(n) => msg.push_str(&format!(" (did you mean `{n}`?)")),
                    None => msg.push_str(" (run `retort stages` to list them)"),
                }
                problems.push(msg);
            }
            Some(k) => {
                if let Err(e) = k.check(&s.config) {
                    sound = false;
                    problems.push(format!("stage `{}` ({}): {e}", s.id, k.name()));
                }
                match (k.role(), s.inputs.is_empty()) {
                    (Role::Source, false) => {
                        sound = false;
                        problems.push(format!(
                            "stage `{}`: a {} stage takes no `inputs`",
                            s.id,
                            k.name()
                        ));
                    }
                    (Role::Transform | Role::Sink, true) => {
                        sound = false;
                        problems.push(format!(
                            "stage `{}`: a {} stage needs `inputs = [...]`",
                            s.id,
                            k.name()
                        ));
                    }
                    _ => {}
                }
            }
        }
        kinds.push(kind);
        for input in &s.inputs {
            if !index.contains_key(input.as_str()) {
                sound = false;
                let mut msg = format!("stage `{}`: unknown input `{input}`", s.id);
                if let Some(n) = registry::nearest(input, ids.iter().copied()) {
                    msg.push_str(&format!(" (did you mean `{n}`?)"));
                }
                problems.push(msg);
            } else if let Some(Some(k)) = kinds.get(index[input.as_str()]) {
                if k.role() == Role::Sink {
                    sound = false;
                    problems.push(format!(
                        "stage `{}`: input `{input}` is a sink, which has no output",
                        s.id
                    ));
                }
            }
        }
    }
    // A stage whose kind is known only later in the file can still be a sink input.
    for s in &spec.stages {
        for input in &s.inputs {
            if let Some(&i) = index.get(input.as_str()) {
                if let Some(k) = kinds[i] {
                    if k.role() == Role::Sink && i > index[s.id.as_str()] {
                        sound = false;
                        problems.push(format!(
                            "stage `{}`: input `{input}` is a sink, which has no output",
                            s.id
                        ));
                    }
                }
            }
        }
    }
    // Every non-sink stage must feed something; there must be a sink.
    let consumed: Vec<bool> = (0..spec.stages.len())
        .map(|i| {
            spec.stages
                .iter()
                .any(|s| s.inputs.iter().any(|x| x == ids[i]))
        })
        .collect();
    for (i, s) in spec.stages.iter().enumerate() {
        if let Some(k) = kinds[i] {
            if k.role() != Role::Sink && !consumed[i] {
                problems.push(format!(
                    "stage `{}` is not read by any stage: add it to a sink's `inputs`",
                    s.id
                ));
                sound = false;
            }
        }
    }
    if !spec.stages.is_empty()
        && !kinds
            .iter()
            .any(|k| matches!(k, Some(k) if k.role() == Role::Sink))
    {
        problems.push("the pipeline has no sink (e.g. `kind = \"parquet_sink\"`)".into());
        sound = false;
    }
    if !check_sink_paths(spec, &kinds, problems) {
        sound = false;
    }
    let order = topo_order(spec, &index, problems);
    if sound {
        order
    } else {
        None
    }
}

/// Kahn's algorithm, ties broken by file order; reports a cycle as a chain.
fn topo_order(
    spec: &PipelineSpec,
    index: &HashMap<&str, usize>,
    problems: &mut Vec<String>,
) -> Option<Vec<usize>> {
    let n = spec.stages.len();
    let deps: Vec<Vec<usize>> = spec
        .stages
        .iter()
        .map(|s| {
            s.inputs
                .iter()
                .filter_map(|i| index.get(i.as_str()).copied())
                .collect()
        })
        .collect();
    let mut done = vec![false; n];
    let mut order = Vec::with_capacity(n);
    while order.len() < n {
        let next = (0..n).find(|&i| !done[i] && deps[i].iter().all(|&d| done[d]));
        match next {
            Some(i) => {
                done[i] = true;
                order.push(i);
            }
            None => {
                // Follow inputs from an unfinished stage until one repeats: that is the cycle.
                let start = (0..n).find(|&i| !done[i]).unwrap_or(0);
                let mut path = vec![start];
                let mut cur = start;
                while let Some(&nx) = deps[cur].iter().find(|&&d| !done[d]) {
                    if let Some(pos) = path.iter().position(|&p| p == nx) {
                        let mut chain: Vec<&str> = path[pos..]
                            .iter()
                            .map(|&p| spec.stages[p].id.as_str())
                            .collect();
                        chain.reverse();
                        chain.push(chain[0]);
                        problems.push(format!("the stages form a cycle: {}", chain.join(" -> ")));
                        break;
                    }
                    path.push(nx);
                    cur = nx;
                }
                return None;
            }
        }
    }
    Some(order)
}

/// Validates and builds a pipeline. Every problem found is reported in one error.
pub fn build(spec: &PipelineSpec, settings: &RunSettings, origin: &str) -> Result<Plan> {
    let mut problems = spec.problems.clone();
    let order = check_structure(spec, &mut problems);
    let mut stages: Vec<PlannedStage> = Vec::new();
    // When the only problem is one error from building a stage, it is reported as it is.
    let mut lone_error: Option<Error> = None;
    if let Some(order) = order {
        let mut new_index: BTreeMap<usize, usize> = BTreeMap::new();
        let mut failed = vec![false; spec.stages.len()];
        let mut model_upstream = vec![false; spec.stages.len()];
        for &i in &order {
            let s = &spec.stages[i];
            let kind = registry::find(&s.kind).expect("checked above");
            let input_idx: Vec<usize> = s
                .inputs
                .iter()
                .map(|name| {
                    spec.stages
                        .iter()
                        .position(|x| &x.id == name)
                        .expect("checked")
                })
                .collect();
            if input_idx.iter().any(|&j| failed[j]) {
                failed[i] = true;
                continue;
            }
            let after_model = input_idx.iter().any(|&j| model_upstream[j]);
            model_upstream[i] = after_model || kind.needs().models;
            let cx = BuildContext {
                stage: &s.id,
                settings,
                after_model,
            };
            let built = match kind.build(&s.config, &cx) {
                Ok(b) => b,
                Err(e) => {
                    failed[i] = true;
                    let e = e.context(format!("stage `{}`", s.id));
                    problems.push(one_line(&e));
                    if lone_error.is_none() {
                        lone_error = Some(e);
                    }
                    continue;
                }
            };
            let inputs: Vec<usize> = input_idx.iter().map(|j| new_index[j]).collect();
            let input_schema = match input_schema(s.id.as_str(), &inputs, &stages) {
                Ok(schema) => schema,
                Err(p) => {
                    failed[i] = true;
                    problems.push(p);
                    continue;
                }
            };
            let schema = match (&built, input_schema) {
                (Built::Source(src), _) => Ok(src.schema()),
                (Built::Transform(t), Some(input)) => t
                    .output_schema(&input)
                    .map_err(|e| format!("stage `{}`: {}", s.id, one_line(&e))),
                (Built::Sink(sink), Some(input)) => sink
                    .accepts(&input)
                    .map(|_| input)
                    .map_err(|e| format!("stage `{}`: {}", s.id, one_line(&e))),
                (_, None) => Err(format!("stage `{}` has no input", s.id)),
            };
            match schema {
                Ok(schema) => {
                    new_index.insert(i, stages.len());
                    stages.push(PlannedStage {
                        id: s.id.clone(),
                        kind,
                        inputs,
                        schema,
                        built: Some(built),
                        after_model,
                    });
                }
                Err(p) => {
                    failed[i] = true;
                    problems.push(p);
                }
            }
        }
    } else {
        check_stage_settings(spec, settings, &mut problems);
    }
    if problems.len() == 1 {
        if let Some(e) = lone_error {
            return Err(e);
        }
    }
    if !problems.is_empty() {
        let n = problems.len();
        return Err(Error::user(format!(
            "{origin} has {n} problem{}",
            if n == 1 { "" } else { "s" }
        ))
        .with_details(problems)
        .with_hint("fix them and run `retort validate` again"));
    }
    Ok(Plan {
        name: spec.name.clone(),
        seed: spec.seed,
        stages,
        config: resolved_config(spec),
    })
}

/// Checks each stage's own settings (ranges, files, models) by building it alone: used when the
/// graph is broken, so that one `validate` still reports every problem of the file.
fn check_stage_settings(spec: &PipelineSpec, settings: &RunSettings, problems: &mut Vec<String>) {
    for s in &spec.stages {
        let Some(kind) = registry::find(&s.kind) else {
            continue;
        };
        if kind.check(&s.config).is_err() {
            continue;
        }
        let cx = BuildContext {
            stage: &s.id,
            settings,
            after_model: false,
        };
        if let Err(e) = kind.build(&s.config, &cx) {
            problems.push(one_line(&e.context(format!("stage `{}`", s.id))));
        }
    }
}

/// The schema a stage receives: all its inputs must produce the same columns.
fn input_schema(
    id: &str,
    inputs: &[usize],
    stages: &[PlannedStage],
) -> std::result::Result<Option<SchemaRef>, String> {
    let Some(&first) = inputs.first() else {
        return Ok(None);
    };
    let schema = stages[first].schema.clone();
    for &j in &inputs[1..] {
        let other = &stages[j].schema;
        if other.fields() != schema.fields() {
            let names = |s: &SchemaRef| {
                s.fields()
                    .iter()
                    .map(|f| format!("{}: {}", f.name(), f.data_type()))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            return Err(format!(
                "stage `{id}`: inputs `{}` and `{}` have different columns ({} vs {})",
                stages[first].id,
                stages[j].id,
                names(&schema),
                names(other)
            ));
        }
    }
    Ok(Some(schema))
}

/// One line for an error inside a problem list: message, cause and hint.
fn one_line(e: &Error) -> String {
    use std::error::Error as _;
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(&format!(": {c}"));
        cause = c.source();
    }
    if let Some(h) = e.hint() {
        s.push_str(&format!(" (hint: {h})"));
    }
    s
}

fn resolved_config(spec: &PipelineSpec) -> serde_json::Value {
    let stages: serde_json::Map<String, serde_json::Value> = spec
        .stages
        .iter()
        .map(|s| {
            let mut t = s.config.clone();
            t.insert("kind".into(), toml::Value::String(s.kind.clone()));
            if !s.inputs.is_empty() {
                t.insert(
                    "inputs".into(),
                    toml::Value::Array(s.inputs.iter().cloned().map(toml::Value::String).collect()),
                );
            }
            (
                s.id.clone(),
                serde_json::to_value(&t).unwrap_or(serde_json::Value::Null),
            )
        })
        .collect();
    serde_json::json!({ "name": spec.name, "seed": spec.seed, "stages": stages })
}

impl Plan {
    /// Graphviz DOT text of the graph.
    pub fn to_dot(&self) -> String {
        let mut s = format!(
            "digraph \"{}\" {{\n  rankdir=LR;\n",
            self.name.replace('"', "'")
        );
        for st in &self.stages {
            let shape = match st.kind.role() {
                Role::Source => "cylinder",
                Role::Transform => "box",
                Role::Sink => "folder",
            };
            s.push_str(&format!(
                "  \"{}\" [label=\"{}\\n({})\", shape={shape}];\n",
                st.id,
                st.id,
                st.kind.name()
            ));
        }
        for st in &self.stages {
            for &i in &st.inputs {
                s.push_str(&format!("  \"{}\" -> \"{}\";\n", self.stages[i].id, st.id));
            }
        }
        s.push_str("}\n");
        s
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::models::{CnnConfig, Model, TextTokenizer};
    use crate::pipeline::spec;
    use crate::testing::{available_for, Dep};

    /// A seeded, untrained CNN teacher for the fixture's classes, saved under `dir`.
    fn teacher_folder(dir: &Path) -> PathBuf {
        let tok = TextTokenizer::train_wordpiece(&["a good film", "a bad film"], 40).unwrap();
        let cfg = CnnConfig {
            embed_dim: 8,
            filters: 4,
            ..CnnConfig::new(tok.vocab_size(), 2)
        };
        let labels = vec!["negative".to_string(), "positive".to_string()];
        let model = Model::new_cnn(cfg, tok, labels, 1, &candle_core::Device::Cpu).unwrap();
        let folder = dir.join("teacher");
        model.save(&folder).unwrap();
        folder
    }

    /// `[stages.ID]` tables of the pipeline text.
    fn stage(id: &str, kind: &str, inputs: &[&str], keys: &str) -> String {
        let inputs: Vec<String> = inputs.iter().map(|i| format!("\"{i}\"")).collect();
        format!(
            "[stages.{id}]\nkind = \"{kind}\"\ninputs = [{}]\n{keys}\n",
            inputs.join(", ")
        )
    }

    /// The planner tells a sink's build whether a model stage runs upstream of it (its parts
    /// are then 8,192 rows, so a kill loses less of the model's work): true downstream of
    /// `teacher` (also through a plain augmenter after it), `generate` and `lm_teacher`, false
    /// after a plain augmenter alone.
    #[test]
    fn a_sink_is_after_a_model_only_downstream_of_a_model_stage() {
        let tmp = tempfile::tempdir().unwrap();
        let teacher = teacher_folder(tmp.path());
        let out = |name: &str| format!("path = \"{}\"", tmp.path().join(name).display());
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/reviews.parquet");
        let mut text = format!(
            "[pipeline]\nname = \"t\"\nseed = 1\n\n[stages.corpus]\nkind = \"parquet_source\"\npath = \"{}\"\n",
            fixture.display()
        );
        text += &stage("shuf", "shuffle", &["corpus"], "");
        text += &stage("plain", "parquet_sink", &["shuf"], &out("plain"));
        let model = format!("model = \"{}\"", teacher.display());
        text += &stage("teacher", "teacher", &["corpus"], &model);
        text += &stage("reshuf", "shuffle", &["teacher"], "");
        text += &stage("soft", "parquet_sink", &["reshuf"], &out("soft"));
        let mut expected = vec![
            ("corpus", false),
            ("shuf", false),
            ("plain", false),
            ("teacher", false),
            ("reshuf", true),
            ("soft", true),
        ];
        if available_for(Dep::SmolLm2, "the `generate` and `lm_teacher` sinks") {
            text += &stage("gen", "generate", &["corpus"], "prompts = 2");
            text += &stage("generated", "parquet_sink", &["gen"], &out("generated"));
            text += &stage("lm", "lm_teacher", &["corpus"], "");
            text += &stage("lm_labelled", "parquet_sink", &["lm"], &out("lm_labelled"));
            expected.extend([
                ("gen", false),
                ("generated", true),
                ("lm", false),
                ("lm_labelled", true),
            ]);
        }
        let spec = spec::parse(&text, "t", &[]).unwrap();
        let plan = build(&spec, &RunSettings::with_seed(1), "the test pipeline")
            .unwrap_or_else(|e| panic!("{}", e.render()));
        let got: BTreeMap<&str, bool> = plan
            .stages
            .iter()
            .map(|s| (s.id.as_str(), s.after_model))
            .collect();
        let expected: BTreeMap<&str, bool> = expected.into_iter().collect();
        assert_eq!(got, expected);
    }
}
