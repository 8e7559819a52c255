//! The synonym table: compact storage, lookups with the plural fallback, and the
//! process-wide cache of built tables.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};

use super::pos::{Pos, PosSet};

/// A small, fast non-cryptographic hasher for the table's string keys.
#[derive(Default, Clone, Copy)]
pub(super) struct KeyHasher(u64);

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

pub(super) type KeyMap<K, V> = HashMap<K, V, BuildHasherDefault<KeyHasher>>;

pub(super) const ID_BITS: u32 = 27;
pub(super) const ID_MASK: u32 = (1 << ID_BITS) - 1;
pub(super) const SINGLE_WORD: u32 = 1 << 31;
pub(super) const NO_PLURAL: u32 = u32::MAX;

#[inline]
pub(super) fn pos_bits(set: PosSet) -> u32 {
    u32::from(set.0) << ID_BITS
}

/// Synonyms of every WordNet lemma. Build it with [`SynonymTable::load`].
pub struct SynonymTable {
    pub(super) pool: String,
    pub(super) spans: Vec<(u32, u32)>,
    /// Pool index of the plural of a single-word noun synonym, or `NO_PLURAL`.
    pub(super) plural: Vec<u32>,
    pub(super) items: Vec<u32>,
    pub(super) entries: KeyMap<Box<str>, (u32, u32)>,
    /// Irregular plural -> singular, from `noun.exc`.
    pub(super) noun_exc: KeyMap<Box<str>, Box<str>>,
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
pub(super) fn eq_ci(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        a.eq_ignore_ascii_case(b)
    } else {
        a.chars()
            .flat_map(char::to_lowercase)
            .eq(b.chars().flat_map(char::to_lowercase))
    }
}

/// Removes an adjective marker like `(a)`, `(p)`, `(ip)` and writes `_` as a space.
pub(super) fn clean_lemma(raw: &str) -> String {
    let base = match raw.find('(') {
        Some(i) if i > 0 && raw.ends_with(')') => &raw[..i],
        _ => raw,
    };
    base.replace('_', " ")
}

/// The regular English plural of a noun.
pub(super) fn regular_plural(s: &str) -> String {
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

impl SynonymTable {
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
