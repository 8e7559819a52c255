//! Word replacement by part of speech (Tang et al. 2019, "Distilling Task-Specific Knowledge
//! from BERT into Simple Neural Networks", §3.2), with WordNet's everyday vocabulary.
//!
//! Each copy replaces each replaceable word (not a stopword, and in WordNet's sense-tagged
//! vocabulary, names included: see [`PosVocabulary`]) with probability `p`, and at least one, by a random
//! lemma of the part of speech the word is used as most. Unlike synonym replacement the
//! meaning may change: the sentence's frame stays (a question stays a question) and its
//! vocabulary changes, so that a teacher labelling the copies says what each new word does to
//! the label. That is a transfer set for distillation, not label-preserving augmentation: give
//! its copies to a `teacher`, never train on their inherited gold labels.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use rand::Rng;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::stage::kind::{Kind, Needs, Role};

use super::adapter::{augment_keys, build_augment, parse_augment, CopyOptions};
use super::stopwords::is_stopword;
use super::synonym::{case_of, push_cased};
use super::tokens::{Doc, Lowered};
use super::wordnet::{default_wordnet_dir, PosVocabulary};
use super::{Augmentation, Augmenter, RowRng};

/// Default probability of replacing each replaceable word.
pub const DEFAULT_P: f64 = 0.25;

/// Configuration of the `replace` augmenter.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplaceConfig {
    /// Directory of the WordNet 3.0 database (Debian's `/usr/share/wordnet`).
    #[serde(default = "default_wordnet_dir")]
    pub wordnet: PathBuf,
    /// Probability of replacing each replaceable word, in (0, 1]; a copy replaces at least one.
    #[serde(default = "default_p")]
    pub p: f64,
}

fn default_p() -> f64 {
    DEFAULT_P
}

impl Default for ReplaceConfig {
    fn default() -> Self {
        ReplaceConfig {
            wordnet: default_wordnet_dir(),
            p: DEFAULT_P,
        }
    }
}

/// The word-replacement augmenter (`op = "replace"`, params `{"n":K}` with `K` the number of
/// words replaced).
#[derive(Debug, Clone)]
pub struct Replace {
    vocab: Arc<PosVocabulary>,
    p: f64,
}

impl Replace {
    /// Validates `cfg` and loads (or reuses) the vocabulary.
    pub fn new(cfg: &ReplaceConfig) -> Result<Replace> {
        if !(cfg.p > 0.0 && cfg.p <= 1.0) {
            return Err(Error::user(format!(
                "`replace`: `p` must be in (0, 1], not {}",
                cfg.p
            )));
        }
        Ok(Replace {
            vocab: vocabulary(&cfg.wordnet)?,
            p: cfg.p,
        })
    }
}

/// The vocabulary of the WordNet database in `dir`, read once per process.
fn vocabulary(dir: &Path) -> Result<Arc<PosVocabulary>> {
    static CACHE: OnceLock<Mutex<HashMap<PathBuf, Arc<PosVocabulary>>>> = OnceLock::new();
    let key = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let mut cache = CACHE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(v) = cache.get(&key) {
        return Ok(Arc::clone(v));
    }
    let v = Arc::new(PosVocabulary::load(dir)?);
    cache.insert(key, Arc::clone(&v));
    Ok(v)
}

impl Augmenter for Replace {
    fn augment(&self, doc: &Doc<'_>, rng: &mut RowRng) -> Option<Augmentation> {
        let lower = Lowered::new(doc);
        let replaceable: Vec<(usize, &[String])> = (0..doc.word_count())
            .filter(|&i| !is_stopword(lower.get(i)))
            .filter_map(|i| {
                let pos = self.vocab.pos_of(lower.get(i))?;
                Some((i, self.vocab.lemmas(pos)))
            })
            .collect();
        if replaceable.is_empty() {
            return None;
        }
        let mut chosen: Vec<bool> = replaceable
            .iter()
            .map(|_| rng.random_bool(self.p))
            .collect();
        if !chosen.contains(&true) {
            chosen[rng.random_range(0..replaceable.len())] = true;
        }
        let mut new_words: Vec<Option<String>> = vec![None; doc.tokens.len()];
        let mut count = 0;
        for ((word, lemmas), _) in replaceable.iter().zip(&chosen).filter(|(_, c)| **c) {
            let lemma = &lemmas[rng.random_range(0..lemmas.len())];
            let mut cased = String::with_capacity(lemma.len());
            push_cased(&mut cased, lemma, case_of(doc.word(*word)));
            new_words[doc.words[*word]] = Some(cased);
            count += 1;
        }
        let text = doc.rebuild(|t| new_words[t].as_deref());
        (text != doc.text).then(|| Augmentation {
            text,
            op: "replace",
            params: format!("{{\"n\":{count}}}"),
        })
    }

    fn no_copy_reason(&self, doc: &Doc<'_>) -> (&'static str, String) {
        if doc.word_count() == 0 {
            ("no_words", "the text has no words".into())
        } else {
            (
                "no_replaceable_word",
                "every word of the text is a stopword or outside WordNet's vocabulary".into(),
            )
        }
    }
}

/// Stage kind `replace`.
pub static KIND: Kind<(CopyOptions, ReplaceConfig)> = Kind {
    name: "replace",
    role: Role::Transform,
    summary: "Replace words with random WordNet words of the same part of speech \
              (a transfer set for a teacher to label; meaning may change)",
    needs: Needs {
        wordnet: true,
        ..Needs::NOTHING
    },
    example: r#"copies = 10
keep_original = false
p = 0.25"#,
    parse: parse_augment,
    keys: augment_keys::<ReplaceConfig>,
    build: |cfg, cx| {
        build_augment(cfg, cx, |c| {
            Ok(Arc::new(Replace::new(&c)?) as Arc<dyn Augmenter>)
        })
    },
    config: std::marker::PhantomData,
};

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn replace() -> Option<Replace> {
        if !crate::testing::available(crate::testing::Dep::WordNet) {
            return None;
        }
        Some(Replace::new(&ReplaceConfig::default()).unwrap())
    }

    #[test]
    fn the_frame_stays_and_the_content_words_change() {
        let Some(r) = replace() else { return };
        let text = "What is the capital city of Peru ?";
        let mut changed = 0;
        for seed in 0..50 {
            let a = r
                .augment(&Doc::new(text), &mut RowRng::seed_from_u64(seed))
                .unwrap();
            assert_eq!(a.op, "replace");
            let words: Vec<&str> = a.text.split(' ').collect();
            assert_eq!(words.len(), 8, "{}", a.text);
            assert_eq!(&words[..3], ["What", "is", "the"], "stopwords stay");
            assert_eq!((words[5], words[7]), ("of", "?"));
            assert!(
                words[6].starts_with(char::is_uppercase),
                "case follows: {}",
                a.text
            );
            changed += [(3, "capital"), (4, "city"), (6, "Peru")]
                .iter()
                .filter(|(i, w)| words[*i] != *w)
                .count();
        }
        // Each copy replaces each of the three with p = 0.25, and at least one.
        assert!((50..=90).contains(&changed), "{changed} replacements");
    }

    #[test]
    fn capitals_follow_the_replaced_word() {
        let Some(r) = replace() else { return };
        let a = r
            .augment(&Doc::new("Wonderful"), &mut RowRng::seed_from_u64(1))
            .unwrap();
        assert!(a.text.starts_with(char::is_uppercase), "{}", a.text);
        assert!(a.text[1..].chars().all(|c| c.is_ascii_lowercase()));
    }

    #[test]
    fn a_text_without_content_words_has_no_copy_and_says_why() {
        let Some(r) = replace() else { return };
        let doc = Doc::new("of and the , 42");
        assert!(r.augment(&doc, &mut RowRng::seed_from_u64(1)).is_none());
        assert_eq!(r.no_copy_reason(&doc).0, "no_replaceable_word");
    }

    #[test]
    fn p_outside_its_range_is_refused() {
        for p in [0.0, 1.5, f64::NAN] {
            let e = Replace::new(&ReplaceConfig {
                p,
                ..Default::default()
            })
            .unwrap_err();
            assert!(e.to_string().contains("`p` must be in (0, 1]"), "{e}");
        }
    }
}
