//! Synonym replacement (EDA's "SR", Wei & Zou 2019), written so it does not damage the text.
//!
//! Chooses `n` distinct words (compared by their lower-case form) that are not stopwords and
//! have WordNet synonyms, at random, and replaces *every* occurrence of each with one randomly
//! chosen synonym. Case follows each occurrence (`Title` -> `Title`, `ALLCAPS` -> `ALLCAPS`),
//! punctuation and spacing stay byte for byte, multi-word lemmas are written with spaces.

use std::path::PathBuf;
use std::sync::Arc;

use rand::Rng;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::error::Result;
use crate::stage::kind::{Kind, Needs, Role};

use super::adapter::{augment_keys, build_augment, parse_augment, CopyOptions};
use super::amount::Amount;
use super::stopwords::Stopwords;
use super::tokens::{Doc, Lowered};
use super::wordnet::{default_wordnet_dir, guess_pos, PosSet, SynonymTable};
use super::{Augmentation, Augmenter, RowRng};

/// Configuration of the `synonym` augmenter.
///
/// How many distinct words are replaced in a text of `len` words: `n` if set; otherwise
/// `floor(p · len)` (at least 1 when `p > 0`) if `p` is set; otherwise EDA's
/// `max(1, floor(alpha · len))`. At most one of `n`, `p`, `alpha` may be set.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SynonymConfig {
    /// Directory of the WordNet 3.0 database (Debian's `/usr/share/wordnet`, or an NLTK
    /// `corpora/wordnet` folder).
    #[serde(default = "default_wordnet_dir")]
    pub wordnet: PathBuf,
    /// Fraction of the words to replace, in [0, 1] (at least one word when above 0).
    #[serde(default)]
    pub p: Option<f64>,
    /// Number of distinct words to replace.
    #[serde(default)]
    pub n: Option<usize>,
    /// EDA strength in [0, 1]: replace max(1, floor(alpha · words)) words. Default 0.1 when
    /// neither `n` nor `p` is set.
    #[serde(default)]
    pub alpha: Option<f64>,
    /// Words never replaced (case-insensitive); replaces the built-in English list.
    #[serde(default)]
    pub stopwords: Option<Vec<String>>,
    /// Guess each word's part of speech from the word before it and prefer synonyms of that
    /// part of speech.
    #[serde(default = "default_true")]
    pub use_pos: bool,
}

fn default_true() -> bool {
    true
}

impl Default for SynonymConfig {
    fn default() -> Self {
        SynonymConfig {
            wordnet: default_wordnet_dir(),
            p: None,
            n: None,
            alpha: None,
            stopwords: None,
            use_pos: true,
        }
    }
}

/// The synonym-replacement augmenter (`op = "synonym"`, params `{"n":K}` with `K` the number
/// of distinct words replaced).
#[derive(Debug, Clone)]
pub struct Synonym {
    table: Arc<SynonymTable>,
    stopwords: Stopwords,
    amount: Amount,
    use_pos: bool,
}

/// How a word is capitalized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Case {
    /// Anything whose first character is not upper-case: the replacement is used as is.
    Lower,
    /// First character upper-case (and not all caps).
    Title,
    /// At least two cased characters, all upper-case.
    Upper,
}

/// The capitalization of `word`.
pub(crate) fn case_of(word: &str) -> Case {
    let mut chars = word.chars();
    match chars.next() {
        Some(c) if c.is_uppercase() => {}
        _ => return Case::Lower,
    }
    let mut upper = 1;
    for c in chars {
        if c.is_lowercase() {
            return Case::Title;
        }
        if c.is_uppercase() {
            upper += 1;
        }
    }
    if upper >= 2 {
        Case::Upper
    } else {
        Case::Title
    }
}

/// Appends `text` to `out` with the capitalization `case`.
pub(crate) fn push_cased(out: &mut String, text: &str, case: Case) {
    match case {
        Case::Lower => out.push_str(text),
        Case::Upper => {
            for c in text.chars() {
                out.extend(c.to_uppercase());
            }
        }
        Case::Title => {
            let mut chars = text.chars();
            if let Some(c) = chars.next() {
                out.extend(c.to_uppercase());
                out.push_str(chars.as_str());
            }
        }
    }
}

impl Synonym {
    /// Validates `cfg` and loads (or reuses) the WordNet table.
    pub fn new(cfg: &SynonymConfig) -> Result<Synonym> {
        let amount = Amount::from_keys("synonym", cfg.n, cfg.p, cfg.alpha)?;
        let table = SynonymTable::load(&cfg.wordnet)?;
        Ok(Synonym::with_table(
            table,
            Stopwords::new(cfg.stopwords.as_deref()),
            amount,
            cfg.use_pos,
        ))
    }

    /// Builds the augmenter from already validated parts.
    pub fn with_table(
        table: Arc<SynonymTable>,
        stopwords: Stopwords,
        amount: Amount,
        use_pos: bool,
    ) -> Synonym {
        Synonym {
            table,
            stopwords,
            amount,
            use_pos,
        }
    }
}

/// Whether a word may be replaced at all: it has a letter and no digit.
#[inline]
fn replaceable(word: &str) -> bool {
    !word.bytes().any(|b| b.is_ascii_digit()) && word.chars().any(char::is_alphabetic)
}

impl Augmenter for Synonym {
    fn augment(&self, doc: &Doc<'_>, rng: &mut RowRng) -> Option<Augmentation> {
        let wc = doc.word_count();
        let target = self.amount.target(wc);
        if wc == 0 || target == 0 {
            return None;
        }
        let low = Lowered::new(doc);
        // Group equal lookup forms; the first occurrence of each group decides its POS.
        let mut order: Vec<u32> = (0..wc as u32).collect();
        order.sort_unstable_by(|&a, &b| {
            low.get(a as usize).cmp(low.get(b as usize)).then(a.cmp(&b))
        });
        let mut group = vec![0u32; wc];
        // First occurrence of each group (it decides the part of speech).
        let mut firsts: Vec<u32> = Vec::with_capacity(wc);
        let mut last: Option<&str> = None;
        for &w in &order {
            let lw = low.get(w as usize);
            if last != Some(lw) {
                last = Some(lw);
                firsts.push(w);
            }
            group[w as usize] = firsts.len() as u32 - 1;
        }
        // Visit the groups in random order (lazy Fisher-Yates) and replace the first
        // `target` that have synonyms: a uniform choice among the replaceable words, with
        // lookups only for the words visited.
        let mut visit: Vec<u32> = (0..firsts.len() as u32).collect();
        let mut chosen: Vec<Option<&str>> = vec![None; firsts.len()];
        let mut count = 0usize;
        for i in 0..visit.len() {
            if count == target {
                break;
            }
            let j = rng.random_range(i..visit.len());
            visit.swap(i, j);
            let g = visit[i] as usize;
            let w = firsts[g] as usize;
            let lw = low.get(w);
            if !replaceable(lw) || self.stopwords.contains(lw) {
                continue;
            }
            let set = if self.use_pos {
                let prev = w.checked_sub(1).map(|p| low.get(p));
                guess_pos(prev, lw).unwrap_or(PosSet::ALL)
            } else {
                PosSet::ALL
            };
            let syns = self.table.synonyms_in(lw, set);
            if syns.is_empty() {
                continue;
            }
            if let Some(pick) = syns.get(rng.random_range(0..syns.len())) {
                chosen[g] = Some(pick);
                count += 1;
            }
        }
        if count == 0 {
            return None;
        }
        let mut out = String::with_capacity(doc.text.len() + 32);
        let mut w = 0;
        for tok in &doc.tokens {
            let s = &doc.text[tok.start..tok.end];
            if tok.is_word {
                match chosen[group[w] as usize] {
                    Some(syn) => push_cased(&mut out, syn, case_of(s)),
                    None => out.push_str(s),
                }
                w += 1;
            } else {
                out.push_str(s);
            }
        }
        if out == doc.text {
            return None;
        }
        Some(Augmentation {
            text: out,
            op: "synonym",
            params: format!("{{\"n\":{count}}}"),
        })
    }

    fn no_copy_reason(&self, doc: &Doc<'_>) -> (&'static str, String) {
        if doc.word_count() == 0 {
            ("no_words", "the text has no words".into())
        } else {
            (
                "no_synonym",
                "no word of the text has a WordNet synonym (or none was drawn)".into(),
            )
        }
    }
}

/// Stage kind `synonym`.
pub static KIND: Kind<(CopyOptions, SynonymConfig)> = Kind {
    name: "synonym",
    role: Role::Transform,
    summary: "Replace words with WordNet synonyms (EDA synonym replacement, text kept intact)",
    needs: Needs {
        wordnet: true,
        ..Needs::NOTHING
    },
    example: r#"alpha = 0.1
copies = 4
keep_original = true
wordnet = "/usr/share/wordnet""#,
    parse: parse_augment,
    keys: augment_keys::<SynonymConfig>,
    build: |cfg, cx| {
        build_augment(cfg, cx, |c| {
            Ok(Arc::new(Synonym::new(&c)?) as Arc<dyn Augmenter>)
        })
    },
    config: std::marker::PhantomData,
};

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn aug(cfg: SynonymConfig) -> Synonym {
        Synonym::new(&cfg).unwrap()
    }

    fn run(s: &Synonym, text: &str, seed: u64) -> Option<Augmentation> {
        s.augment(&Doc::new(text), &mut RowRng::seed_from_u64(seed))
    }

    #[test]
    fn config_from_toml() {
        let cfg: SynonymConfig = toml::from_str("n = 2\nuse_pos = false").unwrap();
        assert_eq!(cfg.n, Some(2));
        assert!(!cfg.use_pos);
        assert_eq!(cfg.wordnet, PathBuf::from("/usr/share/wordnet"));
        assert!(toml::from_str::<SynonymConfig>("bogus = 1").is_err());
        let e = Synonym::new(&SynonymConfig {
            n: Some(1),
            p: Some(0.5),
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.to_string().contains("`n` and `p`"));
        let e = Synonym::new(&SynonymConfig {
            p: Some(2.0),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(e.exit_code(), 1);
        let e = Synonym::new(&SynonymConfig {
            wordnet: "/no/such/dir".into(),
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.to_string().contains("/no/such/dir"));
        let schema = schemars::schema_for!(SynonymConfig);
        let json = serde_json::to_string(&schema).unwrap();
        assert!(json.contains("use_pos"));
    }

    #[test]
    fn replaces_and_keeps_layout() {
        let s = aug(SynonymConfig {
            n: Some(1),
            ..Default::default()
        });
        let text = "The quick brown fox jumps over the lazy dog.";
        let a = run(&s, text, 7).unwrap();
        assert_eq!(a.op, "synonym");
        assert_eq!(a.params, r#"{"n":1}"#);
        assert_ne!(a.text, text);
        assert!(a.text.starts_with("The ") || a.text.starts_with("THE "));
        assert!(a.text.ends_with('.'));
        // exactly one word group differs
        let orig = Doc::new(text);
        let new = Doc::new(&a.text);
        assert!(new.word_count() >= orig.word_count());
        let _: serde_json::Value = serde_json::from_str(&a.params).unwrap();
    }

    #[test]
    fn every_occurrence_same_synonym_and_case() {
        let s = aug(SynonymConfig {
            n: Some(1),
            stopwords: Some(vec![]),
            ..Default::default()
        });
        for seed in 0..20 {
            let a = run(&s, "Car car CAR", seed).unwrap();
            assert!(a.text.len() > 8, "{}", a.text);
            // first letter upper-case in the first copy, all caps in the last
            let low = a.text.to_lowercase();
            let d = Doc::new(&low);
            let third = d.word_count() / 3;
            assert_eq!(d.word_count() % 3, 0, "{}", a.text);
            for k in 0..third {
                assert_eq!(d.word(k), d.word(k + third));
                assert_eq!(d.word(k), d.word(k + 2 * third));
            }
            assert!(a.text.chars().next().unwrap().is_uppercase(), "{}", a.text);
            let last = a.text.rsplit(' ').next().unwrap();
            assert_eq!(last, last.to_uppercase(), "{}", a.text);
        }
    }

    #[test]
    fn p_zero_and_one() {
        let zero = aug(SynonymConfig {
            p: Some(0.0),
            ..Default::default()
        });
        assert!(run(&zero, "The happy dog runs home", 7).is_none());
        let one = aug(SynonymConfig {
            p: Some(1.0),
            ..Default::default()
        });
        let a = run(&one, "happy dog love food", 7).unwrap();
        assert_eq!(a.params, r#"{"n":4}"#);
    }

    #[test]
    fn nothing_to_replace() {
        let s = aug(SynonymConfig::default());
        for text in [
            "",
            "   ",
            "the of and",
            "?!...",
            "東京は日本の首都です。",
            "xqzv blorpt",
            "123 456",
            "😀 🎉",
        ] {
            assert!(run(&s, text, 7).is_none(), "{text}");
        }
    }

    #[test]
    fn unicode_and_single_word() {
        let s = aug(SynonymConfig::default());
        let a = run(&s, "happy", 7).unwrap();
        assert_ne!(a.text, "happy");
        for text in [
            "Café 😀 happy — «dog» שלום",
            "e\u{301}te\u{301} happy",
            "مرحبا happy",
            "Happy!",
        ] {
            let a = run(&s, text, 7).unwrap();
            assert_ne!(a.text, text);
        }
        let a = run(&s, "Happy!", 3).unwrap();
        assert!(a.text.ends_with('!'));
        assert!(a.text.starts_with(|c: char| c.is_uppercase()));
    }

    #[test]
    fn deterministic() {
        let s = aug(SynonymConfig::default());
        let text = "The committee will decide about the new proposal for the city park next week.";
        let a = run(&s, text, 7);
        let b = run(&s, text, 7);
        assert_eq!(a, b);
        let outputs: std::collections::HashSet<String> = (0..20)
            .filter_map(|seed| run(&s, text, seed))
            .map(|a| a.text)
            .collect();
        assert!(outputs.len() > 5);
        assert!(!outputs.contains(text));
    }

    #[test]
    fn case_helpers() {
        assert_eq!(case_of("dog"), Case::Lower);
        assert_eq!(case_of("Dog"), Case::Title);
        assert_eq!(case_of("DOG"), Case::Upper);
        assert_eq!(case_of("A"), Case::Title);
        assert_eq!(case_of("iPhone"), Case::Lower);
        assert_eq!(case_of("東京"), Case::Lower);
        assert_eq!(case_of(""), Case::Lower);
        let mut s = String::new();
        push_cased(&mut s, "big cat", Case::Title);
        push_cased(&mut s, " x", Case::Upper);
        push_cased(&mut s, "", Case::Title);
        assert_eq!(s, "Big cat X");
    }
}
