//! The one list of stage kinds. Each kind's `KIND` lives in the file that implements it; this
//! list gives `retort stages`, `retort describe KIND`, `retort stage KIND`, config parsing and
//! the contract tests. Only the planner and the command line read it.

use crate::stage::kind::StageKind;

/// Every stage kind, in the order `retort stages` lists them.
pub static STAGE_KINDS: &[&dyn StageKind] = &[
    &crate::io::source::KIND,
    &crate::augment::synonym::KIND,
    &crate::augment::perturb::KIND,
    &crate::augment::shuffle::KIND,
    &crate::augment::replace::KIND,
    &crate::augment::eda::KIND,
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

    /// A `pub static KIND` written in a stage file but left out of [`STAGE_KINDS`] would be a
    /// kind nobody can run: every one found in the source must be listed.
    #[test]
    fn every_kind_in_the_source_is_listed() {
        let listed: Vec<&str> = STAGE_KINDS.iter().map(|k| k.name()).collect();
        let mut found = Vec::new();
        let mut stack = vec![std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src")];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap();
                found.extend(defined_kinds(&text).into_iter().map(|n| (n, path.clone())));
            }
        }
        assert!(found.len() >= listed.len(), "found only {found:?}");
        for (name, path) in &found {
            assert!(
                listed.contains(&name.as_str()),
                "stage kind `{name}` is defined in {} but missing from registry::STAGE_KINDS",
                path.display()
            );
        }
    }

    /// The `name` of every kind defined in `text`: a line that starts `pub static KIND: Kind<`,
    /// then the first `name: "..."` after it.
    fn defined_kinds(text: &str) -> Vec<String> {
        let mut at = 0;
        let mut starts = Vec::new();
        for line in text.split_inclusive('\n') {
            if line.starts_with("pub static KIND: Kind<") {
                starts.push(at);
            }
            at += line.len();
        }
        starts
            .into_iter()
            .filter_map(|at| {
                let rest = &text[at..];
                let name = rest.find("name: \"")? + "name: \"".len();
                let end = rest[name..].find('"')?;
                Some(rest[name..name + end].to_string())
            })
            .collect()
    }

    #[test]
    fn a_kind_missing_from_the_list_is_caught() {
        let text = "pub static KIND: Kind<Foo> = Kind {\n    name: \"frobnicate\",\n";
        assert_eq!(defined_kinds(text), vec!["frobnicate".to_string()]);
        assert!(find("frobnicate").is_none());
    }

    #[test]
    fn kind_names_are_unique() {
        let mut names: Vec<_> = STAGE_KINDS.iter().map(|k| k.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), STAGE_KINDS.len());
    }
}
