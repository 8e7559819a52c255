//! A deterministic WordPiece vocabulary trainer.
//!
//! `tokenizers`' own `WordPieceTrainer` breaks ties through hash-map order, so two runs on the
//! same texts can give different vocabularies. This one follows the same algorithm (BPE merges
//! over words, continuation pieces prefixed with `##`) with every tie broken by token ids, which
//! are themselves assigned in a deterministic order:
//! 1. words = BERT-normalised, BERT-pre-tokenised pieces of the texts, with counts;
//! 2. vocabulary = specials, then every character (by frequency desc, then character), then
//!    every `##character` seen inside a word (same order);
//! 3. repeatedly merge the most frequent adjacent pair (ties: smallest ids first) into a new
//!    token until the vocabulary has `vocab_size` entries or no pair occurs `min_frequency` times.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};

use tokenizers::normalizers::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::{
    NormalizedString, Normalizer, OffsetReferential, OffsetType, PreTokenizedString, PreTokenizer,
};

use crate::error::{Error, Result};

/// Prefix of continuation pieces.
pub const CONTINUATION: &str = "##";

fn tok_err(e: tokenizers::Error) -> Error {
    Error::runtime("text normalisation failed").with_source(std::io::Error::other(e.to_string()))
}

/// Counts the words of `texts` after BERT normalisation (lowercase, accents stripped, Chinese
/// characters split) and BERT pre-tokenisation (whitespace and punctuation).
pub fn count_words(texts: &[&str]) -> Result<BTreeMap<String, u64>> {
    let normalizer = BertNormalizer::new(true, true, None, true);
    let mut counts = BTreeMap::new();
    for t in texts {
        let mut n = NormalizedString::from(*t);
        normalizer.normalize(&mut n).map_err(tok_err)?;
        let mut p = PreTokenizedString::from(n);
        BertPreTokenizer.pre_tokenize(&mut p).map_err(tok_err)?;
        for (w, _, _) in p.get_splits(OffsetReferential::Original, OffsetType::Byte) {
            *counts.entry(w.to_string()).or_insert(0) += 1;
        }
    }
    Ok(counts)
}

struct Vocab {
    tokens: Vec<String>,
    ids: HashMap<String, u32>,
}

impl Vocab {
    fn add(&mut self, t: String) -> u32 {
        if let Some(&id) = self.ids.get(&t) {
            return id;
        }
        let id = self.tokens.len() as u32;
        self.ids.insert(t.clone(), id);
        self.tokens.push(t);
        id
    }
}

type Pair = (u32, u32);

fn add_pairs(
    word: &[u32],
    idx: usize,
    weight: i64,
    counts: &mut HashMap<Pair, i64>,
    where_: &mut HashMap<Pair, BTreeSet<usize>>,
    changed: &mut BTreeSet<Pair>,
) {
    for w in word.windows(2) {
        let p = (w[0], w[1]);
        *counts.entry(p).or_insert(0) += weight;
        if weight > 0 {
            where_.entry(p).or_default().insert(idx);
        }
        changed.insert(p);
    }
}

/// Trains a WordPiece vocabulary (token → id) from `texts`: `specials` get ids `0..n`, the
/// rest follows the module docs. The result has at most `vocab_size` entries (fewer when the
/// texts run out of pairs), but always contains every special and every character.
pub fn train_vocab(
    texts: &[&str],
    specials: &[&str],
    vocab_size: usize,
    min_frequency: u64,
) -> Result<Vec<String>> {
    let words = count_words(texts)?;
    let mut vocab = Vocab {
        tokens: Vec::new(),
        ids: HashMap::new(),
    };
    for s in specials {
        vocab.add(s.to_string());
    }
    // Alphabet: first characters and continuation characters, by frequency then character.
    let mut first: BTreeMap<char, u64> = BTreeMap::new();
    let mut inner: BTreeMap<char, u64> = BTreeMap::new();
    for (w, &c) in &words {
        for (i, ch) in w.chars().enumerate() {
            let m = if i == 0 { &mut first } else { &mut inner };
            *m.entry(ch).or_insert(0) += c;
        }
    }
    let mut all: BTreeMap<char, u64> = first.clone();
    for (ch, c) in &inner {
        *all.entry(*ch).or_insert(0) += c;
    }
    let by_freq = |m: &BTreeMap<char, u64>| {
        let mut v: Vec<(char, u64)> = m.iter().map(|(a, b)| (*a, *b)).collect();
        v.sort_by_key(|&(ch, c)| (Reverse(c), ch));
        v
    };
    for (ch, _) in by_freq(&all) {
        vocab.add(ch.to_string());
    }
    for (ch, _) in by_freq(&inner) {
        vocab.add(format!("{CONTINUATION}{ch}"));
    }
    // Words as symbol ids.
    let mut syms: Vec<Vec<u32>> = Vec::with_capacity(words.len());
    let mut weights: Vec<i64> = Vec::with_capacity(words.len());
    for (w, &c) in &words {
        let s = w
            .chars()
            .enumerate()
            .map(|(i, ch)| {
                let t = if i == 0 {
                    ch.to_string()
                } else {
                    format!("{CONTINUATION}{ch}")
                };
                vocab.ids[&t]
            })
            .collect();
        syms.push(s);
        weights.push(c as i64);
    }
    let mut counts: HashMap<Pair, i64> = HashMap::new();
    let mut where_: HashMap<Pair, BTreeSet<usize>> = HashMap::new();
    let mut changed = BTreeSet::new();
    for (i, s) in syms.iter().enumerate() {
        add_pairs(s, i, weights[i], &mut counts, &mut where_, &mut changed);
    }
    let mut heap: BinaryHeap<(i64, Reverse<Pair>)> = BinaryHeap::new();
    while vocab.tokens.len() < vocab_size {
        for p in std::mem::take(&mut changed) {
            let c = counts.get(&p).copied().unwrap_or(0);
            if c > 0 {
                heap.push((c, Reverse(p)));
            }
        }
        let Some((c, Reverse(pair))) = heap.pop() else {
            break;
        };
        if counts.get(&pair).copied().unwrap_or(0) != c {
            continue; // stale entry
        }
        if (c as u64) < min_frequency.max(1) {
            break;
        }
        let (a, b) = pair;
        let right = vocab.tokens[b as usize]
            .strip_prefix(CONTINUATION)
            .unwrap_or(&vocab.tokens[b as usize])
            .to_string();
        let new_id = vocab.add(format!("{}{right}", vocab.tokens[a as usize]));
        let idxs: Vec<usize> = where_
            .remove(&pair)
            .unwrap_or_default()
            .into_iter()
            .collect();
        for i in idxs {
            let old = std::mem::take(&mut syms[i]);
            if !old.windows(2).any(|w| (w[0], w[1]) == pair) {
                syms[i] = old;
                continue;
            }
            add_pairs(&old, i, -weights[i], &mut counts, &mut where_, &mut changed);
            let mut new = Vec::with_capacity(old.len());
            let mut k = 0;
            while k < old.len() {
                if k + 1 < old.len() && (old[k], old[k + 1]) == pair {
                    new.push(new_id);
                    k += 2;
                } else {
                    new.push(old[k]);
                    k += 1;
                }
            }
            add_pairs(&new, i, weights[i], &mut counts, &mut where_, &mut changed);
            syms[i] = new;
        }
        counts.remove(&pair);
        changed.remove(&pair);
    }
    Ok(vocab.tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_frequent_pairs_deterministically() {
        let texts = ["low lower lowest", "low low newer newest", "Wider WIDEST"];
        let a = train_vocab(&texts, &["[PAD]", "[UNK]"], 60, 1).unwrap();
        let b = train_vocab(&texts, &["[PAD]", "[UNK]"], 60, 1).unwrap();
        assert_eq!(a, b);
        assert_eq!(&a[..2], &["[PAD]", "[UNK]"]);
        assert!(a.contains(&"low".to_string()), "{a:?}");
        assert!(a.contains(&"##e".to_string()));
        assert!(
            !a[2..].iter().any(|t| t.chars().any(|c| c.is_uppercase())),
            "{a:?}"
        );
        let set: BTreeSet<&String> = a.iter().collect();
        assert_eq!(set.len(), a.len(), "duplicates in {a:?}");
    }

    #[test]
    fn small_sizes_and_empty_input() {
        let v = train_vocab(&["abc abd"], &["[PAD]"], 3, 1).unwrap();
        // Alphabet is always kept even past vocab_size.
        assert!(v.contains(&"a".to_string()) && v.contains(&"##d".to_string()));
        let e = train_vocab(&[], &["[PAD]"], 10, 1).unwrap();
        assert_eq!(e, vec!["[PAD]"]);
        let w = count_words(&["Héllo, WORLD!", ""]).unwrap();
        assert_eq!(w.get("hello"), Some(&1));
        assert_eq!(w.get(","), Some(&1));
    }
}
