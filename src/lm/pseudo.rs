//! The parts of pseudo-data generation that need no model: few-shot prompts, the clean-up of
//! what the model wrote, and the checks that drop empty outputs, duplicates and near-copies.

use std::collections::HashSet;

/// The default prompt. `{label}` is the class name, `{task}` the task description and
/// `{examples}` the few-shot examples, one per line after `- `.
pub const DEFAULT_TEMPLATE: &str = "Here are some {label} examples from a {task} dataset:\n\
{examples}\n\
Write one new {label} example in the same style, about something else. \
Reply with the example only, on one line.";

/// Fills a prompt template.
pub fn render_prompt(template: &str, label: &str, task: &str, examples: &[&str]) -> String {
    let listed = examples
        .iter()
        .map(|e| format!("- {}", one_line(e)))
        .collect::<Vec<_>>()
        .join("\n");
    template
        .replace("{label}", label)
        .replace("{task}", task)
        .replace("{examples}", &listed)
}

/// Checks a template names only the placeholders [`render_prompt`] fills.
pub fn check_template(template: &str) -> Result<(), String> {
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let Some(len) = rest[start..].find('}') else {
            break;
        };
        let name = &rest[start + 1..start + len];
        if !matches!(name, "label" | "task" | "examples") {
            return Err(format!(
                "`template` has the placeholder `{{{name}}}`; the known ones are `{{label}}`, `{{task}}` and `{{examples}}`"
            ));
        }
        rest = &rest[start + len + 1..];
    }
    Ok(())
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Cleans a model's reply into one example: drops chat markers (`<|...|>`), keeps the first
/// non-empty line, strips list markers, labels such as `Example:` and surrounding quotes, and
/// collapses white space. May return an empty string.
pub fn clean(raw: &str) -> String {
    let mut text = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(start) = rest.find("<|") {
        text.push_str(&rest[..start]);
        match rest[start..].find("|>") {
            Some(end) => {
                let marker = &rest[start..start + end + 2];
                text.push('\n');
                rest = &rest[start + end + 2..];
                // A turn marker is followed by the role's name on its line.
                if marker == "<|im_start|>" {
                    rest = rest.find('\n').map_or("", |nl| &rest[nl..]);
                }
            }
            None => {
                rest = "";
            }
        }
    }
    text.push_str(rest);
    // The first line with content that is not a preamble such as `Here's an example:`.
    let Some(line) = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.ends_with(':'))
    else {
        return String::new();
    };
    let mut line = line.to_string();
    loop {
        let before = line.len();
        for marker in ["- ", "* ", "• "] {
            if let Some(s) = line.strip_prefix(marker) {
                line = s.trim_start().to_string();
            }
        }
        let digits = line.chars().take_while(|c| c.is_ascii_digit()).count();
        if digits > 0 && line[digits..].starts_with(['.', ')']) {
            line = line[digits + 1..].trim_start().to_string();
        }
        if let Some(colon) = line.find(':') {
            let head = line[..colon].trim().to_lowercase();
            let known = [
                "example",
                "new example",
                "text",
                "answer",
                "review",
                "sentence",
                "output",
            ];
            if known.contains(&head.as_str()) {
                line = line[colon + 1..].trim_start().to_string();
            }
        }
        for (open, close) in [('"', '"'), ('“', '”'), ('\'', '\''), ('«', '»')] {
            if line.len() > 1 && line.starts_with(open) && line.ends_with(close) {
                let inner = &line[open.len_utf8()..line.len() - close.len_utf8()];
                line = inner.trim().to_string();
            }
        }
        if line.len() == before {
            break;
        }
    }
    one_line(&line)
}

/// The form two texts are compared in: lower case, words of letters and digits only.
pub fn normalise(text: &str) -> String {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Share of distinct words two normalised texts have in common (Jaccard index), in 0..=1.
pub fn word_overlap(a: &str, b: &str) -> f64 {
    let a: HashSet<&str> = a.split(' ').filter(|w| !w.is_empty()).collect();
    let b: HashSet<&str> = b.split(' ').filter(|w| !w.is_empty()).collect();
    if a.is_empty() && b.is_empty() {
        return 1.0;
    }
    let common = a.intersection(&b).count();
    common as f64 / (a.len() + b.len() - common) as f64
}

/// A short fingerprint of a text's normalised form, for spotting duplicates.
pub fn fingerprint(text: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(normalise(text).as_bytes())
}

/// Why a generated text is dropped before the teacher sees it: `empty`, `near_copy` (of one of
/// its examples) or `duplicate` (of an input text or an earlier output, whose fingerprints are
/// in `seen`).
pub fn screen(
    text: &str,
    shots: &[&str],
    max_overlap: f64,
    seen: &mut HashSet<u64>,
) -> Option<&'static str> {
    let norm = normalise(text);
    if norm.is_empty() {
        return Some("empty");
    }
    if shots
        .iter()
        .any(|s| word_overlap(&norm, &normalise(s)) >= max_overlap)
    {
        return Some("near_copy");
    }
    if !seen.insert(xxhash_rust::xxh3::xxh3_64(norm.as_bytes())) {
        return Some("duplicate");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_list_the_examples_and_fill_every_placeholder() {
        let p = render_prompt(
            DEFAULT_TEMPLATE,
            "positive",
            "product review",
            &["Great\nphone.", "Love it"],
        );
        assert!(p.contains("- Great phone.\n- Love it\n"), "{p}");
        assert!(p.contains("positive examples from a product review dataset"));
        assert!(!p.contains('{'));
        assert!(check_template(DEFAULT_TEMPLATE).is_ok());
        let err = check_template("Write a {lable} text").unwrap_err();
        assert!(err.contains("{lable}"), "{err}");
    }

    #[test]
    fn clean_strips_chat_artefacts_markers_and_quotes() {
        assert_eq!(
            clean("  \n\"This blender is loud but works.\"<|im_end|>"),
            "This blender is loud but works."
        );
        assert_eq!(clean("Example: - 1. “Nice  battery”\nmore"), "Nice battery");
        assert_eq!(clean("<|im_start|>assistant\nGood screen."), "Good screen.");
        assert_eq!(clean("Review: it's fine"), "it's fine");
        assert_eq!(clean("<|im_end|>"), "");
        assert_eq!(clean("2023: a good year"), "2023: a good year");
        assert_eq!(
            clean("Here's a new negative example:\n\n- Too loud."),
            "Too loud."
        );
        assert_eq!(clean("Here's one:"), "");
    }

    #[test]
    fn screen_drops_empty_near_copies_and_duplicates() {
        let mut seen = HashSet::from([fingerprint("An input, text!")]);
        assert_eq!(
            screen("an input text", &[], 0.7, &mut seen),
            Some("duplicate")
        );
        let shots = ["The battery lasts all day."];
        assert_eq!(screen("  !! ", &shots, 0.7, &mut seen), Some("empty"));
        assert_eq!(
            screen("the battery lasts all day!", &shots, 0.7, &mut seen),
            Some("near_copy")
        );
        assert_eq!(screen("Screen is too dim.", &shots, 0.7, &mut seen), None);
        assert_eq!(
            screen("screen is TOO dim", &shots, 0.7, &mut seen),
            Some("duplicate")
        );
        assert!((word_overlap("a b c", "a b d") - 0.5).abs() < 1e-12);
    }
}
