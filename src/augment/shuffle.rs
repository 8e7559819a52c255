//! Sentence shuffling.
//!
//! Sentences are found with Unicode sentence boundaries (UAX #29). The whitespace around
//! each sentence stays where it was: the text's leading and trailing whitespace and the
//! separator between the k-th and (k+1)-th sentence slots are kept, only the sentences move.

use std::sync::Arc;

use rand::Rng;
use schemars::JsonSchema;
use serde::Deserialize;
use unicode_segmentation::UnicodeSegmentation;

use crate::stage::kind::{Kind, Needs, Role};

use super::adapter::{augment_keys, build_augment, parse_augment, CopyOptions};
use super::tokens::Doc;
use super::{Augmentation, Augmenter, RowRng};

/// Configuration of the `shuffle` augmenter (no keys yet).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShuffleConfig {}

/// The sentence-shuffling augmenter (`op = "shuffle"`, params `{"sentences":N}` with `N` the
/// number of sentences). `None` for fewer than two sentences or when all are identical.
#[derive(Debug, Clone, Default)]
pub struct Shuffle;

impl Shuffle {
    /// Makes the augmenter (the config has nothing to validate).
    pub fn new(_cfg: &ShuffleConfig) -> Shuffle {
        Shuffle
    }
}

/// Byte ranges of the sentences of `text`, without surrounding whitespace; whitespace-only
/// pieces are dropped.
fn sentences(text: &str) -> Vec<(usize, usize)> {
    let base = text.as_ptr() as usize;
    text.split_sentence_bounds()
        .filter_map(|piece| {
            let trimmed = piece.trim();
            if trimmed.is_empty() {
                return None;
            }
            let start = trimmed.as_ptr() as usize - base;
            Some((start, start + trimmed.len()))
        })
        .collect()
}

impl Augmenter for Shuffle {
    fn augment(&self, doc: &Doc<'_>, rng: &mut RowRng) -> Option<Augmentation> {
        let text = doc.text;
        let spans = sentences(text);
        let n = spans.len();
        if n < 2 {
            return None;
        }
        let s = |k: usize| &text[spans[k].0..spans[k].1];
        if (1..n).all(|k| s(k) == s(0)) {
            return None;
        }
        let mut perm: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            perm.swap(i, rng.random_range(0..=i));
        }
        if (0..n).all(|k| s(perm[k]) == s(k)) {
            // Unchanged text: swap the first slot with one holding a different sentence.
            if let Some(k) = (1..n).find(|&k| s(perm[k]) != s(perm[0])) {
                perm.swap(0, k);
            }
        }
        let mut out = String::with_capacity(text.len());
        out.push_str(&text[..spans[0].0]);
        for k in 0..n {
            out.push_str(s(perm[k]));
            let sep_end = if k + 1 < n {
                spans[k + 1].0
            } else {
                text.len()
            };
            out.push_str(&text[spans[k].1..sep_end]);
        }
        if out == text {
            return None;
        }
        Some(Augmentation {
            text: out,
            op: "shuffle",
            params: format!("{{\"sentences\":{n}}}"),
        })
    }

    fn no_copy_reason(&self, doc: &Doc<'_>) -> (&'static str, String) {
        match sentences(doc.text).len() {
            0 | 1 => (
                "single_sentence",
                "the text has fewer than two sentences to shuffle".into(),
            ),
            n => (
                "identical_sentences",
                format!("the text's {n} sentences are all the same"),
            ),
        }
    }
}

/// Stage kind `shuffle`.
pub static KIND: Kind<(CopyOptions, ShuffleConfig)> = Kind {
    name: "shuffle",
    role: Role::Transform,
    summary: "Shuffle the sentences of each row (Unicode sentence boundaries, UAX #29)",
    needs: Needs {
        wordnet: false,
        ..Needs::NOTHING
    },
    example: r#"copies = 1
keep_original = true"#,
    parse: parse_augment,
    keys: augment_keys::<ShuffleConfig>,
    build: |cfg, cx| {
        build_augment(cfg, cx, |c| {
            Ok(Arc::new(Shuffle::new(&c)) as Arc<dyn Augmenter>)
        })
    },
    config: std::marker::PhantomData,
};

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn run(text: &str, seed: u64) -> Option<Augmentation> {
        Shuffle.augment(&Doc::new(text), &mut RowRng::seed_from_u64(seed))
    }

    fn sorted_sentences(text: &str) -> Vec<String> {
        let mut v: Vec<String> = sentences(text)
            .iter()
            .map(|&(a, b)| text[a..b].to_string())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn config() {
        assert_eq!(
            toml::from_str::<ShuffleConfig>("").unwrap(),
            ShuffleConfig {}
        );
        assert!(toml::from_str::<ShuffleConfig>("x = 1").is_err());
    }

    #[test]
    fn shuffles_and_keeps_separators() {
        let text = "  First one. Second one!\n\nThird one? ";
        for seed in 0..30 {
            let a = run(text, seed).unwrap();
            assert_ne!(a.text, text);
            assert_eq!(a.params, r#"{"sentences":3}"#);
            assert!(a.text.starts_with("  "));
            assert!(a.text.ends_with(' '));
            assert!(a.text.contains("\n\n"));
            assert_eq!(a.text.len(), text.len());
            assert_eq!(sorted_sentences(&a.text), sorted_sentences(text));
        }
        assert_eq!(run(text, 7), run(text, 7));
    }

    #[test]
    fn two_sentences_always_swap() {
        for seed in 0..20 {
            assert_eq!(run("A b. C d.", seed).unwrap().text, "C d. A b.");
        }
    }

    #[test]
    fn nothing_to_shuffle() {
        for text in [
            "",
            "   ",
            "One sentence only.",
            "word",
            "Same. Same. Same.",
            "?!",
            "😀",
        ] {
            assert!(run(text, 7).is_none(), "{text:?}");
        }
    }

    #[test]
    fn unicode() {
        let text = "東京は日本の首都です。大阪は大きいです。";
        let a = run(text, 7).unwrap();
        assert_eq!(a.text, "大阪は大きいです。東京は日本の首都です。");
        for text in [
            "שלום עולם. מה שלומך?",
            "e\u{301}te\u{301}. Cafe\u{301}!",
            "😀. 🎉!",
        ] {
            if let Some(a) = run(text, 7) {
                assert_ne!(a.text, text);
                assert_eq!(a.text.len(), text.len());
            }
        }
    }
}
