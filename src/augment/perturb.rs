//! Word perturbations from EDA (Wei & Zou 2019): random insertion, deletion and swap.
//!
//! * `insert` ("RI"): `n` times, take a random non-stopword word that has WordNet synonyms
//!   and insert one of its synonyms, joined by a single space, after a random word (never
//!   before the first word, so sentence capitalization is kept).
//! * `delete` ("RD"): remove each word with probability `p`, keeping at least one word; one
//!   whitespace gap next to each removed word goes with it (never a gap holding a line break
//!   when the other side's gap does not), so no double spaces appear.
//! * `swap` ("RS"): `n` times, swap two words with different text; punctuation and spacing
//!   stay where they are.

use std::path::PathBuf;
use std::sync::Arc;

use rand::Rng;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::stage::kind::{Kind, Needs, Role};

use super::adapter::{augment_keys, build_augment, parse_augment, CopyOptions};
use super::amount::{check_unit, Amount, DEFAULT_ALPHA};
use super::stopwords::Stopwords;
use super::tokens::{Doc, Lowered};
use super::wordnet::{default_wordnet_dir, PosSet, SynonymTable, Synonyms};
use super::{Augmentation, Augmenter, RowRng};

/// Which perturbation to apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PerturbMode {
    /// Insert synonyms of random words at random positions.
    Insert,
    /// Delete each word with probability `p`.
    Delete,
    /// Swap random pairs of words.
    Swap,
}

impl PerturbMode {
    fn name(self) -> &'static str {
        match self {
            PerturbMode::Insert => "insert",
            PerturbMode::Delete => "delete",
            PerturbMode::Swap => "swap",
        }
    }
}

/// The most insertions or swaps one copy makes (`n`): each is work and, for `insert`, text,
/// so an unbounded count would hang the run or exhaust memory.
pub const MAX_N: usize = 1_000;

/// Configuration of the `perturb` augmenter.
///
/// `insert`/`swap` make `n` operations if `n` is set, else EDA's `max(1, floor(alpha · words))`
/// (`alpha` defaults to 0.1); `n` and `alpha` cannot both be set and `p` is rejected.
/// `delete` uses `p` (default 0.1; `alpha` is accepted as a synonym of `p`, not both);
/// `n` is rejected.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PerturbConfig {
    /// `insert`, `delete` or `swap`.
    pub mode: PerturbMode,
    /// `delete` only: probability of deleting each word, in [0, 1]. Default 0.1.
    #[serde(default)]
    pub p: Option<f64>,
    /// `insert`/`swap` only: number of insertions or swaps, at most 1,000.
    #[serde(default)]
    pub n: Option<usize>,
    /// EDA strength in [0, 1]: `insert`/`swap` make max(1, floor(alpha · words)) operations;
    /// for `delete` it is the deletion probability. Default 0.1.
    #[serde(default)]
    pub alpha: Option<f64>,
    /// `insert` only: directory of the WordNet 3.0 database.
    #[serde(default = "default_wordnet_dir")]
    pub wordnet: PathBuf,
    /// `insert` only: words whose synonyms are never inserted (case-insensitive); replaces the
    /// built-in English list.
    #[serde(default)]
    pub stopwords: Option<Vec<String>>,
}

impl PerturbConfig {
    /// A config for `mode` with every other key at its default.
    pub fn new(mode: PerturbMode) -> Self {
        PerturbConfig {
            mode,
            p: None,
            n: None,
            alpha: None,
            wordnet: default_wordnet_dir(),
            stopwords: None,
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Insert {
        table: Arc<SynonymTable>,
        stopwords: Stopwords,
        amount: Amount,
    },
    Delete {
        p: f64,
        /// `{"mode":"delete","p":P,"deleted":` (the count and `}` are appended).
        params_prefix: String,
        /// Delete one random word when the coin flips deleted none (EDA's "at least one").
        at_least_one: bool,
    },
    Swap {
        amount: Amount,
    },
}

/// The perturbation augmenter (`op = "perturb"`; params `{"mode":"insert","n":K}`,
/// `{"mode":"swap","n":K}` with `K` operations made, or `{"mode":"delete","p":P,"deleted":K}`).
#[derive(Debug, Clone)]
pub struct Perturb {
    op: Op,
}

impl Perturb {
    /// Validates `cfg`; loads (or reuses) the WordNet table for `insert` only.
    pub fn new(cfg: &PerturbConfig) -> Result<Perturb> {
        let section = format!("perturb ({})", cfg.mode.name());
        let op = match cfg.mode {
            PerturbMode::Delete => {
                if cfg.n.is_some() {
                    return Err(Error::user(format!(
                        "{section}: `n` is not used by mode \"delete\""
                    ))
                    .with_hint("set `p`, the probability of deleting each word"));
                }
                if cfg.p.is_some() && cfg.alpha.is_some() {
                    return Err(Error::user(format!(
                        "{section}: `p` and `alpha` cannot both be set"
                    )));
                }
                let p = cfg.p.or(cfg.alpha).unwrap_or(DEFAULT_ALPHA);
                check_unit(&section, if cfg.p.is_some() { "p" } else { "alpha" }, p)?;
                let p_json = serde_json::to_string(&p).unwrap_or_else(|_| "null".into());
                Op::Delete {
                    p,
                    params_prefix: format!("{{\"mode\":\"delete\",\"p\":{p_json},\"deleted\":"),
                    at_least_one: false,
                }
            }
            PerturbMode::Insert | PerturbMode::Swap => {
                if cfg.p.is_some() {
                    return Err(Error::user(format!(
                        "{section}: `p` is only used by mode \"delete\""
                    ))
                    .with_hint("set `n` (a count) or `alpha` (a fraction of the words)"));
                }
                if let Some(n) = cfg.n.filter(|&n| n > MAX_N) {
                    return Err(Error::user(format!(
                        "{section}: `n` is {n}; at most {MAX_N} operations per copy are allowed"
                    ))
                    .with_hint("set `alpha` to change a fraction of the words instead"));
                }
                let amount = Amount::from_keys(&section, cfg.n, None, cfg.alpha)?;
                if cfg.mode == PerturbMode::Swap {
                    Op::Swap { amount }
                } else {
                    Op::Insert {
                        table: SynonymTable::load(&cfg.wordnet)?,
                        stopwords: Stopwords::new(cfg.stopwords.as_deref()),
                        amount,
                    }
                }
            }
        };
        Ok(Perturb { op })
    }

    /// An `insert` perturber from already validated parts.
    pub fn insert(table: Arc<SynonymTable>, stopwords: Stopwords, amount: Amount) -> Perturb {
        Perturb {
            op: Op::Insert {
                table,
                stopwords,
                amount,
            },
        }
    }

    /// A `swap` perturber.
    pub fn swap(amount: Amount) -> Perturb {
        Perturb {
            op: Op::Swap { amount },
        }
    }

    /// A `delete` perturber; `p` must be in [0, 1] (it is clamped). With `at_least_one`
    /// (used by EDA), a text of two or more words where no word was drawn for deletion loses
    /// one random word instead of being skipped (unless `p` is 0).
    pub fn delete(p: f64, at_least_one: bool) -> Perturb {
        let p = if p.is_nan() { 0.0 } else { p.clamp(0.0, 1.0) };
        let p_json = serde_json::to_string(&p).unwrap_or_else(|_| "null".into());
        Perturb {
            op: Op::Delete {
                p,
                params_prefix: format!("{{\"mode\":\"delete\",\"p\":{p_json},\"deleted\":"),
                at_least_one,
            },
        }
    }
}

impl Augmenter for Perturb {
    fn augment(&self, doc: &Doc<'_>, rng: &mut RowRng) -> Option<Augmentation> {
        let out = match &self.op {
            Op::Insert {
                table,
                stopwords,
                amount,
            } => insert(doc, rng, table, stopwords, *amount),
            Op::Delete {
                p,
                params_prefix,
                at_least_one,
            } => delete(doc, rng, *p, params_prefix, *at_least_one),
            Op::Swap { amount } => swap(doc, rng, *amount),
        }?;
        (out.text != doc.text).then_some(out)
    }

    fn no_copy_reason(&self, doc: &Doc<'_>) -> (&'static str, String) {
        let words = doc.word_count();
        match &self.op {
            Op::Insert { .. } if words == 0 => ("no_words", "the text has no words".into()),
            Op::Insert { .. } => (
                "no_synonym",
                "no word of the text has a WordNet synonym to insert".into(),
            ),
            Op::Delete { .. } | Op::Swap { .. } if words < 2 => (
                "too_few_words",
                format!("the text has {words} word(s); deleting or swapping needs two"),
            ),
            Op::Delete { p, .. } => (
                "nothing_deleted",
                format!("no word was drawn for deletion at p = {p} (short texts often lose none)"),
            ),
            Op::Swap { .. } => (
                "no_applicable_op",
                "swapping words left the text unchanged".into(),
            ),
        }
    }
}

fn insert(
    doc: &Doc<'_>,
    rng: &mut RowRng,
    table: &SynonymTable,
    stopwords: &Stopwords,
    amount: Amount,
) -> Option<Augmentation> {
    let wc = doc.word_count();
    if wc == 0 {
        return None;
    }
    let target = amount.target(wc);
    if target == 0 {
        return None;
    }
    let low = Lowered::new(doc);
    let lookup = |w: usize| -> Option<Synonyms<'_>> {
        let lw = low.get(w);
        if stopwords.contains(lw)
            || lw.bytes().any(|b| b.is_ascii_digit())
            || !lw.chars().any(char::is_alphabetic)
        {
            return None;
        }
        let syns = table.synonyms_in(lw, PosSet::ALL);
        (!syns.is_empty()).then_some(syns)
    };
    // Source words are drawn uniformly among the words that have synonyms: by rejection
    // (cheap, few lookups), falling back to listing them all.
    let mut all: Option<Vec<Synonyms<'_>>> = None;
    let mut inserts: Vec<(usize, &str)> = Vec::with_capacity(target.min(MAX_N));
    for _ in 0..target {
        let mut source = None;
        if all.is_none() {
            for _ in 0..8 {
                if let Some(s) = lookup(rng.random_range(0..wc)) {
                    source = Some(s);
                    break;
                }
            }
        }
        let syns = match source {
            Some(s) => s,
            None => {
                let list = all.get_or_insert_with(|| (0..wc).filter_map(lookup).collect());
                if list.is_empty() {
                    return None;
                }
                list[rng.random_range(0..list.len())]
            }
        };
        if let Some(s) = syns.get(rng.random_range(0..syns.len())) {
            inserts.push((rng.random_range(0..wc), s));
        }
    }
    if inserts.is_empty() {
        return None;
    }
    inserts.sort_by_key(|i| i.0);
    let extra: usize = inserts.iter().map(|i| i.1.len() + 1).sum();
    let mut out = String::with_capacity(doc.text.len() + extra);
    let mut w = 0;
    let mut next = 0;
    for tok in &doc.tokens {
        out.push_str(&doc.text[tok.start..tok.end]);
        if tok.is_word {
            while next < inserts.len() && inserts[next].0 == w {
                out.push(' ');
                out.push_str(inserts[next].1);
                next += 1;
            }
            w += 1;
        }
    }
    Some(Augmentation {
        text: out,
        op: "perturb",
        params: format!("{{\"mode\":\"insert\",\"n\":{}}}", inserts.len()),
    })
}

fn delete(
    doc: &Doc<'_>,
    rng: &mut RowRng,
    p: f64,
    prefix: &str,
    at_least_one: bool,
) -> Option<Augmentation> {
    let wc = doc.word_count();
    if wc < 2 || p <= 0.0 {
        return None;
    }
    let mut del: Vec<bool> = (0..wc).map(|_| rng.random_bool(p)).collect();
    let mut deleted = del.iter().filter(|&&d| d).count();
    if deleted == wc {
        del[rng.random_range(0..wc)] = false;
        deleted -= 1;
    }
    if deleted == 0 {
        if !at_least_one {
            return None;
        }
        del[rng.random_range(0..wc)] = true;
        deleted = 1;
    }
    let mut out = String::with_capacity(doc.text.len());
    // State of the last token written: a whitespace gap (its length, whether it holds a newline).
    let mut last_space: Option<(usize, bool)> = None;
    let mut skip_space = false;
    let mut w = 0;
    for (t, tok) in doc.tokens.iter().enumerate() {
        let s = &doc.text[tok.start..tok.end];
        if tok.is_word {
            let gone = del[w];
            w += 1;
            if gone {
                let next_space = doc.is_space(t + 1);
                let next_nl = next_space && doc.token_text(t + 1).contains('\n');
                match last_space {
                    Some((len, prev_nl)) if !(prev_nl && next_space && !next_nl) => {
                        out.truncate(out.len() - len);
                        last_space = None;
                    }
                    _ if next_space => skip_space = true,
                    _ => {}
                }
                continue;
            }
            skip_space = false;
            last_space = None;
            out.push_str(s);
        } else if doc.is_space(t) {
            if skip_space {
                skip_space = false;
                continue;
            }
            last_space = Some((s.len(), s.contains('\n')));
            out.push_str(s);
        } else {
            skip_space = false;
            last_space = None;
            out.push_str(s);
        }
    }
    let mut params = String::with_capacity(prefix.len() + 8);
    params.push_str(prefix);
    params.push_str(&deleted.to_string());
    params.push('}');
    Some(Augmentation {
        text: out,
        op: "perturb",
        params,
    })
}

fn swap(doc: &Doc<'_>, rng: &mut RowRng, amount: Amount) -> Option<Augmentation> {
    let wc = doc.word_count();
    if wc < 2 {
        return None;
    }
    let first = doc.word(0);
    if (1..wc).all(|i| doc.word(i) == first) {
        return None;
    }
    let mut perm: Vec<u32> = (0..wc as u32).collect();
    let word = |perm: &[u32], k: usize| doc.word(perm[k] as usize);
    let pick_pair = |perm: &[u32], rng: &mut RowRng| -> (usize, usize) {
        let i = rng.random_range(0..wc);
        for _ in 0..8 {
            let j = rng.random_range(0..wc);
            if word(perm, j) != word(perm, i) {
                return (i, j);
            }
        }
        let start = rng.random_range(0..wc);
        let j = (0..wc)
            .map(|k| (start + k) % wc)
            .find(|&j| word(perm, j) != word(perm, i))
            .unwrap_or(i);
        (i, j)
    };
    let target = amount.target(wc).max(1);
    let mut swaps = 0;
    for _ in 0..target {
        let (i, j) = pick_pair(&perm, rng);
        perm.swap(i, j);
        swaps += 1;
    }
    if (0..wc).all(|k| word(&perm, k) == doc.word(k)) {
        let (i, j) = pick_pair(&perm, rng);
        perm.swap(i, j);
        swaps += 1;
    }
    let mut w = 0;
    let text = doc.rebuild(|t| {
        if doc.tokens[t].is_word {
            let r = doc.word(perm[w] as usize);
            w += 1;
            Some(r)
        } else {
            None
        }
    });
    Some(Augmentation {
        text,
        op: "perturb",
        params: format!("{{\"mode\":\"swap\",\"n\":{swaps}}}"),
    })
}

/// Stage kind `perturb`.
pub static KIND: Kind<(CopyOptions, PerturbConfig)> = Kind {
    name: "perturb",
    role: Role::Transform,
    summary: "Token perturbation: random insertion of synonyms, random deletion, random swap",
    needs: Needs {
        wordnet: true,
        ..Needs::NOTHING
    },
    example: r#"mode = "swap"
alpha = 0.1
copies = 2"#,
    parse: parse_augment,
    keys: augment_keys::<PerturbConfig>,
    build: |cfg, cx| {
        build_augment(cfg, cx, |c| {
            Ok(Arc::new(Perturb::new(&c)?) as Arc<dyn Augmenter>)
        })
    },
    config: std::marker::PhantomData,
};

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn make(mode: PerturbMode, f: impl FnOnce(&mut PerturbConfig)) -> Perturb {
        let mut cfg = PerturbConfig::new(mode);
        f(&mut cfg);
        Perturb::new(&cfg).unwrap()
    }

    fn run(a: &Perturb, text: &str, seed: u64) -> Option<Augmentation> {
        a.augment(&Doc::new(text), &mut RowRng::seed_from_u64(seed))
    }

    const EDGE: &[&str] = &[
        "",
        " ",
        "word",
        "?!",
        "東京は日本の首都です。",
        "the of and",
        "😀 🎉 👨‍👩‍👧",
        "e\u{301}te\u{301} cafe\u{301}",
        "שלום עולם, مرحبا بالعالم",
        "\u{301}\u{301}",
    ];

    #[test]
    fn config() {
        let cfg: PerturbConfig = toml::from_str("mode = \"swap\"\nn = 2").unwrap();
        assert_eq!(cfg.mode, PerturbMode::Swap);
        assert!(toml::from_str::<PerturbConfig>("mode = \"shuffle\"").is_err());
        assert!(toml::from_str::<PerturbConfig>("mode = \"swap\"\nx = 1").is_err());
        let bad = |toml_text: &str| {
            let cfg: PerturbConfig = toml::from_str(toml_text).unwrap();
            Perturb::new(&cfg).unwrap_err().to_string()
        };
        assert!(bad("mode = \"delete\"\nn = 2").contains("`n`"));
        assert!(bad("mode = \"swap\"\np = 0.2").contains("`p`"));
        assert!(bad("mode = \"delete\"\np = 1.5").contains("`p`"));
        assert!(bad("mode = \"insert\"\nn = 1\nalpha = 0.2").contains("`n` and `alpha`"));
        assert!(bad("mode = \"insert\"\nwordnet = \"/nope\"").contains("/nope"));
        // A count beyond MAX_N is refused when the stage is built (`validate` reports it)
        // instead of looping for ever or aborting on allocation.
        for mode in ["swap", "insert"] {
            let e = bad(&format!("mode = \"{mode}\"\nn = 9223372036854775807"));
            assert!(
                e.contains("`n` is 9223372036854775807; at most 1000"),
                "{e}"
            );
            let cfg: PerturbConfig =
                toml::from_str(&format!("mode = \"{mode}\"\nn = 1000")).unwrap();
            assert!(Perturb::new(&cfg).is_ok());
        }
        // swap and delete need no WordNet
        let cfg: PerturbConfig = toml::from_str("mode = \"swap\"\nwordnet = \"/nope\"").unwrap();
        assert!(Perturb::new(&cfg).is_ok());
    }

    #[test]
    fn edge_cases_never_panic_nor_return_unchanged() {
        for mode in [PerturbMode::Insert, PerturbMode::Delete, PerturbMode::Swap] {
            let a = make(mode, |c| {
                if mode == PerturbMode::Delete {
                    c.p = Some(0.5)
                }
            });
            for text in EDGE {
                for seed in 0..5 {
                    if let Some(out) = run(&a, text, seed) {
                        assert_ne!(&out.text, text);
                    }
                }
            }
            assert!(run(&a, "", 7).is_none());
        }
    }

    #[test]
    fn insert_adds_synonyms() {
        let a = make(PerturbMode::Insert, |c| c.n = Some(2));
        let text = "The happy dog sleeps.";
        let out = run(&a, text, 7).unwrap();
        assert_eq!(out.params, r#"{"mode":"insert","n":2}"#);
        assert!(out.text.starts_with("The "));
        assert!(out.text.ends_with('.'));
        assert!(!out.text.contains("  "));
        assert!(Doc::new(&out.text).word_count() >= 6);
        assert!(run(&a, "the of and", 7).is_none());
        assert!(run(&a, "xqzv blorpt", 7).is_none());
        let one = run(&a, "happy", 7).unwrap();
        assert!(one.text.starts_with("happy "));
        assert_eq!(run(&a, text, 7), run(&a, text, 7));
    }

    #[test]
    fn delete_p_zero_one_and_spacing() {
        let zero = make(PerturbMode::Delete, |c| c.p = Some(0.0));
        assert!(run(&zero, "a b c d", 7).is_none());
        let one = make(PerturbMode::Delete, |c| c.p = Some(1.0));
        let out = run(&one, "Alpha beta, gamma delta.", 7).unwrap();
        assert_eq!(Doc::new(&out.text).word_count(), 1);
        assert!(out
            .params
            .starts_with(r#"{"mode":"delete","p":1.0,"deleted":3}"#));
        assert!(run(&one, "single", 7).is_none());
        let half = make(PerturbMode::Delete, |c| c.p = Some(0.5));
        for seed in 0..50 {
            let text = "one two three four five six\n\nseven eight nine ten.";
            if let Some(out) = run(&half, text, seed) {
                assert!(!out.text.contains("  "), "{:?}", out.text);
                assert!(!out.text.starts_with(' '), "{:?}", out.text);
                assert!(!out.text.ends_with(' '), "{:?}", out.text);
                assert!(out.text.ends_with('.'));
                let _: serde_json::Value = serde_json::from_str(&out.params).unwrap();
            }
        }
        let d = make(PerturbMode::Delete, |_| {});
        let text = "The committee will decide about the new proposal for the city park next week";
        assert_eq!(run(&d, text, 7), run(&d, text, 7));
    }

    #[test]
    fn swap_keeps_punctuation() {
        let a = make(PerturbMode::Swap, |c| c.n = Some(1));
        let out = run(&a, "one, two; three!", 7).unwrap();
        let d = Doc::new(&out.text);
        assert_eq!(d.word_count(), 3);
        let punct: String = out.text.chars().filter(|c| !c.is_alphanumeric()).collect();
        assert_eq!(punct, ", ; !");
        assert_eq!(out.params, r#"{"mode":"swap","n":1}"#);
        assert!(run(&a, "same same same", 7).is_none());
        assert!(run(&a, "alone", 7).is_none());
        let two = run(&a, "Same same", 7).unwrap();
        assert_eq!(two.text, "same Same");
        for seed in 0..50 {
            let two = make(PerturbMode::Swap, |c| c.n = Some(2));
            assert!(run(&two, "a b", seed).is_some());
        }
        assert_eq!(run(&a, "x y z w", 7), run(&a, "x y z w", 7));
    }
}
