//! An on-disk cache of the built synonym table: reading WordNet and building the table takes
//! about 1.5 s, loading the cached table a few milliseconds. The cache lives under
//! `$RETORT_CACHE_DIR`, else `$XDG_CACHE_HOME/retort`, else `~/.cache/retort`, and is keyed by
//! the size and modification time of the WordNet files, so an updated database is rebuilt.
//! Any problem with the cache (missing, unreadable, corrupt) falls back to building. Loaded
//! tables are also kept for the whole process ([`SynonymTable::load`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use xxhash_rust::xxh3::Xxh3;

use super::table::{KeyMap, SynonymTable, ID_MASK, NO_PLURAL};
use crate::error::Result;

/// Bump when the table layout or its serialisation changes.
pub(crate) const FORMAT_VERSION: u32 = 1;

/// The database files a table is built from (all required).
pub(crate) const REQUIRED_FILES: [&str; 8] = [
    "data.noun",
    "data.verb",
    "data.adj",
    "data.adv",
    "index.noun",
    "index.verb",
    "index.adj",
    "index.adv",
];

/// The cache file for the WordNet database in `dir`.
pub(crate) fn cache_file(dir: &Path) -> Option<PathBuf> {
    let mut h = Xxh3::new();
    h.update(&FORMAT_VERSION.to_le_bytes());
    h.update(dir.canonicalize().ok()?.as_os_str().as_encoded_bytes());
    for name in REQUIRED_FILES.iter().chain(["noun.exc"].iter()) {
        let meta = std::fs::metadata(dir.join(name)).ok();
        h.update(name.as_bytes());
        h.update(&meta.as_ref().map_or(0, |m| m.len()).to_le_bytes());
        let mtime = meta
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        h.update(&mtime.to_le_bytes());
    }
    Some(crate::assets::cache_dir()?.join(format!("wordnet-{:016x}.bin", h.digest())))
}

/// Reads a cache file.
pub(crate) fn read(path: &Path) -> Option<Vec<u8>> {
    std::fs::read(path).ok()
}

/// Writes a cache file atomically; failures are ignored (the cache is an optimisation).
pub(crate) fn write(path: &Path, bytes: &[u8]) {
    let Some(dir) = path.parent() else {
        return;
    };
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    let tmp = dir.join(format!(
        ".tmp-{}-{}",
        std::process::id(),
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ));
    if std::fs::write(&tmp, bytes).is_ok() && std::fs::rename(&tmp, path).is_ok() {
        return;
    }
    let _ = std::fs::remove_file(&tmp);
}

/// Little-endian writer of the cache format.
#[derive(Default)]
pub(crate) struct Writer(pub Vec<u8>);

impl Writer {
    pub fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub fn bytes(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.0.extend_from_slice(b);
    }
    pub fn u32s(&mut self, v: &[u32]) {
        self.u32(v.len() as u32);
        for x in v {
            self.u32(*x);
        }
    }
}

/// Reader of the cache format; every read is bounds-checked.
pub(crate) struct Reader<'a>(pub &'a [u8]);

impl<'a> Reader<'a> {
    pub fn u32(&mut self) -> Option<u32> {
        let (head, rest) = self.0.split_at_checked(4)?;
        self.0 = rest;
        Some(u32::from_le_bytes(head.try_into().ok()?))
    }
    pub fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }
    pub fn str(&mut self) -> Option<&'a str> {
        std::str::from_utf8(self.bytes()?).ok()
    }
    pub fn u32s(&mut self) -> Option<Vec<u32>> {
        let n = self.u32()? as usize;
        if n.checked_mul(4)? > self.0.len() {
            return None;
        }
        (0..n).map(|_| self.u32()).collect()
    }
}

impl SynonymTable {
    /// Serialises the table for the on-disk cache (deterministic: entries sorted by key).
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
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
        let file = cache_file(dir);
        let cached = file
            .as_deref()
            .and_then(read)
            .and_then(|b| Self::from_bytes(&b));
        let table = match cached {
            Some(t) => Arc::new(t),
            None => {
                let t = Self::load_uncached(dir)?;
                if let Some(f) = &file {
                    write(f, &t.to_bytes());
                }
                Arc::new(t)
            }
        };
        cache.insert(key, Arc::clone(&table));
        Ok(table)
    }
}
