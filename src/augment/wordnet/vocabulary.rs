//! WordNet's everyday vocabulary by part of speech: the single-word lemmas that occur in
//! WordNet's sense-tagged corpus (its sense counts, `cntlist.rev`), and the part of speech each
//! is used as most.
//!
//! It serves word replacement in the manner of Tang et al. (2019, "Distilling Task-Specific
//! Knowledge from BERT into Simple Neural Networks"): a word of a sentence is replaced by a
//! random word of the same part of speech, so that the sentence's frame stays and its
//! vocabulary changes. Drawing from WordNet rather than from the training rows brings words
//! the training rows never show.

use std::collections::HashMap;
use std::path::Path;

use super::pos::Pos;
use super::WORDNET_HINT;
use crate::error::{Error, Result};

/// Lemmas by part of speech, and the part of speech of each lemma.
#[derive(Debug)]
pub struct PosVocabulary {
    /// Per part of speech (in [`Pos::ALL`] order), the lemmas used at least once as that part
    /// of speech, sorted.
    lemmas: [Vec<String>; 4],
    /// Every such lemma's most used part of speech (the first in [`Pos::ALL`] order on a tie).
    dominant: HashMap<String, Pos>,
}

impl PosVocabulary {
    /// Reads the vocabulary from `cntlist.rev` of the WordNet database in `dir`. Only lemmas
    /// of ASCII letters are kept (in lower case, as the file writes names too): no phrases,
    /// hyphenated forms or numbers.
    pub fn load(dir: &Path) -> Result<PosVocabulary> {
        let path = dir.join("cntlist.rev");
        let text = fs_err::read_to_string(&path).map_err(|e| {
            Error::user(format!(
                "cannot read WordNet's sense counts `{}`",
                path.display()
            ))
            .with_source(e)
            .with_hint(WORDNET_HINT)
        })?;
        let uses = sense_uses(&text);
        let mut lemmas: [Vec<String>; 4] = Default::default();
        let mut best: HashMap<String, (u64, Pos)> = HashMap::new();
        for ((word, pos), count) in uses {
            lemmas[pos.index()].push(word.clone());
            let entry = best.entry(word).or_insert((count, pos));
            if count > entry.0 || (count == entry.0 && pos.index() < entry.1.index()) {
                *entry = (count, pos);
            }
        }
        for list in &mut lemmas {
            list.sort_unstable();
        }
        if lemmas.iter().any(Vec::is_empty) {
            return Err(Error::user(format!(
                "`{}` lacks the sense counts of a part of speech",
                path.display()
            ))
            .with_hint(WORDNET_HINT));
        }
        let dominant = best.into_iter().map(|(w, (_, pos))| (w, pos)).collect();
        Ok(PosVocabulary { lemmas, dominant })
    }

    /// The part of speech `word` (a lookup form: lower-case) is used as most, when it is in
    /// the vocabulary.
    pub fn pos_of(&self, word: &str) -> Option<Pos> {
        self.dominant.get(word).copied()
    }

    /// The lemmas of `pos`, sorted.
    pub fn lemmas(&self, pos: Pos) -> &[String] {
        &self.lemmas[pos.index()]
    }
}

/// Uses of each (lemma, part of speech) in WordNet's tagged corpus, summed over its senses,
/// from the lines of `cntlist.rev`: `lemma%ss_type:lex_filenum:lex_id:head:head_id
/// sense_number tag_count`, where `ss_type` is 1 (noun), 2 (verb), 3 or 5 (adjective) or 4
/// (adverb). Lines of another shape are skipped.
fn sense_uses(text: &str) -> HashMap<(String, Pos), u64> {
    let mut uses: HashMap<(String, Pos), u64> = HashMap::new();
    for line in text.lines() {
        let mut fields = line.split_ascii_whitespace();
        let (Some(key), Some(_sense), Some(count)) = (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let Some((lemma, rest)) = key.split_once('%') else {
            continue;
        };
        let pos = match rest.as_bytes().first() {
            Some(b'1') => Pos::Noun,
            Some(b'2') => Pos::Verb,
            Some(b'3' | b'5') => Pos::Adj,
            Some(b'4') => Pos::Adv,
            _ => continue,
        };
        let Ok(count) = count.parse::<u64>() else {
            continue;
        };
        if count > 0 && !lemma.is_empty() && lemma.bytes().all(|b| b.is_ascii_lowercase()) {
            *uses.entry((lemma.to_string(), pos)).or_default() += count;
        }
    }
    uses
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::augment::wordnet::DEFAULT_WORDNET_DIR;

    #[test]
    fn sense_counts_are_summed_by_lemma_and_part_of_speech() {
        let text = "run%2:38:00:: 1 30\nrun%2:33:00:: 2 10\nrun%1:04:00:: 1 5\n\
                    good%3:00:01:: 1 100\ngood%5:00:00:satisfactory:00 2 7\n\
                    new_york%1:15:00:: 1 9\nzero%1:23:00:: 3 0\nbroken line\n";
        let uses = sense_uses(text);
        assert_eq!(uses[&("run".to_string(), Pos::Verb)], 40);
        assert_eq!(uses[&("run".to_string(), Pos::Noun)], 5);
        assert_eq!(uses[&("good".to_string(), Pos::Adj)], 107);
        assert_eq!(
            uses.len(),
            3,
            "phrases, unused senses and broken lines are skipped"
        );
    }

    #[test]
    fn everyday_words_have_their_usual_part_of_speech() {
        if !crate::testing::available(crate::testing::Dep::WordNet) {
            return;
        }
        let v = PosVocabulary::load(Path::new(DEFAULT_WORDNET_DIR)).unwrap();
        assert_eq!(v.pos_of("movie"), Some(Pos::Noun));
        assert_eq!(v.pos_of("run"), Some(Pos::Verb));
        assert_eq!(v.pos_of("good"), Some(Pos::Adj));
        assert_eq!(v.pos_of("quickly"), Some(Pos::Adv));
        assert_eq!(v.pos_of("the"), None, "function words are not in WordNet");
        assert_eq!(v.pos_of("new_york"), None, "phrases are not kept");
        for pos in Pos::ALL {
            let list = v.lemmas(pos);
            assert!(list.len() > 500, "{pos:?}: {} lemmas", list.len());
            assert!(list.windows(2).all(|w| w[0] < w[1]), "sorted and distinct");
        }
        assert!(v.lemmas(Pos::Noun).len() > 5_000);
    }
}
