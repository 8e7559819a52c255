//! SHA-256 of files, cached so that a model's weights (hundreds of MB) are hashed once, not on
//! every run that reads them.
//!
//! **Where.** One small JSON file per hashed file, under `hashes/` in retort's cache folder
//! ([`crate::assets::cache_dir`]). A model is read by many runs writing to many output folders
//! (one teacher labels every generation's corpus, an experiment's seeds, ...), so a cache next
//! to one output's `_progress/` would hash the same weights again for every output; a cache
//! inside the model folder would change the very folder it describes, and fails on read-only
//! folders such as the asset folder. Without a cache folder (no `$HOME`) or when it cannot be
//! written, files are hashed every time: slower, never wrong.
//!
//! **Key.** The file's canonical path, device, inode, size, modification time and status-change
//! time (nanoseconds). A rewrite changes the size or the modification time; a file renamed onto
//! the path has another inode; and the status-change time moves on every write and cannot be
//! set back (`touch -d` sets only the modification time), so restoring an old modification time
//! does not hide a rewrite. A stored entry repeats its key, and is used only when it matches.
//!
//! Files under [`CACHE_FROM_BYTES`] (configs, tokenizers) are hashed directly: reading them costs
//! less than the cache entry would.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use xxhash_rust::xxh3::xxh3_128;

use crate::error::{io_error, Result};

/// Files at least this large go through the cache.
pub const CACHE_FROM_BYTES: u64 = 1 << 20;

/// A cache of file hashes in one folder (see the module docs).
#[derive(Debug, Clone)]
pub struct HashCache {
    dir: Option<PathBuf>,
}

/// One cache entry: the key it was computed for and the hash.
#[derive(Serialize, Deserialize)]
struct Entry {
    key: String,
    sha256: String,
}

impl HashCache {
    /// The cache in retort's cache folder (`hashes/`), or no cache when there is none.
    pub fn in_cache_dir() -> Self {
        HashCache {
            dir: crate::assets::cache_dir().map(|d| d.join("hashes")),
        }
    }

    /// A cache in `dir` (created when first written).
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        HashCache {
            dir: Some(dir.into()),
        }
    }

    /// Hex SHA-256 of the file at `path`, from the cache when its entry still matches the
    /// file. Errors name the file.
    pub fn sha256(&self, path: &Path) -> Result<String> {
        let meta = std::fs::metadata(path)
            .map_err(|e| io_error(format!("cannot read `{}`", path.display()), e))?;
        let entry_path = match &self.dir {
            Some(dir) if meta.len() >= CACHE_FROM_BYTES => {
                let key = cache_key(path, &meta);
                Some((
                    dir.join(format!("{:032x}.json", xxh3_128(key.as_bytes()))),
                    key,
                ))
            }
            _ => None,
        };
        if let Some((entry, key)) = &entry_path {
            if let Some(sha) = lookup(entry, key) {
                return Ok(sha);
            }
        }
        let sha = sha256_of_file(path)?;
        if let Some((entry, key)) = entry_path {
            store(
                &entry,
                &Entry {
                    key,
                    sha256: sha.clone(),
                },
            );
        }
        Ok(sha)
    }
}

/// Hex SHA-256 of a file's bytes, read in 1 MiB chunks. Errors name the file.
pub fn sha256_of_file(path: &Path) -> Result<String> {
    let err = |e| io_error(format!("cannot read `{}`", path.display()), e);
    let mut f = std::fs::File::open(path).map_err(err)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(err)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// `path|device|inode|size|mtime|ctime` (see the module docs).
fn cache_key(path: &Path, meta: &std::fs::Metadata) -> String {
    let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    #[cfg(unix)]
    let (dev, ino, ctime) = {
        use std::os::unix::fs::MetadataExt;
        (
            meta.dev(),
            meta.ino(),
            i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
        )
    };
    #[cfg(not(unix))]
    let (dev, ino, ctime) = (0u64, 0u64, 0i128);
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    format!(
        "{}|{dev}|{ino}|{}|{mtime}|{ctime}",
        canonical.display(),
        meta.len()
    )
}

/// The stored hash for `key`, when the entry exists, parses and was made for this key.
fn lookup(entry: &Path, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(entry).ok()?;
    let e: Entry = serde_json::from_str(&text).ok()?;
    let valid =
        e.key == key && e.sha256.len() == 64 && e.sha256.bytes().all(|b| b.is_ascii_hexdigit());
    valid.then_some(e.sha256)
}

/// Writes an entry under a unique temporary name, then renames it into place, so concurrent
/// runs never read half an entry. Failures are ignored: the cache only saves time.
fn store(entry: &Path, value: &Entry) {
    let Some(dir) = entry.parent() else { return };
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let tmp = dir.join(format!(".tmp.{}.{nanos}", std::process::id()));
    let Ok(text) = serde_json::to_string(value) else {
        return;
    };
    if std::fs::write(&tmp, text).is_ok() && std::fs::rename(&tmp, entry).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn big_file(path: &Path, fill: u8) {
        std::fs::write(path, vec![fill; CACHE_FROM_BYTES as usize + 10]).unwrap();
    }

    fn entries(dir: &Path) -> Vec<PathBuf> {
        std::fs::read_dir(dir)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default()
    }

    #[test]
    fn a_large_file_is_hashed_once_and_read_back_from_the_cache() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = HashCache::at(tmp.path().join("hashes"));
        let weights = tmp.path().join("model.safetensors");
        big_file(&weights, 1);
        let sha = cache.sha256(&weights).unwrap();
        assert_eq!(sha, sha256_of_file(&weights).unwrap());
        let stored = entries(&tmp.path().join("hashes"));
        assert_eq!(stored.len(), 1, "one entry per hashed file");
        // Plant another hash under the same key: a second call must read it instead of
        // hashing the file again.
        let text = std::fs::read_to_string(&stored[0]).unwrap();
        let planted = "ab".repeat(32);
        std::fs::write(&stored[0], text.replace(&sha, &planted)).unwrap();
        assert_eq!(cache.sha256(&weights).unwrap(), planted);
    }

    #[test]
    fn a_rewrite_of_the_same_size_is_hashed_again() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = HashCache::at(tmp.path().join("hashes"));
        let weights = tmp.path().join("model.safetensors");
        big_file(&weights, 1);
        let before = cache.sha256(&weights).unwrap();
        let mtime = std::fs::metadata(&weights).unwrap().modified().unwrap();
        // File times tick with the kernel's clock (a few ms on some systems).
        std::thread::sleep(std::time::Duration::from_millis(20));
        big_file(&weights, 2);
        // Even with the old modification time put back, the status-change time moved.
        std::fs::File::options()
            .write(true)
            .open(&weights)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        let after = cache.sha256(&weights).unwrap();
        assert_ne!(before, after);
        assert_eq!(after, sha256_of_file(&weights).unwrap());
    }

    #[test]
    fn small_files_and_missing_cache_folders_still_hash() {
        let tmp = tempfile::tempdir().unwrap();
        let small = tmp.path().join("config.json");
        std::fs::write(&small, b"{}").unwrap();
        let cache = HashCache::at(tmp.path().join("hashes"));
        assert_eq!(
            cache.sha256(&small).unwrap(),
            sha256_of_file(&small).unwrap()
        );
        assert!(entries(&tmp.path().join("hashes")).is_empty());
        // A cache folder that cannot be created (a file is in the way) costs time, not results.
        let blocked = tmp.path().join("blocked");
        std::fs::write(&blocked, b"").unwrap();
        let big = tmp.path().join("big.bin");
        big_file(&big, 3);
        let sha = HashCache::at(blocked.join("hashes")).sha256(&big).unwrap();
        assert_eq!(sha, sha256_of_file(&big).unwrap());
        let err = cache.sha256(&tmp.path().join("nope")).unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
    }
}
