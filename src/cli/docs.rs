//! `retort stages` and `retort describe`: documentation generated from the stage registry.

use retort::error::{Error, Result};
use retort::registry;
use retort::stage::kind::{self, Role};

/// Runs `retort stages [--markdown]`.
pub fn stages(markdown: bool) -> Result<i32> {
    print!(
        "{}",
        if markdown {
            stages_markdown()
        } else {
            stages_text()
        }
    );
    Ok(0)
}

/// Runs `retort describe KIND`.
pub fn describe(kind: &str) -> Result<i32> {
    print!("{}", describe_text(kind)?);
    Ok(0)
}

/// The text of `retort stages`.
pub fn stages_text() -> String {
    let mut s = String::new();
    for k in registry::STAGE_KINDS {
        s.push_str(&format!(
            "{:<16} {:<10} {}\n",
            k.name(),
            k.role().to_string(),
            k.summary()
        ));
    }
    s.push_str("\nRun `retort describe KIND` for a kind's keys and a complete example.\n");
    s
}

/// The README's table of stage kinds (`retort stages --markdown`); a test keeps the README
/// equal to it.
pub fn stages_markdown() -> String {
    let mut s = String::from("| kind | role | needs | what it does |\n|---|---|---|---|\n");
    for k in registry::STAGE_KINDS {
        let needs = k.needs().describe();
        s.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            k.name(),
            k.role(),
            if needs.is_empty() { "-" } else { &needs },
            k.summary()
        ));
    }
    s
}

/// An unknown stage kind, with the nearest known name as a hint.
pub fn unknown_kind(kind: &str) -> Error {
    let e = Error::user(format!("unknown stage kind `{kind}`"));
    match registry::nearest(kind, registry::STAGE_KINDS.iter().map(|k| k.name())) {
        Some(n) => e.with_hint(format!("did you mean `{n}`?")),
        None => e.with_hint("run `retort stages` to list them"),
    }
}

/// The text of `retort describe KIND`.
pub fn describe_text(kind: &str) -> Result<String> {
    let k = registry::find(kind).ok_or_else(|| unknown_kind(kind))?;
    let mut s = format!("{} ({})\n  {}\n\nkeys:\n", k.name(), k.role(), k.summary());
    let mut keys = vec![kind::KeyDoc {
        name: "kind".into(),
        ty: "string".into(),
        default: None,
        required: true,
        doc: format!("`{}`", k.name()),
    }];
    if k.role() != Role::Source {
        keys.push(kind::KeyDoc {
            name: "inputs".into(),
            ty: "array of string".into(),
            default: None,
            required: true,
            doc: "The stages whose rows this stage reads.".into(),
        });
    }
    keys.extend(k.keys());
    s.push_str(&keys_text(&keys));
    s.push_str("\nexample (run it with `retort run FILE --var input=... --var output=...`):\n\n");
    s.push_str(&k.example());
    Ok(s)
}

/// One entry per key: name, type, default and documentation.
pub fn keys_text(keys: &[kind::KeyDoc]) -> String {
    let mut s = String::new();
    for key in keys {
        let default = match (&key.default, key.required) {
            (Some(d), _) => format!(" (default {d})"),
            (None, true) => " (required)".into(),
            (None, false) => " (optional)".into(),
        };
        s.push_str(&format!(
            "  {} : {}{default}\n      {}\n",
            key.name, key.ty, key.doc
        ));
    }
    s
}
