//! WordNet's example sentences ("the plane made a smooth landing"): about 48,000 short
//! phrases and sentences of real English that ship with the WordNet database retort already
//! uses for synonyms. Labelled by a teacher, they are a transfer set of genuinely new inputs
//! for labelled-only distillation: they carry thousands of words that 500 training rows never
//! show a student.

use std::collections::HashSet;
use std::path::Path;

use super::WORDNET_HINT;
use crate::error::{Error, Result};

/// Fewest words an example must have to be kept (shorter ones are mostly bare phrases).
pub const MIN_WORDS: usize = 3;

/// Most words an example may have.
pub const MAX_WORDS: usize = 40;

/// Every distinct example sentence of the WordNet database in `dir` with
/// [`MIN_WORDS`]..=[`MAX_WORDS`] words, white space collapsed, sorted (the same list on every
/// machine); of texts that differ only in case, the first in that order.
pub fn example_sentences(dir: &Path) -> Result<Vec<String>> {
    let wn = wordnet_db::WordNet::load(dir).map_err(|e| {
        Error::user(format!(
            "cannot read the WordNet database at `{}`: {e:#}",
            dir.display()
        ))
        .with_hint(WORDNET_HINT)
    })?;
    let mut all = Vec::new();
    for syn in wn.iter_synsets() {
        for example in &syn.gloss.examples {
            let words: Vec<&str> = example.split_whitespace().collect();
            if (MIN_WORDS..=MAX_WORDS).contains(&words.len()) {
                all.push(words.join(" "));
            }
        }
    }
    // The database's synsets come in no fixed order: sort, then keep the first spelling of
    // each case-folded text.
    all.sort_unstable();
    let mut seen = HashSet::new();
    all.retain(|t| seen.insert(t.to_lowercase()));
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::augment::wordnet::DEFAULT_WORDNET_DIR;

    #[test]
    fn examples_are_many_distinct_sentences_in_a_fixed_order() {
        let dir = Path::new(DEFAULT_WORDNET_DIR);
        if !crate::testing::available(crate::testing::Dep::WordNet) {
            return;
        }
        let a = example_sentences(dir).unwrap();
        assert!(a.len() > 30_000, "{} examples", a.len());
        assert!(a.iter().any(|s| s == "the plane made a smooth landing"));
        let lower: HashSet<String> = a.iter().map(|s| s.to_lowercase()).collect();
        assert_eq!(lower.len(), a.len(), "examples are distinct");
        assert!(a.iter().all(
            |s| (MIN_WORDS..=MAX_WORDS).contains(&s.split_whitespace().count()) && !s.contains('"')
        ));
        assert_eq!(a, example_sentences(dir).unwrap());
    }
}
