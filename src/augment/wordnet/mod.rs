//! A compact synonym table built once from a WordNet 3.0 database.
//!
//! For every lower-case single-token lemma (no spaces; hyphens and apostrophes allowed) the
//! table stores its distinct synonyms: the other lemmas of all its synsets, in WordNet sense
//! order (most frequent sense first, nouns, then verbs, adjectives, adverbs), with `_` written
//! as a space, never the word itself (compared case-insensitively), deduplicated
//! case-insensitively. Adjective markers such as `(a)`, `(p)`, `(ip)` are removed.
//!
//! Storage is a string pool plus `u32` items: each item packs a pool index with the parts of
//! speech it is a synonym under and whether it is a single word. Tables are cached per
//! directory for the whole process ([`SynonymTable::load`]), so stages share one table.
//!
//! Morphology: a word missing from WordNet that looks like a regular noun plural (`cats`,
//! `boxes`, `cities`) or is listed in `noun.exc` (`geese`) is looked up as its singular, and
//! only single-word noun synonyms are offered, re-inflected to the plural (`noun.exc` reversed
//! for irregular plurals, the regular rules otherwise). `verb.exc` and `adj.exc` are not used:
//! replacing `ran` or `better` by a base-form synonym would make the text ungrammatical.

mod build;
mod cache;
mod pos;
mod sentences;
mod table;
mod vocabulary;

use std::path::PathBuf;

pub use pos::{guess_pos, Pos, PosSet};
pub use sentences::example_sentences;
pub use table::{SynonymTable, Synonyms};
pub use vocabulary::PosVocabulary;

/// The hint shown when the WordNet directory is missing or unreadable.
pub const WORDNET_HINT: &str =
    "install it with: apt-get install -y wordnet-base (or set wordnet = \"PATH\")";

/// The default WordNet directory (Debian's `wordnet-base` package).
pub const DEFAULT_WORDNET_DIR: &str = "/usr/share/wordnet";

/// [`DEFAULT_WORDNET_DIR`] as a path: the serde default of every `wordnet` config key.
pub fn default_wordnet_dir() -> PathBuf {
    PathBuf::from(DEFAULT_WORDNET_DIR)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::path::Path;
    use std::sync::Arc;
    use std::time::Instant;
    use table::regular_plural;

    /// The shared test table from the system WordNet.
    pub(crate) fn table() -> Arc<SynonymTable> {
        SynonymTable::load(Path::new(DEFAULT_WORDNET_DIR)).expect("WordNet at /usr/share/wordnet")
    }

    fn syns(t: &SynonymTable, w: &str, pos: Option<Pos>) -> Vec<String> {
        t.synonyms(w, pos).iter().map(str::to_string).collect()
    }

    #[test]
    fn load_time_and_size() {
        let start = Instant::now();
        let t = SynonymTable::load_uncached(Path::new(DEFAULT_WORDNET_DIR)).unwrap();
        eprintln!(
            "WordNet synonym table: {:?} built in {:.2?}, ~{:.1} MiB",
            t,
            start.elapsed(),
            t.heap_bytes() as f64 / (1024.0 * 1024.0)
        );
        assert!(t.word_count() > 50_000);
    }

    #[test]
    fn cached_per_directory() {
        let a = table();
        let b = SynonymTable::load(Path::new("/usr/share/wordnet/")).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
    }

    #[test]
    fn missing_directory_is_user_error() {
        let e = SynonymTable::load(Path::new("/nonexistent/wn")).unwrap_err();
        assert_eq!(e.exit_code(), 1);
        assert!(e.to_string().contains("/nonexistent/wn"), "{e}");
        assert_eq!(e.hint(), Some(WORDNET_HINT));
    }

    #[test]
    fn basic_synonyms() {
        let t = table();
        let car = syns(&t, "car", None);
        assert!(car.iter().any(|s| s == "automobile"), "{car:?}");
        assert!(car.iter().all(|s| !s.eq_ignore_ascii_case("car")));
        assert!(
            car.iter().any(|s| s.contains(' ')),
            "multi-word lemmas use spaces"
        );
        let happy = syns(&t, "happy", Some(Pos::Adj));
        assert!(happy.contains(&"felicitous".to_string()), "{happy:?}");
        // no duplicates, case-insensitively
        let mut lower: Vec<String> = car.iter().map(|s| s.to_lowercase()).collect();
        lower.sort();
        lower.dedup();
        assert_eq!(lower.len(), car.len());
        assert!(t.synonyms("qwertyzzz", None).is_empty());
        assert!(t.synonyms("", None).is_empty());
    }

    #[test]
    fn pos_restriction_and_fallback() {
        let t = table();
        let all = t.synonyms("run", None).len();
        let verb = t.synonyms("run", Some(Pos::Verb)).len();
        let noun = t.synonyms("run", Some(Pos::Noun)).len();
        assert!(verb > 0 && noun > 0 && verb < all && noun < all);
        // "automobile" has no verb sense: fall back to all parts of speech
        assert!(!t.synonyms("car", Some(Pos::Verb)).is_empty());
    }

    #[test]
    fn adjective_markers_removed() {
        let t = table();
        for w in ["abounding", "remote"] {
            for s in t.synonyms(w, None).iter() {
                assert!(!s.contains('('), "{w}: {s}");
            }
        }
    }

    #[test]
    fn plurals() {
        let t = table();
        let houses = t.synonyms_in("houses", PosSet::NOUN.union(PosSet::ADJ));
        assert!(houses.is_plural() || !houses.is_empty());
        let autos = syns(&t, "automobiles", None);
        assert!(autos.contains(&"cars".to_string()), "{autos:?}");
        assert!(autos.iter().all(|s| !s.contains(' ')));
        let geese = syns(&t, "geese", None);
        assert!(!geese.is_empty());
        assert!(geese.iter().all(|s| !s.eq_ignore_ascii_case("geese")));
        assert_eq!(regular_plural("city"), "cities");
        assert_eq!(regular_plural("day"), "days");
        assert_eq!(regular_plural("box"), "boxes");
        assert_eq!(regular_plural("church"), "churches");
        assert_eq!(regular_plural("car"), "cars");
        // never the word itself: "axes" singularizes to "ax", whose synonym "axe" -> "axes"
        assert!(syns(&t, "axes", None).iter().all(|s| s != "axes"));
    }

    #[test]
    fn guesses() {
        assert_eq!(
            guess_pos(Some("the"), "dog"),
            Some(PosSet::NOUN.union(PosSet::ADJ))
        );
        assert_eq!(
            guess_pos(Some("john's"), "dog"),
            Some(PosSet::NOUN.union(PosSet::ADJ))
        );
        assert_eq!(guess_pos(Some("to"), "run"), Some(PosSet::VERB));
        assert_eq!(guess_pos(Some("must"), "go"), Some(PosSet::VERB));
        assert_eq!(guess_pos(None, "quickly"), Some(PosSet::ADV));
        assert_eq!(guess_pos(Some("he"), "runs"), None);
        assert_eq!(guess_pos(None, "fly"), None);
        assert!(PosSet::ALL.contains(Pos::Adv));
        assert!(!PosSet::NOUN.contains(Pos::Verb));
    }

    #[test]
    fn deterministic_order() {
        let a = SynonymTable::load_uncached(Path::new(DEFAULT_WORDNET_DIR)).unwrap();
        let t = table();
        for w in ["run", "good", "car", "quickly", "houses"] {
            assert_eq!(syns(&a, w, None), syns(&t, w, None));
        }
    }

    #[test]
    fn cache_round_trip_and_corruption() {
        let t = table();
        let bytes = t.to_bytes();
        let back = SynonymTable::from_bytes(&bytes).expect("round trip");
        assert_eq!(back.word_count(), t.word_count());
        for w in ["good", "movie", "cats", "run", "quickly", "geese"] {
            assert_eq!(syns(&back, w, None), syns(&t, w, None), "{w}");
        }
        assert_eq!(back.to_bytes(), bytes);
        // Truncated or altered caches are refused, never trusted.
        assert!(SynonymTable::from_bytes(&bytes[..bytes.len() - 1]).is_none());
        assert!(SynonymTable::from_bytes(&bytes[..bytes.len() / 2]).is_none());
        let mut bad = bytes.clone();
        bad[4] ^= 0xff;
        assert!(SynonymTable::from_bytes(&bad).is_none());
    }
}
