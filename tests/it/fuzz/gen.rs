//! The campaign's engine: seeded cases, a case count from the environment, panics caught and
//! reported with the case that caused them, and the generators of hostile text.
//!
//! `RETORT_FUZZ_CASES=N` sets the cases per property (default: each property's own, a few
//! hundred, so `cargo test` stays fast; `make soak` raises it). `RETORT_FUZZ_SEED=S` changes
//! the campaign's seed (default fixed, so CI is reproducible); a failure names the seed and
//! the case to rerun.

use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The generator handed to each case.
pub type Gen = ChaCha8Rng;

/// Environment variable: cases per property.
pub const CASES_ENV: &str = "RETORT_FUZZ_CASES";
/// Environment variable: the campaign seed.
pub const SEED_ENV: &str = "RETORT_FUZZ_SEED";

/// Cases to run for a property whose default is `default`, scaled by `RETORT_FUZZ_CASES`
/// (which gives the count for a property of default 200; cheaper and dearer ones scale with it).
pub fn cases(default: usize) -> usize {
    match std::env::var(CASES_ENV)
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        Some(n) => (n * default / 200).max(1),
        None => default,
    }
}

fn campaign_seed() -> u64 {
    std::env::var(SEED_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5EED_F0CC)
}

/// Prints one line on the terminal even when the test harness captures output (a campaign's
/// count of cases is part of what the suite reports).
pub fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Runs `property` on `cases(default)` seeded cases. A panic (a failed assertion or a panic in
/// the code under test) fails the test with the property's name, the case and how to rerun it.
/// Returns the number of cases run.
pub fn campaign(name: &str, default: usize, mut property: impl FnMut(&mut Gen, usize)) -> usize {
    let n = cases(default);
    let seed = campaign_seed();
    let name_hash = xxhash_rust::xxh3::xxh3_64(name.as_bytes());
    let started = std::time::Instant::now();
    for case in 0..n {
        let case_seed = seed ^ name_hash ^ (case as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut g = Gen::seed_from_u64(case_seed);
        if let Err(e) = catch_unwind(AssertUnwindSafe(|| property(&mut g, case))) {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!("fuzz `{name}`: case {case} of {n} failed ({SEED_ENV}={seed}): {msg}",);
        }
    }
    say(&format!(
        "fuzz: {name}: {n} cases passed in {:.2} s ({CASES_ENV} scales the count)",
        started.elapsed().as_secs_f64()
    ));
    n
}

/// Shortens a text for a failure message, escaped.
pub fn show(text: &str) -> String {
    if text.len() <= 300 {
        format!("{text:?}")
    } else {
        let mut end = 300;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        format!("{:?}... ({} bytes)", &text[..end], text.len())
    }
}

/// Words WordNet knows (some with synonyms), stopwords and casing variants.
const WORDS: &[&str] = &[
    "good",
    "happy",
    "movie",
    "film",
    "dog",
    "quick",
    "bad",
    "great",
    "house",
    "run",
    "runs",
    "children",
    "mice",
    "geese",
    "beautiful",
    "slowly",
    "the",
    "a",
    "of",
    "and",
    "to",
    "is",
    "The",
    "Good",
    "HAPPY",
    "Movie",
    "FILM",
    "don't",
    "won’t",
    "well-known",
    "rock’n’roll",
    "'tis",
    "-x-",
    "a''b",
    "co-op",
    "e-mail",
    "x",
    "I",
    "ok",
    "OK",
    "naïve",
    "naı̈ve",
    "café",
    "cafe\u{301}",
    "Straße",
    "İstanbul",
    "ǅemal",
    "ΣΊΣΥΦΟΣ",
    "ﬁne",
    "١٢٣",
    "42",
    "3.14",
    "1st",
    "word\u{200b}word",
    "soft\u{ad}hyphen",
];

/// Punctuation, including the joiners the tokenizer treats specially.
const PUNCT: &[&str] = &[
    ".", "!", "?", ",", ";", ":", "...", "…", "—", "–", "'", "-", "’", "‐", "‑", "''", "--", "\"",
    "(", ")", "«", "»", "。", "！", "？", "؟", "।", "¿", "¡", "\\", "/", "*", "#",
];

/// Whitespace of every kind, line breaks included.
const SPACES: &[&str] = &[
    " ", "  ", "\t", "\n", "\r\n", "\n\n", "\u{a0}", "\u{3000}", "\u{2028}", "\u{2029}", "\u{85}",
    "\u{b}", "\u{c}", "\u{2009}", "\u{1680}",
];

/// Right-to-left text and bidirectional controls.
const RTL: &[&str] = &[
    "שלום",
    "עולם",
    "מה שלומך?",
    "مرحبا",
    "بالعالم",
    "كتاب.",
    "\u{200f}",
    "\u{200e}",
    "\u{202e}",
    "\u{202d}",
    "\u{2067}",
    "\u{2069}",
    "\u{61c}",
];

/// Combining marks, alone and stacked.
const MARKS: &[&str] = &[
    "\u{301}",
    "\u{308}",
    "\u{20dd}",
    "\u{1ab0}",
    "\u{e0100}",
    "\u{36f}",
    "\u{301}\u{302}\u{303}\u{304}\u{305}\u{306}",
    "\u{93c}",
    "\u{e48}",
    "\u{309a}",
    "\u{fe20}",
];

/// Emoji: modifiers, ZWJ sequences, flags, keycaps, lone joiners and selectors.
const EMOJI: &[&str] = &[
    "😀",
    "👍🏽",
    "👨‍👩‍👧",
    "🏳️‍🌈",
    "🇫🇷",
    "🇺🇸🇬🇧",
    "1️⃣",
    "❤️",
    "\u{200d}",
    "\u{fe0f}",
    "🧑🏽‍🚀",
    "👩‍❤️‍💋‍👨",
    "🏴󠁧󠁢󠁳󠁣󠁴󠁿",
    "\u{1f3fb}",
];

/// Other scripts and case-mapping oddities.
const SCRIPTS: &[&str] = &[
    "東京は日本の首都です。",
    "大阪は大きいです。",
    "只有一句话",
    "ภาษาไทยง่าย",
    "हिन्दी भाषा।",
    "한국어 문장.",
    "Ελληνικά",
    "Русский язык.",
    "ᏣᎳᎩ",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
    "ß",
    "ŉ",
    "ΐ",
    "ﬀ",
];

/// Control characters, NUL, BOM, noncharacters, private use, invisible characters.
const CONTROL: &[&str] = &[
    "\0",
    "\u{1}",
    "\u{7}",
    "\u{8}",
    "\u{1b}[31m",
    "\u{7f}",
    "\u{feff}",
    "\u{fffd}",
    "\u{fffe}",
    "\u{ffff}",
    "\u{10ffff}",
    "\u{e000}",
    "\u{200b}",
    "\u{2060}",
    "\u{180e}",
    "\u{9c}",
    "\u{1d}",
];

/// One random Unicode scalar value from anywhere in the code space.
pub fn any_char(g: &mut Gen) -> char {
    loop {
        let v = match g.random_range(0..4) {
            0 => g.random_range(0..0x80),
            1 => g.random_range(0x80..0x800),
            2 => g.random_range(0x800..0x10000),
            _ => g.random_range(0x10000..0x110000),
        };
        if let Some(c) = char::from_u32(v) {
            return c;
        }
    }
}

fn pick<'a>(g: &mut Gen, pool: &[&'a str]) -> &'a str {
    pool[g.random_range(0..pool.len())]
}

/// One piece of hostile text.
fn piece(g: &mut Gen, out: &mut String) {
    match g.random_range(0..100) {
        0..=39 => out.push_str(pick(g, WORDS)),
        40..=49 => out.push_str(pick(g, PUNCT)),
        50..=57 => out.push_str(pick(g, SPACES)),
        58..=62 => out.push_str(pick(g, RTL)),
        63..=67 => out.push_str(pick(g, MARKS)),
        68..=73 => out.push_str(pick(g, EMOJI)),
        74..=79 => out.push_str(pick(g, SCRIPTS)),
        80..=84 => out.push_str(pick(g, CONTROL)),
        85..=91 => {
            for _ in 0..g.random_range(1..4) {
                out.push(any_char(g));
            }
        }
        _ => {
            // A made-up word over a mixed alphabet.
            const ALPHA: &[char] = &['a', 'e', 'k', 'z', 'Q', 'é', 'ж', 'ש', 'ب', '漢', '1', '_'];
            for _ in 0..g.random_range(1..20) {
                out.push(ALPHA[g.random_range(0..ALPHA.len())]);
            }
        }
    }
}

/// A random hostile text: empty, blank, one piece, a sentence or a paragraph, mixing words
/// (many with WordNet synonyms), punctuation, every kind of whitespace, right-to-left text,
/// combining marks, emoji and ZWJ sequences, other scripts, control characters and NUL, and
/// random scalar values.
pub fn text(g: &mut Gen) -> String {
    let pieces = match g.random_range(0..100) {
        0..=4 => 0,
        5..=9 => return pick(g, SPACES).repeat(g.random_range(1..4)),
        10..=19 => g.random_range(1..3),
        20..=89 => g.random_range(3..40),
        _ => g.random_range(40..300),
    };
    let mut out = String::new();
    for _ in 0..pieces {
        piece(g, &mut out);
        match g.random_range(0..10) {
            0..=5 => out.push(' '),
            6 => out.push_str(". "),
            7 => {}
            8 => out.push_str(pick(g, PUNCT)),
            _ => out.push_str(pick(g, SPACES)),
        }
    }
    out
}

/// Sentences of ordinary words, so that every augmenter has something to change.
pub fn plain_text(g: &mut Gen) -> String {
    let mut out = String::new();
    for s in 0..g.random_range(1..5) {
        if s > 0 {
            out.push(' ');
        }
        for w in 0..g.random_range(1..12) {
            if w > 0 {
                out.push(' ');
            }
            out.push_str(WORDS[g.random_range(0..26)]);
        }
        out.push_str(pick(g, &[".", "!", "?"]));
    }
    out
}

/// Texts of about 1 MB: ordinary sentences, one huge "word", a run of combining marks, and
/// emoji ZWJ sequences without spaces.
pub fn huge_texts() -> Vec<(&'static str, String)> {
    const MB: usize = 1 << 20;
    let fill = |unit: &str| unit.repeat(MB / unit.len() + 1);
    vec![
        (
            "sentences",
            fill("The happy dog runs to the good house. A quick film is great! "),
        ),
        ("one word", fill("abcdefghij")),
        ("marks", format!("e{}", fill("\u{301}"))),
        ("zwj", fill("👨‍👩‍👧")),
    ]
}
