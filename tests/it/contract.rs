//! The contract every registered stage kind keeps: its example parses, builds and runs; the
//! declared schema is the real output schema; rows add up; an unknown key is refused.

use retort::pipeline::{plan, spec};
use retort::registry::STAGE_KINDS;
use retort::stage::RunSettings;

use crate::common::*;

#[test]
fn every_stage_kind_keeps_the_contract() {
    if !available(Dep::WordNet) {
        return;
    }
    // Kinds that need a model get a small one trained on the fixtures.
    let models = tempfile::tempdir().unwrap();
    let teacher = train_tiny_teacher(&models.path().join("teacher"));
    for kind in STAGE_KINDS {
        if !needs_available(kind.needs(), &format!("the `{}` contract", kind.name())) {
            continue;
        }
        let tmp = tempfile::tempdir().unwrap();
        let example = tmp.path().join("example.toml");
        std::fs::write(&example, kind.example()).unwrap();
        let out = tmp.path().join("out");
        // `lm_teacher` runs the LM once per token: a few rows are enough.
        let (input, rows) = if kind.name() == "lm_teacher" {
            (small_fixture(&tmp.path().join("small.parquet"), 6), 6)
        } else {
            (fixture(), 240)
        };
        let mut vars = vec![
            ("input".to_string(), input),
            ("output".to_string(), out.display().to_string()),
        ];
        if kind.example().contains("${teacher}") {
            vars.push(("teacher".to_string(), teacher.clone()));
        }
        let var_args: Vec<String> = vars
            .iter()
            .flat_map(|(k, v)| ["--var".to_string(), format!("{k}={v}")])
            .collect();
        // The declared schema of what reaches the sink.
        let parsed = spec::load(&example, &vars).unwrap();
        let settings = RunSettings::with_seed(parsed.seed);
        let planned = plan::build(&parsed, &settings, "example")
            .unwrap_or_else(|e| panic!("{}: example does not build:\n{}", kind.name(), e.render()));
        let declared = planned.stages.last().unwrap().schema.clone();
        drop(planned);

        let mut args = vec!["run", example.to_str().unwrap(), "--quiet"];
        args.extend(var_args.iter().map(String::as_str));
        ok(&args);
        // `train` keeps the rows it trained on under `rows/` beside the model.
        let out = if kind.name() == "train" {
            assert!(
                out.join("final/model.safetensors").exists(),
                "train: no model written"
            );
            out.join("rows")
        } else {
            out
        };
        let m = manifest(&out);
        let part = out.join(m["files"][0]["path"].as_str().unwrap());
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            std::fs::File::open(part).unwrap(),
        )
        .unwrap();
        assert_eq!(
            reader.schema().fields(),
            declared.fields(),
            "{}: declared schema differs from the output",
            kind.name()
        );
        for (stage, t) in m["stages"].as_object().unwrap() {
            let n = |k: &str| t[k].as_u64().unwrap();
            assert_eq!(
                n("rows_in"),
                n("rows_changed") + n("rows_unchanged") + n("rows_rejected"),
                "{}: stage `{stage}` does not add up",
                kind.name()
            );
        }
        assert!(m["rows"].as_u64().unwrap() >= rows, "{}: {m}", kind.name());

        // An unknown key in this kind's table is refused, naming the key.
        let broken = kind.example().replacen(
            &format!("kind = \"{}\"", kind.name()),
            &format!("kind = \"{}\"\nbogus_key = 1", kind.name()),
            1,
        );
        std::fs::write(&example, broken).unwrap();
        let mut args = vec!["validate", example.to_str().unwrap()];
        args.extend(var_args.iter().map(String::as_str));
        let err = fails(&args, 1);
        assert!(err.contains("bogus_key"), "{}: {err}", kind.name());

        // `describe` documents every key of the kind.
        let text = ok(&["describe", kind.name()]);
        for key in kind.keys() {
            assert!(
                text.contains(&format!("  {} : ", key.name)),
                "{}: {} undocumented",
                kind.name(),
                key.name
            );
            assert!(
                !key.doc.is_empty(),
                "{}: key {} has no doc",
                kind.name(),
                key.name
            );
        }
    }
}
