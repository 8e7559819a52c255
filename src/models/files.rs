//! The files of a checkpoint folder: their names, finding them with errors that say what is
//! missing, reading them, and the content hash that identifies a folder.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{io_error, Error, Result};
use crate::io::hash_cache::HashCache;

/// The architecture's configuration (Hugging Face `config.json`).
pub const CONFIG_FILE: &str = "config.json";
/// Tokenizer file name.
pub const TOKENIZER_FILE: &str = "tokenizer.json";
/// Weights file name.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// Metadata file name.
pub const INFO_FILE: &str = "retort.json";

/// `folder/name`, or a user error naming both when the folder or the file is missing.
pub fn require_file(folder: &Path, name: &str) -> Result<PathBuf> {
    if !folder.is_dir() {
        return Err(Error::user(format!(
            "model folder `{}` not found",
            folder.display()
        )));
    }
    let p = folder.join(name);
    if !p.is_file() {
        return Err(Error::user(format!(
            "model folder `{}` has no `{name}`",
            folder.display()
        ))
        .with_hint(format!(
            "a model folder holds `{CONFIG_FILE}`, `{TOKENIZER_FILE}` and `{WEIGHTS_FILE}`"
        )));
    }
    Ok(p)
}

/// The text of `path`, or an I/O error naming it.
pub fn read_text(path: &Path) -> Result<String> {
    fs_err::read_to_string(path)
        .map_err(|e| io_error(format!("cannot read `{}`", path.display()), e))
}

/// Hex sha256 over the folder's regular files (sorted by name; each contributes its name,
/// a NUL byte, its length as u64 little-endian and the hex SHA-256 of its bytes). Subfolders
/// are ignored. Large files' hashes come from [`HashCache`], so a teacher's weights are not
/// read again on every run.
pub fn content_hash(folder: &Path) -> Result<String> {
    if !folder.is_dir() {
        return Err(Error::user(format!(
            "model folder `{}` not found",
            folder.display()
        )));
    }
    let rd = fs_err::read_dir(folder)
        .map_err(|e| io_error(format!("cannot list `{}`", folder.display()), e))?;
    let mut files = Vec::new();
    for entry in rd {
        let entry =
            entry.map_err(|e| io_error(format!("cannot list `{}`", folder.display()), e))?;
        if entry.path().is_file() {
            files.push(entry.file_name().to_string_lossy().to_string());
        }
    }
    files.sort();
    let cache = HashCache::in_cache_dir();
    let mut h = Sha256::new();
    for f in files {
        let path = folder.join(&f);
        let len = fs_err::metadata(&path)
            .map_err(|e| io_error(format!("cannot read `{}`", path.display()), e))?
            .len();
        h.update(f.as_bytes());
        h.update([0u8]);
        h.update(len.to_le_bytes());
        h.update(cache.sha256(&path)?.as_bytes());
    }
    Ok(hex::encode(h.finalize()))
}
