//! Texts as Apertium lines: one text per line, each translated as if it were alone.
//!
//! Apertium translates a stream, so a line's translation could depend on the lines before it
//! in the same call. Two things made it so, and both are handled here:
//!
//! - A line that does not end in a sentence mark runs into the next one: the tagger and the
//!   transfer rules see one sentence and can move words between the lines. [`to_line`] ends
//!   every line with `.`, `!` or `?` (adding ` .` when needed, removed again by
//!   [`from_line`]), and a pivot line gets the same treatment before it is translated back.
//! - Apertium's HMM tagger (`apertium-tagger -g`, Apertium 3.8) changes its own model while it
//!   runs: when a word has an ambiguity class the model lacks ("A new ambiguity class was
//!   found" with `-d`), `find_similar_ambiguity_class` overwrites the model's open class (the
//!   tags an unknown word may take) with a smaller class, for the rest of the process. Every
//!   later unknown word is tagged differently, which changes the words around it (measured on
//!   SST-2: 33 of 400 lines `eng-spa`, 75 of 400 `cat-eng`, when the same lines are cut into
//!   calls of 37). The open class is only ever replaced by a known class that is smaller and
//!   holds the new class; a new class has two tags or more, so once the open class has three
//!   tags nothing changes it again. Every call therefore starts with a [`preamble`] line that
//!   shrinks it to three tags, and that line's translation is dropped. The tagger is then in
//!   the same state whatever came before, and each line's translation depends on that line
//!   alone: the same whatever `lines_per_call`, `processes`, `--batch-size` or `--threads`
//!   (measured on 2,000 SST-2 texts through `spa` and `cat`: calls of 2,000, 256, 100 and 37
//!   lines, and 150 texts each in a call of its own, give the same copies).

use std::sync::atomic::{AtomicUsize, Ordering};

use unicode_normalization_alignments::UnicodeNormalization;

use crate::translate::apertium::Apertium;

/// The line every call in `mode` starts with (in the mode's source language), or `None` when
/// the mode needs none. Each puts the mode's HMM tagger in a fixed state (see the module docs):
///
/// - `eng-spa`: "drunk" (`adj` or `vblex pp`, a class the model lacks) leaves the open class
///   {ADJ, PAST, VLEXPP}.
/// - `cat-eng`: "titular" (`n mf` or `vblex inf`) leaves {ADJMF, NOMMF, VLEXINF}.
///
/// `eng-cat` uses the perceptron tagger (`apertium-tagger -gx`), which has no open class to
/// change. `spa-eng` has one, but no word was found that changes it (none among the Spanish
/// Apertium makes of 77,503 WordNet words and of the 7,447 SST-2 training sentences), so there
/// is no word to put it in a fixed state with and none that moves it. Measured, lines of these
/// two modes do not depend on their neighbours.
pub fn preamble(mode: &str) -> Option<&'static str> {
    match mode {
        "eng-spa" => Some("They were drunk."),
        "cat-eng" => Some("És titular."),
        _ => None,
    }
}

/// Whether a line ends in a mark every Apertium analyser here reads as a sentence end.
fn ends_sentence(line: &str) -> bool {
    line.chars()
        .last()
        .is_some_and(|c| matches!(c, '.' | '!' | '?'))
}

/// One text as a line for the engine: Unicode NFC (Apertium's analysers read a decomposed
/// `i` + U+0308 as two words), line breaks and other control characters become spaces, and
/// ` .` is added when the line does not end in `.`, `!` or `?`. Returns the line and whether
/// the mark was added.
pub fn to_line(text: &str) -> (String, bool) {
    let one: String = text
        .nfc()
        .map(|(c, _)| c)
        .map(|c| {
            if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') {
                ' '
            } else {
                c
            }
        })
        .collect();
    let trimmed = one.trim_end();
    if ends_sentence(trimmed) {
        (trimmed.to_string(), false)
    } else {
        (format!("{trimmed} ."), true)
    }
}

/// Cleans an engine output line: drops the mark [`to_line`] added, collapses runs of spaces,
/// and keeps the source's lower-case first letter (Apertium capitalises sentences).
pub fn from_line(out: &str, source: &str, added_mark: bool) -> String {
    let mut s = out.split_whitespace().collect::<Vec<_>>().join(" ");
    if added_mark {
        if let Some(stripped) = s.strip_suffix('.') {
            s = stripped.trim_end().to_string();
        }
    }
    let src_first = source.trim_start().chars().next();
    if src_first.is_some_and(|c| c.is_lowercase()) {
        let mut chars = s.chars();
        if let Some(f) = chars.next() {
            if f.is_uppercase() {
                s = f.to_lowercase().chain(chars).collect();
            }
        }
    }
    s
}

/// Translates `lines` with `mode` in one call, after the mode's preamble; one output line per
/// input line, or `Err` when the call fails or the line count changes.
fn call(
    engine: &Apertium,
    mode: &str,
    lines: &[String],
) -> std::result::Result<Vec<String>, String> {
    let pre = preamble(mode);
    let mut input = String::with_capacity(lines.iter().map(|l| l.len() + 1).sum::<usize>() + 64);
    if let Some(p) = pre {
        input.push_str(p);
        input.push('\n');
    }
    for l in lines {
        input.push_str(l);
        input.push('\n');
    }
    let out = engine.translate(mode, &input)?;
    let mut got: Vec<String> = out.lines().map(str::to_string).collect();
    let want = lines.len() + usize::from(pre.is_some());
    if got.len() != want {
        return Err(format!("`{mode}` returned {} lines for {want}", got.len()));
    }
    if pre.is_some() {
        got.remove(0);
    }
    Ok(got)
}

/// Round trip of one chunk: `lang → pivot → lang`. A pivot line that lost its final mark gets
/// one back (and loses it again after the return trip), so lines stay sentences. `Err` when a
/// call fails or a line count changes.
fn round_trip(
    engine: &Apertium,
    lang: &str,
    pivot: &str,
    lines: &[String],
) -> std::result::Result<Vec<String>, String> {
    let there = call(engine, &format!("{lang}-{pivot}"), lines)?;
    let marked: Vec<(String, bool)> = there.iter().map(|l| to_line(l.trim())).collect();
    let pivot_lines: Vec<String> = marked.iter().map(|m| m.0.clone()).collect();
    let back = call(engine, &format!("{pivot}-{lang}"), &pivot_lines)?;
    Ok(back
        .into_iter()
        .zip(&marked)
        .map(|(b, (_, added))| {
            let b = b.trim_end();
            match b.strip_suffix('.') {
                Some(s) if *added => s.trim_end().to_string(),
                _ => b.to_string(),
            }
        })
        .collect())
}

/// Round trips every line through `pivot` with `processes` engine calls at a time; a chunk
/// that fails is retried line by line. Each line gets its translation or the reason it failed.
/// A line's translation does not depend on the other lines, `lines_per_call` or `processes`
/// for the modes [`preamble`] knows (see the module docs).
pub fn translate_lines(
    engine: &Apertium,
    lang: &str,
    pivot: &str,
    lines: &[String],
    lines_per_call: usize,
    processes: usize,
) -> Vec<std::result::Result<String, String>> {
    let chunks: Vec<&[String]> = lines.chunks(lines_per_call.max(1)).collect();
    let next = AtomicUsize::new(0);
    let mut results: Vec<Option<Vec<std::result::Result<String, String>>>> =
        (0..chunks.len()).map(|_| None).collect();
    let done = std::sync::Mutex::new(&mut results);
    std::thread::scope(|s| {
        for _ in 0..processes.min(chunks.len()).max(1) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(chunk) = chunks.get(i) else { break };
                let r = match round_trip(engine, lang, pivot, chunk) {
                    Ok(out) => out.into_iter().map(Ok).collect(),
                    Err(_) => chunk
                        .iter()
                        .map(|l| {
                            round_trip(engine, lang, pivot, std::slice::from_ref(l))
                                .map(|mut v| v.remove(0))
                        })
                        .collect(),
                };
                done.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(r);
            });
        }
    });
    results.into_iter().flatten().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::{from_line, to_line};

    #[test]
    fn lines_get_one_line_and_a_final_sentence_mark() {
        assert_eq!(to_line("Great film."), ("Great film.".into(), false));
        assert_eq!(to_line("great film"), ("great film .".into(), true));
        assert_eq!(
            to_line("one\ntwo\r\nthree"),
            ("one two  three .".into(), true)
        );
        assert_eq!(to_line("Really?  "), ("Really?".into(), false));
        assert_eq!(to_line("ünïcödé 非常好"), ("ünïcödé 非常好 .".into(), true));
        // Marks Apertium does not read as a sentence end get a period after them, or the
        // next line would run into this one.
        for text in [
            "the plot \"works\"",
            "great (really)",
            "wait…",
            "so;",
            "it's",
        ] {
            assert_eq!(to_line(text), (format!("{text} ."), true), "{text}");
        }
        assert_eq!(to_line("a\u{0b}b\u{85}c"), ("a b c .".into(), true));
    }

    #[test]
    fn lines_are_nfc() {
        // A decomposed "ï" (i + U+0308) becomes one character, as Apertium needs.
        let (line, _) = to_line("a nai\u{0308}ve film");
        assert_eq!(line, "a na\u{00ef}ve film .");
    }

    #[test]
    fn outputs_are_cleaned_as_the_source_was_written() {
        assert_eq!(
            from_line("The  film was  great .", "the film", true),
            "the film was great"
        );
        assert_eq!(
            from_line("The film was great.", "The film.", false),
            "The film was great."
        );
        assert_eq!(from_line("  ", "x", true), "");
        assert_eq!(from_line("Él vino.", "él", true), "él vino");
    }
}
