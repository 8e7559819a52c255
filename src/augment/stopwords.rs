//! English stopwords: the built-in list and user-provided lists.
//!
//! Lookups take the *lookup form* of a word (see [`super::tokens::push_lower`]): lower-case,
//! with `’` written as `'`.

/// The built-in English stopword list: common function words (articles, pronouns,
/// prepositions, conjunctions, auxiliary and modal verbs, their contractions). Sorted by bytes
/// so it can be binary-searched.
pub const BUILTIN: &[&str] = &[
    "a",
    "about",
    "above",
    "after",
    "again",
    "against",
    "all",
    "also",
    "am",
    "an",
    "and",
    "any",
    "are",
    "aren't",
    "as",
    "at",
    "be",
    "because",
    "been",
    "before",
    "being",
    "below",
    "between",
    "both",
    "but",
    "by",
    "can",
    "can't",
    "cannot",
    "could",
    "couldn't",
    "did",
    "didn't",
    "do",
    "does",
    "doesn't",
    "doing",
    "don't",
    "down",
    "during",
    "each",
    "either",
    "else",
    "ever",
    "every",
    "few",
    "for",
    "from",
    "further",
    "had",
    "hadn't",
    "has",
    "hasn't",
    "have",
    "haven't",
    "having",
    "he",
    "he'll",
    "he's",
    "her",
    "here",
    "hers",
    "herself",
    "him",
    "himself",
    "his",
    "how",
    "however",
    "i",
    "i'll",
    "i'm",
    "i've",
    "if",
    "in",
    "into",
    "is",
    "isn't",
    "it",
    "it's",
    "its",
    "itself",
    "just",
    "may",
    "me",
    "might",
    "more",
    "most",
    "much",
    "must",
    "my",
    "myself",
    "neither",
    "no",
    "nor",
    "not",
    "now",
    "of",
    "off",
    "on",
    "once",
    "only",
    "or",
    "other",
    "ought",
    "our",
    "ours",
    "ourselves",
    "out",
    "over",
    "own",
    "same",
    "shall",
    "she",
    "she'll",
    "she's",
    "should",
    "shouldn't",
    "so",
    "some",
    "such",
    "than",
    "that",
    "that's",
    "the",
    "their",
    "theirs",
    "them",
    "themselves",
    "then",
    "there",
    "there's",
    "these",
    "they",
    "they'll",
    "they're",
    "they've",
    "this",
    "those",
    "though",
    "through",
    "thus",
    "to",
    "too",
    "under",
    "until",
    "up",
    "upon",
    "us",
    "very",
    "was",
    "wasn't",
    "we",
    "we'll",
    "we're",
    "we've",
    "were",
    "weren't",
    "what",
    "when",
    "where",
    "whether",
    "which",
    "while",
    "who",
    "whom",
    "whose",
    "why",
    "will",
    "with",
    "within",
    "without",
    "won't",
    "would",
    "wouldn't",
    "yet",
    "you",
    "you'll",
    "you're",
    "you've",
    "your",
    "yours",
    "yourself",
    "yourselves",
];

/// Whether `lowercase_word` is in the built-in list (binary search, no allocation).
#[inline]
pub fn is_stopword(lowercase_word: &str) -> bool {
    BUILTIN.binary_search(&lowercase_word).is_ok()
}

/// A stopword list: the built-in one or one given by the user.
#[derive(Debug, Clone, Default)]
pub enum Stopwords {
    /// The built-in English list, [`BUILTIN`].
    #[default]
    Builtin,
    /// A user list, stored lower-cased, sorted and deduplicated.
    Custom(Box<[Box<str>]>),
}

impl Stopwords {
    /// The built-in list when `words` is `None`, otherwise exactly the given words
    /// (lower-cased; an empty list means "no stopwords").
    pub fn new(words: Option<&[String]>) -> Self {
        match words {
            None => Stopwords::Builtin,
            Some(words) => {
                let mut list: Vec<Box<str>> = words
                    .iter()
                    .map(|w| {
                        let mut s = String::with_capacity(w.len());
                        super::tokens::push_lower(&mut s, w.trim());
                        s.into_boxed_str()
                    })
                    .filter(|w| !w.is_empty())
                    .collect();
                list.sort_unstable();
                list.dedup();
                Stopwords::Custom(list.into_boxed_slice())
            }
        }
    }

    /// Whether `lowercase_word` (a lookup form) is a stopword.
    #[inline]
    pub fn contains(&self, lowercase_word: &str) -> bool {
        match self {
            Stopwords::Builtin => is_stopword(lowercase_word),
            Stopwords::Custom(list) => list
                .binary_search_by(|w| w.as_ref().cmp(lowercase_word))
                .is_ok(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_is_sorted_unique_and_lowercase() {
        assert!(BUILTIN.windows(2).all(|w| w[0] < w[1]));
        assert!((150..=190).contains(&BUILTIN.len()));
        assert!(BUILTIN.iter().all(|w| w.to_lowercase() == *w));
    }

    #[test]
    fn lookups() {
        for w in ["the", "a", "don't", "yourselves", "you've", "and"] {
            assert!(is_stopword(w), "{w}");
        }
        for w in ["cat", "The", "", "quick", "東京"] {
            assert!(!is_stopword(w), "{w}");
        }
    }

    #[test]
    fn custom_list_replaces_builtin() {
        let s = Stopwords::new(Some(&["Cat".to_string(), " dog ".into(), "".into()]));
        assert!(s.contains("cat"));
        assert!(s.contains("dog"));
        assert!(!s.contains("the"));
        assert!(!s.contains(""));
        let none = Stopwords::new(Some(&[]));
        assert!(!none.contains("the"));
        assert!(Stopwords::new(None).contains("the"));
        assert!(Stopwords::default().contains("the"));
    }
}
