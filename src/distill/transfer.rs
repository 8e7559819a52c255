//! Transfer sets built without any data beyond the labelled rows: inputs a teacher labels so
//! that a student sees what the teacher knows about words its training rows never show.
//!
//! - The WordNet transfer set is a seeded sample of WordNet's example sentences
//!   ([`crate::augment::wordnet::example_sentences`]). It is domain-free English, not
//!   in-domain text: what it carries is vocabulary (tens of thousands of words in context),
//!   which a student trained from scratch on a few hundred rows lacks most.
//! - The replacement transfer set ([`replacement_copies`]) keeps the training rows' frames (a
//!   question stays a question) and swaps some of their words for random WordNet words of the
//!   same part of speech, as Tang et al. (2019) manufacture transfer sets to distil BERT into
//!   small students: the teacher then says what each new word does to the label.

use std::collections::HashSet;
use std::path::Path;

use rand::SeedableRng;

use crate::augment::replace::Replace;
use crate::augment::tokens::Doc;
use crate::augment::wordnet::example_sentences;
use crate::augment::{Augmenter, RowRng};
use crate::distill::dev_split::normalized;
use crate::distill::rows_file::{write_rows, Row};
use crate::error::Result;

/// Default number of WordNet sentences in the `distill-wordnet` transfer set: about as many as
/// the in-domain pools of docs/RESULTS.md (3,600 to 6,900 rows), fixed before any measurement.
pub const DEFAULT_WORDNET_SENTENCES: usize = 6000;

/// `n` WordNet example sentences from `wordnet_dir`, chosen by a seeded hash of their text
/// (the same sample on every machine), none equal to a text of `exclude` (compared
/// [`normalized`]); fewer when WordNet has fewer.
pub fn wordnet_sample(
    wordnet_dir: &Path,
    n: usize,
    seed: u64,
    exclude: &HashSet<String>,
) -> Result<Vec<String>> {
    let mut keyed: Vec<(u64, String)> = example_sentences(wordnet_dir)?
        .into_iter()
        .filter(|s| !exclude.contains(&normalized(s)))
        .map(|s| (xxhash_rust::xxh3::xxh3_64_with_seed(s.as_bytes(), seed), s))
        .collect();
    keyed.sort_unstable();
    keyed.truncate(n);
    Ok(keyed.into_iter().map(|(_, s)| s).collect())
}

/// Default copies per training row in the replacement transfer set (Tang et al. 2019 make up
/// to 20; fixed before any measurement).
pub const DEFAULT_REPLACEMENT_COPIES: u32 = 10;

/// Up to `copies` distinct new texts per text of `texts`, each made by `replace` (see
/// [`crate::augment::replace`]) with a seed drawn from `seed`, the text and the copy index, so
/// the result does not depend on the order of `texts`. Texts without a replaceable word give
/// none, and no result is a text of `texts` or of `exclude` (compared [`normalized`]).
pub fn replacement_copies(
    texts: &[&str],
    replace: &Replace,
    copies: u32,
    seed: u64,
    exclude: &HashSet<String>,
) -> Vec<String> {
    let originals: HashSet<String> = texts.iter().map(|t| normalized(t)).collect();
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for text in texts {
        let doc = Doc::new(text);
        let row_seed = crate::seed::row_seed(seed, text);
        for copy in 0..copies {
            let mut rng = RowRng::seed_from_u64(crate::seed::copy_seed(row_seed, copy));
            let Some(a) = replace.augment(&doc, &mut rng) else {
                continue;
            };
            let key = normalized(&a.text);
            if !originals.contains(&key) && !exclude.contains(&key) && seen.insert(key) {
                out.push(a.text);
            }
        }
    }
    out
}

/// The two kinds of new inputs: `sentences` WordNet example sentences and `copies` replaced
/// copies of each of `texts` (the training rows, never the dev rows), none a text of `exclude`;
/// a count of 0 gives none of that kind.
pub fn new_inputs(
    texts: &[&str],
    sentences: usize,
    copies: u32,
    seed: u64,
    exclude: &HashSet<String>,
) -> Result<(Vec<String>, Vec<String>)> {
    let wordnet = match sentences {
        0 => Vec::new(),
        n => wordnet_sample(
            &crate::augment::wordnet::default_wordnet_dir(),
            n,
            seed,
            exclude,
        )?,
    };
    let replaced = match copies {
        0 => Vec::new(),
        copies => {
            let replace = Replace::new(&Default::default())?;
            replacement_copies(texts, &replace, copies, seed, exclude)
        }
    };
    Ok((wordnet, replaced))
}

/// Writes `texts` as a Parquet file with columns `id` (`wordnet-<i>`) and `text` at `path`
/// (see [`write_rows`]: rewritten only when its rows change).
pub fn write_text_pool(path: &Path, texts: &[String]) -> Result<()> {
    let rows: Vec<Row> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| (format!("wordnet-{i}"), t.clone(), None))
        .collect();
    write_rows(path, &rows, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::augment::wordnet::DEFAULT_WORDNET_DIR;
    use crate::testing::{available, Dep};

    #[test]
    fn the_sample_is_seeded_and_never_holds_an_excluded_text() {
        if !available(Dep::WordNet) {
            return;
        }
        let dir = Path::new(DEFAULT_WORDNET_DIR);
        let a = wordnet_sample(dir, 500, 7, &HashSet::new()).unwrap();
        assert_eq!(a.len(), 500);
        assert_eq!(a, wordnet_sample(dir, 500, 7, &HashSet::new()).unwrap());
        let b = wordnet_sample(dir, 500, 8, &HashSet::new()).unwrap();
        assert!(
            a.iter().filter(|s| b.contains(s)).count() < 100,
            "another seed, another sample"
        );
        let exclude: HashSet<String> = a[..10].iter().map(|s| normalized(s)).collect();
        let c = wordnet_sample(dir, 500, 7, &exclude).unwrap();
        assert!(c.iter().all(|s| !exclude.contains(&normalized(s))));
        assert_eq!(&c[..490], &a[10..]);
    }

    #[test]
    fn replacement_copies_are_distinct_new_texts_seeded_per_text() {
        if !available(Dep::WordNet) {
            return;
        }
        let replace = Replace::new(&Default::default()).unwrap();
        let texts = [
            "what is the capital city of peru",
            "the movie was wonderful",
            "of and the",
        ];
        let a = replacement_copies(&texts, &replace, 10, 3, &HashSet::new());
        assert!(a.len() >= 15, "{a:?}");
        assert!(
            a.iter().all(|c| !c.starts_with("of and")),
            "no replaceable word: no copy"
        );
        assert!(a.iter().all(|c| !texts.contains(&c.as_str())));
        let unique: HashSet<&String> = a.iter().collect();
        assert_eq!(unique.len(), a.len(), "copies are distinct");
        // Seeded per text: the same copies in any order, other copies with another seed.
        let reversed = [texts[2], texts[1], texts[0]];
        let b: HashSet<String> = replacement_copies(&reversed, &replace, 10, 3, &HashSet::new())
            .into_iter()
            .collect();
        assert_eq!(b, a.iter().cloned().collect());
        assert_ne!(
            a,
            replacement_copies(&texts, &replace, 10, 4, &HashSet::new())
        );
        let exclude: HashSet<String> = a[..3].iter().map(|s| normalized(s)).collect();
        let d = replacement_copies(&texts, &replace, 10, 3, &exclude);
        assert_eq!(d, a[3..]);
    }
}
