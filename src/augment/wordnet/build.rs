//! Building a synonym table from a WordNet database.

use std::fmt;
use std::path::Path;

use super::pos::{Pos, PosSet};
use super::table::{
    clean_lemma, eq_ci, pos_bits, regular_plural, KeyMap, SynonymTable, ID_MASK, NO_PLURAL,
    SINGLE_WORD,
};
use super::WORDNET_HINT;
use crate::augment::tokens::push_lower;
use crate::error::{Error, Result};

#[derive(Debug)]
struct Cause(String);

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Cause {}

#[derive(Default)]
struct Pool {
    text: String,
    spans: Vec<(u32, u32)>,
    ids: KeyMap<String, u32>,
}

impl Pool {
    fn intern(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        let id = self.spans.len() as u32;
        let start = self.text.len() as u32;
        self.text.push_str(s);
        self.spans.push((start, self.text.len() as u32));
        self.ids.insert(s.to_string(), id);
        id
    }

    fn get(&self, id: u32) -> &str {
        let (s, e) = self.spans[id as usize];
        &self.text[s as usize..e as usize]
    }
}

impl SynonymTable {
    /// Builds a new table from the WordNet database in `dir`, bypassing the cache.
    pub fn load_uncached(dir: &Path) -> Result<SynonymTable> {
        for name in super::cache::REQUIRED_FILES {
            if !dir.join(name).is_file() {
                return Err(Error::user(format!(
                    "no WordNet database at `{}` (missing `{name}`)",
                    dir.display()
                ))
                .with_hint(WORDNET_HINT));
            }
        }
        let unreadable = |msg: String| {
            Error::user(format!(
                "cannot read the WordNet database at `{}`",
                dir.display()
            ))
            .with_source(Cause(msg))
            .with_hint(WORDNET_HINT)
        };
        let wn = wordnet_db::WordNet::load(dir).map_err(|e| unreadable(format!("{e:#}")))?;
        let noun_exc = std::fs::read_to_string(dir.join("noun.exc")).unwrap_or_default();

        // 1. Synsets as lists of pooled lemmas; the set of lookup keys.
        let mut pool = Pool::default();
        let mut pos_values = [None; 4];
        let mut synsets: KeyMap<(u8, u32), Vec<u32>> = KeyMap::default();
        let mut keys: Vec<String> = Vec::new();
        for syn in wn.iter_synsets() {
            let Some(pos) = Pos::from_wordnet_char(syn.id.pos.to_char()) else {
                continue;
            };
            pos_values[pos.index()] = Some(syn.id.pos);
            let mut ids = Vec::with_capacity(syn.words.len());
            for lemma in &syn.words {
                let clean = clean_lemma(lemma.text);
                if clean.is_empty() {
                    continue;
                }
                if !clean.contains(' ') {
                    let mut key = String::with_capacity(clean.len());
                    push_lower(&mut key, &clean);
                    keys.push(key);
                }
                ids.push(pool.intern(&clean));
            }
            synsets.insert((pos as u8, syn.id.offset), ids);
        }
        keys.sort_unstable();
        keys.dedup();

        // 2. For every key, its synonyms in sense order, deduplicated.
        let mut items: Vec<u32> = Vec::new();
        let mut entries: KeyMap<Box<str>, (u32, u32)> = KeyMap::default();
        entries.reserve(keys.len());
        let mut found: Vec<(u32, u32)> = Vec::new();
        for key in keys {
            found.clear();
            for pos in Pos::ALL {
                let Some(pos_value) = pos_values[pos.index()] else {
                    continue;
                };
                let bit = pos_bits(PosSet::of(pos));
                for sid in wn.synsets_for_lemma(pos_value, &key) {
                    let Some(ids) = synsets.get(&(pos as u8, sid.offset)) else {
                        continue;
                    };
                    for &id in ids {
                        let text = pool.get(id);
                        if eq_ci(text, &key) {
                            continue;
                        }
                        if let Some(e) = found.iter_mut().find(|e| eq_ci(pool.get(e.0), text)) {
                            e.1 |= bit;
                        } else {
                            let single = if text.contains(' ') { 0 } else { SINGLE_WORD };
                            found.push((id, bit | single));
                        }
                    }
                }
            }
            if !found.is_empty() {
                entries.insert(
                    key.into_boxed_str(),
                    (items.len() as u32, found.len() as u32),
                );
                items.extend(found.iter().map(|&(id, bits)| id | bits));
            }
        }

        // 3. Plurals of single-word noun synonyms.
        let mut irregular: KeyMap<&str, &str> = KeyMap::default();
        let mut noun_exc_map: KeyMap<Box<str>, Box<str>> = KeyMap::default();
        for line in noun_exc.lines() {
            let mut parts = line.split_ascii_whitespace();
            let (Some(inflected), Some(base)) = (parts.next(), parts.next()) else {
                continue;
            };
            if inflected.contains('_') || base.contains('_') {
                continue;
            }
            irregular.entry(base).or_insert(inflected);
            noun_exc_map
                .entry(inflected.into())
                .or_insert_with(|| base.into());
        }
        let noun_single = pos_bits(PosSet::NOUN) | SINGLE_WORD;
        let mut plural = vec![NO_PLURAL; pool.spans.len()];
        for &item in &items {
            let id = item & ID_MASK;
            if item & noun_single != noun_single || plural[id as usize] != NO_PLURAL {
                continue;
            }
            let text = pool.get(id);
            let form = match irregular.get(text.to_lowercase().as_str()) {
                Some(p) => (*p).to_string(),
                None => regular_plural(text),
            };
            plural[id as usize] = pool.intern(&form);
        }
        if pool.spans.len() > ID_MASK as usize {
            return Err(Error::runtime(format!(
                "the WordNet database at `{}` has too many distinct lemmas",
                dir.display()
            )));
        }

        let Pool { text, spans, .. } = pool;
        let mut table = SynonymTable {
            pool: text,
            spans,
            plural,
            items,
            entries,
            noun_exc: noun_exc_map,
        };
        table.pool.shrink_to_fit();
        table.items.shrink_to_fit();
        Ok(table)
    }
}
