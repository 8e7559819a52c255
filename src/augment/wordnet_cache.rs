//! An on-disk cache of the built synonym table: reading WordNet and building the table takes
//! about 1.5 s, loading the cached table a few milliseconds. The cache lives under
//! `$RETORT_CACHE_DIR`, else `$XDG_CACHE_HOME/retort`, else `~/.cache/retort`, and is keyed by
//! the size and modification time of the WordNet files, so an updated database is rebuilt.
//! Any problem with the cache (missing, unreadable, corrupt) falls back to building.

use std::path::{Path, PathBuf};

use xxhash_rust::xxh3::Xxh3;

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
