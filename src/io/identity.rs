//! What a run's fingerprint knows of the files it reads: enough that a rewritten input or a
//! retrained model, even of the same size, makes the fingerprint change, and cheap enough to
//! compute on every run.
//!
//! - A Parquet input is identified by its path, size, modification time and a hash of its
//!   footer (the schema, row groups, column chunk offsets and statistics).
//! - A model file or folder (a teacher, an LM, a Marian pair, a `train` stage's `init`) by the
//!   content of every file it holds: name, size and SHA-256, the hashes of large files kept in
//!   [`HashCache`] so weights are not hashed again on every run. Only content counts: a model
//!   retrained to the same bytes, or moved elsewhere, is the same model.
//!
//! Paths enter the fingerprint normalised ([`normalise_path`]), so `./x`, `x/` and `a/../x`
//! name one input.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};

use xxhash_rust::xxh3::xxh3_64;

use crate::error::{io_error, Error, Result};
use crate::io::hash_cache::HashCache;

/// `path:size:mtime:footer` for a Parquet file (the path normalised); parts that cannot be read
/// are left empty (the file was read successfully moments before, so this does not hide a
/// problem).
pub fn parquet_file_identity(path: &Path) -> String {
    let meta = std::fs::metadata(path).ok();
    let size = meta.as_ref().map_or(0, |m| m.len());
    let mtime = meta
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let footer = footer_bytes(path)
        .map(|b| format!("{:016x}", xxh3_64(&b)))
        .unwrap_or_default();
    let path = normalise_path(&path.to_string_lossy());
    format!("{path}:{size}:{mtime}:{footer}")
}

/// The footer of a Parquet file: its metadata, its length and the closing magic.
fn footer_bytes(path: &Path) -> Option<Vec<u8>> {
    let mut f = std::fs::File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    if len < 8 {
        return None;
    }
    f.seek(SeekFrom::End(-8)).ok()?;
    let mut tail = [0u8; 8];
    f.read_exact(&mut tail).ok()?;
    let meta_len = u64::from(u32::from_le_bytes(tail[..4].try_into().ok()?));
    let footer_len = (meta_len + 8).min(len);
    f.seek(SeekFrom::End(-(footer_len as i64))).ok()?;
    let mut buf = vec![0u8; footer_len as usize];
    f.read_exact(&mut buf).ok()?;
    Some(buf)
}

/// The content identity of a model file, or of a model folder: `name:size:sha256` for the file,
/// or for each regular file of the folder (sorted by name; subfolders and hidden files are not
/// read by the loaders and are left out), joined by `;`. Large files' hashes come from
/// `cache`. Errors name the file or folder.
pub fn model_identity(path: &Path, cache: &HashCache) -> Result<String> {
    let files = model_files(path)?;
    let mut parts = Vec::with_capacity(files.len());
    for (name, file) in files {
        let size = std::fs::metadata(&file)
            .map_err(|e| io_error(format!("cannot read `{}`", file.display()), e))?
            .len();
        parts.push(format!("{name}:{size}:{}", cache.sha256(&file)?));
    }
    Ok(parts.join(";"))
}

/// The files that make up a model: the file itself, or a folder's visible regular files by name.
fn model_files(path: &Path) -> Result<Vec<(String, PathBuf)>> {
    if path.is_file() {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        return Ok(vec![(name, path.to_path_buf())]);
    }
    if !path.is_dir() {
        return Err(Error::user(format!("model `{}` not found", path.display())));
    }
    let err = |e| io_error(format!("cannot list `{}`", path.display()), e);
    let mut files = Vec::new();
    for entry in fs_err::read_dir(path).map_err(err)? {
        let entry = entry.map_err(err)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') && entry.path().is_file() {
            files.push((name, entry.path()));
        }
    }
    files.sort();
    Ok(files)
}

/// `path` with `.` components, `dir/..` pairs and trailing slashes removed, and an absolute
/// path inside the current folder made relative to it, so `./x`, `x/`, `a/../x` and `$PWD/x`
/// are one path. Lexical: symbolic links are not followed, and a leading `..` stays. Glob
/// characters pass through unchanged. The empty path and `.` give `.`.
pub fn normalise_path(path: &str) -> String {
    let mut p = lexical(Path::new(path));
    if p.is_absolute() {
        for cwd in current_dirs() {
            if let Ok(rest) = p.strip_prefix(&cwd) {
                p = rest.to_path_buf();
                break;
            }
        }
    }
    if p.as_os_str().is_empty() {
        return ".".into();
    }
    p.to_string_lossy().into_owned()
}

/// The current folder as the system resolves it, and as the shell spelled it (`$PWD`, which may
/// go through symbolic links) when that is the same folder.
fn current_dirs() -> Vec<PathBuf> {
    let Ok(cwd) = std::env::current_dir() else {
        return Vec::new();
    };
    let mut dirs = vec![lexical(&cwd)];
    if let Some(pwd) = std::env::var_os("PWD").map(PathBuf::from) {
        if pwd.is_absolute() && same_file(&pwd, &cwd) {
            dirs.push(lexical(&pwd));
        }
    }
    dirs
}

/// Whether two paths name one file or folder (same device and inode).
fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (std::fs::metadata(a), std::fs::metadata(b)) {
            (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        a == b
    }
}

/// The lexical part of [`normalise_path`].
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir
                if matches!(out.components().next_back(), Some(Component::Normal(_))) =>
            {
                out.pop();
            }
            // `/..` is `/`.
            Component::ParentDir if out.has_root() => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rewrite_of_the_same_size_changes_the_identity() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.parquet");
        std::fs::write(&p, b"PAR1....meta\x04\x00\x00\x00PAR1").unwrap();
        let before = parquet_file_identity(&p);
        assert_eq!(
            before,
            parquet_file_identity(&p),
            "stable when nothing changes"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&p, b"PAR1....mexa\x04\x00\x00\x00PAR1").unwrap();
        assert_ne!(before, parquet_file_identity(&p));
    }

    /// A rewrite that keeps the size and, restored by hand (`touch -r`, a copy that keeps
    /// times), the modification time: only the footer hash tells the two files apart.
    #[test]
    fn a_rewrite_of_the_same_size_and_mtime_changes_the_identity() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.parquet");
        std::fs::write(&p, b"PAR1....meta\x04\x00\x00\x00PAR1").unwrap();
        let before = parquet_file_identity(&p);
        let meta = std::fs::metadata(&p).unwrap();
        let mtime = meta.modified().unwrap();
        std::fs::write(&p, b"PAR1....mexa\x04\x00\x00\x00PAR1").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        let after = std::fs::metadata(&p).unwrap();
        assert_eq!(after.len(), meta.len());
        assert_eq!(after.modified().unwrap(), mtime);
        assert_ne!(before, parquet_file_identity(&p));
    }

    #[test]
    fn spellings_of_one_path_normalise_to_one() {
        for (given, want) in [
            ("./x", "x"),
            ("x/", "x"),
            ("x", "x"),
            ("a/../x", "x"),
            ("./a/./b/../x/", "a/x"),
            ("../x", "../x"),
            ("a/../../x", "../x"),
            (".", "."),
            ("", "."),
            ("/", "/"),
            ("/../x", "/x"),
            ("data/*.parquet", "data/*.parquet"),
            ("./data/../data/*.parquet", "data/*.parquet"),
        ] {
            assert_eq!(normalise_path(given), want, "{given}");
        }
        let cwd = std::env::current_dir().unwrap();
        let inside = cwd.join("sub/x");
        assert_eq!(normalise_path(&inside.to_string_lossy()), "sub/x");
        assert_eq!(normalise_path(&cwd.to_string_lossy()), ".");
    }

    #[test]
    fn a_model_folder_is_identified_by_the_content_of_its_files() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = HashCache::at(tmp.path().join("hashes"));
        let m = tmp.path().join("m");
        std::fs::create_dir_all(m.join("sub")).unwrap();
        std::fs::write(m.join("config.json"), b"{}").unwrap();
        std::fs::write(m.join("model.safetensors"), b"weights A").unwrap();
        std::fs::write(m.join(".hidden"), b"x").unwrap();
        std::fs::write(m.join("sub/other"), b"x").unwrap();
        let a = model_identity(&m, &cache).unwrap();
        assert!(a.starts_with("config.json:2:"), "{a}");
        assert!(a.contains(";model.safetensors:9:"), "{a}");
        assert!(!a.contains("hidden") && !a.contains("other"), "{a}");
        // Same bytes elsewhere: the same model.
        let moved = tmp.path().join("moved");
        std::fs::create_dir_all(&moved).unwrap();
        for f in ["config.json", "model.safetensors"] {
            std::fs::copy(m.join(f), moved.join(f)).unwrap();
        }
        assert_eq!(model_identity(&moved, &cache).unwrap(), a);
        // Other weights of the same size: another model.
        std::fs::write(m.join("model.safetensors"), b"weights B").unwrap();
        assert_ne!(model_identity(&m, &cache).unwrap(), a);
        // A single file (a GGUF) is a model too; a missing one is an error naming it.
        let gguf = m.join("model.safetensors");
        assert!(model_identity(&gguf, &cache)
            .unwrap()
            .starts_with("model.safetensors:9:"));
        let err = model_identity(&tmp.path().join("gone"), &cache).unwrap_err();
        assert!(err.to_string().contains("gone"), "{err}");
    }
}
