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

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use crate::error::{Error, Result};

use super::tokens::push_lower;

/// The hint shown when the WordNet directory is missing or unreadable.
pub const WORDNET_HINT: &str =
    "install it with: apt-get install -y wordnet-base (or set wordnet = \"PATH\")";

/// The default WordNet directory (Debian's `wordnet-base` package).
pub const DEFAULT_WORDNET_DIR: &str = "/usr/share/wordnet";

/// [`DEFAULT_WORDNET_DIR`] as a path: the serde default of every `wordnet` config key.
pub fn default_wordnet_dir() -> PathBuf {
    PathBuf::from(DEFAULT_WORDNET_DIR)
}

/// A part of speech, as in WordNet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pos {
    /// Noun.
    Noun,
    /// Verb.
    Verb,
    /// Adjective (including satellite adjectives).
    Adj,
    /// Adverb.
    Adv,
}

impl Pos {
    /// All four parts of speech, in table order.
    pub const ALL: [Pos; 4] = [Pos::Noun, Pos::Verb, Pos::Adj, Pos::Adv];

    fn index(self) -> usize {
        self as usize
    }

    fn from_wordnet_char(c: char) -> Option<Pos> {
        match c {
            'n' => Some(Pos::Noun),
            'v' => Some(Pos::Verb),
            'a' | 's' => Some(Pos::Adj),
            'r' => Some(Pos::Adv),
            _ => None,
        }
    }
}

/// A set of parts of speech.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PosSet(u8);

impl PosSet {
    /// Nouns only.
    pub const NOUN: PosSet = PosSet(1);
    /// Verbs only.
    pub const VERB: PosSet = PosSet(2);
    /// Adjectives only.
    pub const ADJ: PosSet = PosSet(4);
    /// Adverbs only.
    pub const ADV: PosSet = PosSet(8);
    /// Every part of speech.
    pub const ALL: PosSet = PosSet(15);

    /// The set holding only `pos`.
    pub const fn of(pos: Pos) -> PosSet {
        PosSet(1 << pos as u8)
    }

    /// The union of two sets.
    pub const fn union(self, other: PosSet) -> PosSet {
        PosSet(self.0 | other.0)
    }

    /// Whether `pos` is in the set.
    pub const fn contains(self, pos: Pos) -> bool {
        self.0 & (1 << pos as u8) != 0
    }
}

impl From<Pos> for PosSet {
    fn from(pos: Pos) -> Self {
        PosSet::of(pos)
    }
}

/// Guesses the part of speech of `word` from the word before it. Both must be lookup forms
/// (lower-case). Returns `None` when there is no clue (meaning: any part of speech).
///
/// * after a determiner, possessive or quantifier (`the`, `my`, `some`, ...): noun or adjective;
/// * a word ending in `-ly`: adverb;
/// * after `to`, a modal or `do`: verb.
///
/// A guess only narrows the choice: [`SynonymTable::synonyms_in`] falls back to every part of
/// speech when the guessed ones have no synonyms.
pub fn guess_pos(prev_word: Option<&str>, word: &str) -> Option<PosSet> {
    let prev = prev_word.unwrap_or("");
    if matches!(
        prev,
        "the"
            | "a"
            | "an"
            | "this"
            | "that"
            | "these"
            | "those"
            | "my"
            | "your"
            | "his"
            | "her"
            | "its"
            | "our"
            | "their"
            | "some"
            | "any"
            | "every"
            | "each"
            | "no"
            | "many"
            | "few"
            | "several"
            | "both"
            | "another"
            | "such"
            | "much"
            | "whose"
    ) || prev.ends_with("'s")
    {
        return Some(PosSet::NOUN.union(PosSet::ADJ));
    }
    if word.len() > 4 && word.ends_with("ly") {
        return Some(PosSet::ADV);
    }
    if matches!(
        prev,
        "to" | "can"
            | "could"
            | "will"
            | "would"
            | "shall"
            | "should"
            | "may"
            | "might"
            | "must"
            | "cannot"
            | "can't"
            | "won't"
            | "wouldn't"
            | "shouldn't"
            | "couldn't"
            | "do"
            | "does"
            | "did"
            | "don't"
            | "doesn't"
            | "didn't"
    ) {
        return Some(PosSet::VERB);
    }
    None
}

/// A small, fast non-cryptographic hasher for the table's string keys.
#[derive(Default, Clone, Copy)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut h = self.0;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            h = (h.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            h = (h.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
        self.0 = h;
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0 ^ (self.0 >> 29)
    }
}

type KeyMap<K, V> = HashMap<K, V, BuildHasherDefault<KeyHasher>>;

const ID_BITS: u32 = 27;
const ID_MASK: u32 = (1 << ID_BITS) - 1;
const SINGLE_WORD: u32 = 1 << 31;
const NO_PLURAL: u32 = u32::MAX;

#[inline]
fn pos_bits(set: PosSet) -> u32 {
    u32::from(set.0) << ID_BITS
}

/// Synonyms of every WordNet lemma. Build it with [`SynonymTable::load`].
pub struct SynonymTable {
    pool: String,
    spans: Vec<(u32, u32)>,
    /// Pool index of the plural of a single-word noun synonym, or `NO_PLURAL`.
    plural: Vec<u32>,
    items: Vec<u32>,
    entries: KeyMap<Box<str>, (u32, u32)>,
    /// Irregular plural -> singular, from `noun.exc`.
    noun_exc: KeyMap<Box<str>, Box<str>>,
}

impl fmt::Debug for SynonymTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SynonymTable")
            .field("words", &self.entries.len())
            .field("strings", &self.spans.len())
            .field("items", &self.items.len())
            .finish()
    }
}

/// The synonyms found for one word: a view into the table, cheap to make and to copy.
#[derive(Debug, Clone, Copy)]
pub struct Synonyms<'a> {
    table: Option<&'a SynonymTable>,
    items: &'a [u32],
    mask: u32,
    plural: bool,
    word: &'a str,
    len: usize,
}

impl<'a> Synonyms<'a> {
    const EMPTY: Synonyms<'static> = Synonyms {
        table: None,
        items: &[],
        mask: 0,
        plural: false,
        word: "",
        len: 0,
    };

    fn new(
        table: &'a SynonymTable,
        items: &'a [u32],
        set: PosSet,
        plural: bool,
        word: &'a str,
    ) -> Self {
        let mut s = Synonyms {
            table: Some(table),
            items,
            mask: pos_bits(set),
            plural,
            word,
            len: 0,
        };
        s.len = if set == PosSet::ALL && !plural {
            items.len()
        } else {
            items.iter().filter(|&&it| s.matches(it)).count()
        };
        s
    }

    #[inline]
    fn matches(&self, item: u32) -> bool {
        if item & self.mask == 0 {
            return false;
        }
        if !self.plural {
            return true;
        }
        item & SINGLE_WORD != 0 && self.text(item).is_some_and(|t| !eq_ci(t, self.word))
    }

    #[inline]
    fn text(&self, item: u32) -> Option<&'a str> {
        let table = self.table?;
        let id = item & ID_MASK;
        if self.plural {
            let p = *table.plural.get(id as usize)?;
            (p != NO_PLURAL).then(|| table.string(p))
        } else {
            Some(table.string(id))
        }
    }

    /// Number of synonyms.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are none.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether these are plural forms made from the singular's synonyms.
    pub fn is_plural(&self) -> bool {
        self.plural
    }

    /// The `i`-th synonym, or `None` when `i >= len()`.
    pub fn get(&self, i: usize) -> Option<&'a str> {
        if self.len == self.items.len() && !self.plural {
            return self.items.get(i).and_then(|&it| self.text(it));
        }
        self.iter().nth(i)
    }

    /// All synonyms, in table order.
    pub fn iter(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.items
            .iter()
            .filter(|&&it| self.matches(it))
            .filter_map(|&it| self.text(it))
    }
}

/// Case-insensitive equality (simple lower-casing, enough for WordNet lemmas).
fn eq_ci(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        a.eq_ignore_ascii_case(b)
    } else {
        a.chars()
            .flat_map(char::to_lowercase)
            .eq(b.chars().flat_map(char::to_lowercase))
    }
}

/// Removes an adjective marker like `(a)`, `(p)`, `(ip)` and writes `_` as a space.
fn clean_lemma(raw: &str) -> String {
    let base = match raw.find('(') {
        Some(i) if i > 0 && raw.ends_with(')') => &raw[..i],
        _ => raw,
    };
    base.replace('_', " ")
}

/// The regular English plural of a noun.
fn regular_plural(s: &str) -> String {
    let lower = s.to_ascii_lowercase();
    if ["s", "x", "z", "ch", "sh"]
        .iter()
        .any(|e| lower.ends_with(e))
    {
        format!("{s}es")
    } else if lower.len() > 1
        && lower.ends_with('y')
        && !matches!(
            lower.as_bytes()[lower.len() - 2],
            b'a' | b'e' | b'i' | b'o' | b'u'
        )
    {
        format!("{}ies", &s[..s.len() - 1])
    } else {
        format!("{s}s")
    }
}

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
    /// Loads (once per directory, for the whole process) the table of the WordNet database in
    /// `dir`: Debian's `/usr/share/wordnet` or an NLTK `corpora/wordnet` folder (both hold
    /// `data.noun`, `index.noun`, ...). A missing or unreadable database is a user error that
    /// names the path.
    pub fn load(dir: &Path) -> Result<Arc<SynonymTable>> {
        static CACHE: OnceLock<Mutex<HashMap<PathBuf, Arc<SynonymTable>>>> = OnceLock::new();
        let key = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
        let mut cache = CACHE
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(table) = cache.get(&key) {
            return Ok(Arc::clone(table));
        }
        let file = super::wordnet_cache::cache_file(dir);
        let cached = file
            .as_deref()
            .and_then(super::wordnet_cache::read)
            .and_then(|b| Self::from_bytes(&b));
        let table = match cached {
            Some(t) => Arc::new(t),
            None => {
                let t = Self::load_uncached(dir)?;
                if let Some(f) = &file {
                    super::wordnet_cache::write(f, &t.to_bytes());
                }
                Arc::new(t)
            }
        };
        cache.insert(key, Arc::clone(&table));
        Ok(table)
    }

    /// Serialises the table for the on-disk cache (deterministic: entries sorted by key).
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        use super::wordnet_cache::{Writer, FORMAT_VERSION};
        let mut w = Writer::default();
        w.0.extend_from_slice(b"RTWN");
        w.u32(FORMAT_VERSION);
        w.bytes(self.pool.as_bytes());
        let flat: Vec<u32> = self.spans.iter().flat_map(|&(a, b)| [a, b]).collect();
        w.u32s(&flat);
        w.u32s(&self.plural);
        w.u32s(&self.items);
        let mut entries: Vec<_> = self.entries.iter().collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
        w.u32(entries.len() as u32);
        for (k, &(start, len)) in entries {
            w.bytes(k.as_bytes());
            w.u32(start);
            w.u32(len);
        }
        let mut exc: Vec<_> = self.noun_exc.iter().collect();
        exc.sort_unstable();
        w.u32(exc.len() as u32);
        for (k, v) in exc {
            w.bytes(k.as_bytes());
            w.bytes(v.as_bytes());
        }
        w.0
    }

    /// Reads a table written by [`SynonymTable::to_bytes`]; `None` if anything is off.
    pub(crate) fn from_bytes(bytes: &[u8]) -> Option<SynonymTable> {
        use super::wordnet_cache::{Reader, FORMAT_VERSION};
        let mut r = Reader(bytes.strip_prefix(b"RTWN")?);
        if r.u32()? != FORMAT_VERSION {
            return None;
        }
        let pool = r.str()?.to_string();
        let flat = r.u32s()?;
        if flat.len() % 2 != 0 {
            return None;
        }
        let spans: Vec<(u32, u32)> = flat.chunks_exact(2).map(|c| (c[0], c[1])).collect();
        for &(a, b) in &spans {
            let (a, b) = (a as usize, b as usize);
            if a > b || b > pool.len() || !pool.is_char_boundary(a) || !pool.is_char_boundary(b) {
                return None;
            }
        }
        let plural = r.u32s()?;
        let items = r.u32s()?;
        let n_ids = spans.len() as u32;
        if plural.len() > spans.len()
            || plural.iter().any(|&p| p != NO_PLURAL && p >= n_ids)
            || items.iter().any(|&i| i & ID_MASK >= plural.len() as u32)
        {
            return None;
        }
        let n = r.u32()? as usize;
        let mut entries: KeyMap<Box<str>, (u32, u32)> = KeyMap::default();
        entries.reserve(n.min(1 << 20));
        for _ in 0..n {
            let k = r.str()?;
            let (start, len) = (r.u32()?, r.u32()?);
            if start as usize + len as usize > items.len() {
                return None;
            }
            entries.insert(k.into(), (start, len));
        }
        let n = r.u32()? as usize;
        let mut noun_exc: KeyMap<Box<str>, Box<str>> = KeyMap::default();
        for _ in 0..n {
            let (k, v) = (r.str()?, r.str()?);
            noun_exc.insert(k.into(), v.into());
        }
        if !r.0.is_empty() {
            return None;
        }
        Some(SynonymTable {
            pool,
            spans,
            plural,
            items,
            entries,
            noun_exc,
        })
    }

    /// Builds a new table from the WordNet database in `dir`, bypassing the cache.
    pub fn load_uncached(dir: &Path) -> Result<SynonymTable> {
        for name in super::wordnet_cache::REQUIRED_FILES {
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

    #[inline]
    fn string(&self, id: u32) -> &str {
        let (s, e) = self.spans[id as usize];
        &self.pool[s as usize..e as usize]
    }

    #[inline]
    fn entry(&self, word: &str) -> &[u32] {
        match self.entries.get(word) {
            Some(&(start, len)) => &self.items[start as usize..(start + len) as usize],
            None => &[],
        }
    }

    /// Number of words that have synonyms.
    pub fn word_count(&self) -> usize {
        self.entries.len()
    }

    /// Approximate heap size in bytes.
    pub fn heap_bytes(&self) -> usize {
        self.pool.capacity()
            + self.spans.capacity() * 8
            + self.plural.capacity() * 4
            + self.items.capacity() * 4
            + self.entries.capacity() * 32
            + self.entries.keys().map(|k| k.len()).sum::<usize>()
            + self.noun_exc.capacity() * 48
    }

    /// Synonyms of `word` (a lookup form: lower-case), restricted to `pos` when given; when
    /// that part of speech has none, every part of speech is used.
    pub fn synonyms<'a>(&'a self, word: &'a str, pos: Option<Pos>) -> Synonyms<'a> {
        self.synonyms_in(word, pos.map_or(PosSet::ALL, PosSet::of))
    }

    /// Synonyms of `word` (a lookup form) in the parts of speech `set`, falling back in order
    /// to: the plural of the singular's noun synonyms (when `word` looks like a plural and
    /// either `set` says noun and not verb, or the singular has no verb sense), then to every
    /// part of speech. Empty when nothing is found.
    pub fn synonyms_in<'a>(&'a self, word: &'a str, set: PosSet) -> Synonyms<'a> {
        let set = if set.0 == 0 { PosSet::ALL } else { set };
        let direct = self.entry(word);
        if !direct.is_empty() {
            let s = Synonyms::new(self, direct, set, false, word);
            if !s.is_empty() {
                return s;
            }
        }
        if let Some(s) = self.plural_synonyms(word, set) {
            return s;
        }
        if !direct.is_empty() && set != PosSet::ALL {
            return Synonyms::new(self, direct, PosSet::ALL, false, word);
        }
        Synonyms::EMPTY
    }

    /// Whether `word` (a lookup form) has any synonym.
    pub fn has_synonyms(&self, word: &str) -> bool {
        !self.synonyms_in(word, PosSet::ALL).is_empty()
    }

    fn plural_synonyms<'a>(&'a self, word: &'a str, set: PosSet) -> Option<Synonyms<'a>> {
        let noun_hint = set.contains(Pos::Noun) && !set.contains(Pos::Verb);
        let try_base = |base: &str| -> Option<Synonyms<'a>> {
            let items = self.entry(base);
            if items.is_empty() {
                return None;
            }
            let has_verb = items.iter().any(|&it| it & pos_bits(PosSet::VERB) != 0);
            if has_verb && !noun_hint {
                return None;
            }
            let s = Synonyms::new(self, items, PosSet::NOUN, true, word);
            (!s.is_empty()).then_some(s)
        };
        if let Some(base) = self.noun_exc.get(word) {
            if let Some(s) = try_base(base) {
                return Some(s);
            }
        }
        let n = word.len();
        if !(4..=60).contains(&n) || !word.ends_with('s') {
            return None;
        }
        if n >= 5 && word.ends_with("ies") {
            let mut buf = [0u8; 64];
            buf[..n - 3].copy_from_slice(&word.as_bytes()[..n - 3]);
            buf[n - 3] = b'y';
            if let Ok(base) = std::str::from_utf8(&buf[..n - 2]) {
                if let Some(s) = try_base(base) {
                    return Some(s);
                }
            }
        }
        if word.ends_with("es") {
            if let Some(s) = try_base(&word[..n - 2]) {
                return Some(s);
            }
        }
        if !(word.ends_with("ss") || word.ends_with("us") || word.ends_with("is")) {
            if let Some(s) = try_base(&word[..n - 1]) {
                return Some(s);
            }
        }
        None
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::time::Instant;

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
