//! Turning a user's input path (a file, a folder or a glob) into a sorted list of Parquet files.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Whether a file name is one of ours that readers skip (`_SUCCESS.json`, `_rejects`, temp files).
pub fn is_hidden(name: &str) -> bool {
    name.starts_with('_') || name.starts_with('.')
}

/// Refuses to read `folder` when it is a retort output that is not finished: it has
/// `_progress/` (parts were committed) but no `_SUCCESS.json`, nor a complete set of shard
/// manifests `_SUCCESS.shard-I-of-N.json` for I = 1..N. Such a folder holds only part of its
/// rows: its run was killed or is still running. Folders retort did not write pass.
pub fn check_finished(folder: &Path) -> Result<()> {
    if !folder.join("_progress").is_dir() || folder.join("_SUCCESS.json").is_file() {
        return Ok(());
    }
    let mut shards: Vec<(u32, u32)> = Vec::new();
    if let Ok(entries) = std::fs::read_dir(folder) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(shard) = shard_of_manifest(&name) {
                shards.push(shard);
            }
        }
    }
    let total = shards.first().map(|s| s.1);
    let complete = total.is_some_and(|n| {
        shards.iter().all(|s| s.1 == n) && (1..=n).all(|i| shards.contains(&(i, n)))
    });
    if complete {
        return Ok(());
    }
    let what = match total {
        Some(n) => format!(
            "holds {} of {n} shard manifests and no `_SUCCESS.json`",
            shards.len()
        ),
        None => "has no `_SUCCESS.json`".to_string(),
    };
    Err(Error::user(format!(
        "input `{}` is an unfinished retort output: it {what}, so it holds only the rows committed so far",
        folder.display()
    ))
    .with_hint(
        "finish that run first (run it again: it resumes), or pass `--allow-incomplete` to read what it has",
    ))
}

/// `(I, N)` of a shard manifest name `_SUCCESS.shard-IIII-of-NNNN.json`.
fn shard_of_manifest(name: &str) -> Option<(u32, u32)> {
    let tag = name
        .strip_prefix("_SUCCESS.shard-")?
        .strip_suffix(".json")?;
    let (i, n) = tag.split_once("-of-")?;
    Some((i.parse().ok()?, n.parse().ok()?))
}

/// The folders that `files` (resolved inputs) come from, each once, in order.
pub fn input_folders(files: &[PathBuf]) -> Vec<PathBuf> {
    let mut folders: Vec<PathBuf> = Vec::new();
    for f in files {
        let dir = f
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        if !folders.contains(&dir) {
            folders.push(dir);
        }
    }
    folders
}

/// Resolves `pattern` to Parquet files in a stable (sorted) order.
///
/// A folder yields its `*.parquet` files (not recursing, skipping names that start with `_`
/// or `.`); a pattern with `*`, `?` or `[` is a glob; anything else must be an existing file.
pub fn resolve_inputs(pattern: &str) -> Result<Vec<PathBuf>> {
    let path = Path::new(pattern);
    let mut files = if pattern.contains(['*', '?', '[']) {
        let paths = glob::glob(pattern).map_err(|e| {
            Error::user(format!("`{pattern}` is not a valid glob pattern")).with_source(e)
        })?;
        let mut v = Vec::new();
        for p in paths {
            let p = p.map_err(|e| {
                Error::user(format!("cannot read a path matched by `{pattern}`")).with_source(e)
            })?;
            let hidden = p
                .file_name()
                .map(|n| is_hidden(&n.to_string_lossy()))
                .unwrap_or(false);
            if p.is_file() && !hidden {
                v.push(p);
            }
        }
        v
    } else if path.is_dir() {
        let mut v = Vec::new();
        let entries = fs_err::read_dir(path).map_err(|e| {
            Error::user(format!("cannot list input folder `{pattern}`")).with_source(e)
        })?;
        for entry in entries {
            let entry = entry.map_err(|e| {
                Error::user(format!("cannot list input folder `{pattern}`")).with_source(e)
            })?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let p = entry.path();
            if !is_hidden(&name) && name.ends_with(".parquet") && p.is_file() {
                v.push(p);
            }
        }
        v
    } else if path.is_file() {
        vec![path.to_path_buf()]
    } else {
        return Err(Error::user(format!("input `{pattern}` does not exist"))
            .with_hint("give a Parquet file, a folder of Parquet files, or a glob such as `data/*.parquet`"));
    };
    files.sort();
    if files.is_empty() {
        return Err(Error::user(format!("no Parquet files found at `{pattern}`"))
            .with_hint("a folder is searched for `*.parquet` files (names starting with `_` or `.` are skipped)"));
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_lists_sorted_visible_parquet_only() {
        let dir = tempfile::tempdir().unwrap();
        for n in [
            "b.parquet",
            "a.parquet",
            "_SUCCESS.json",
            "_tmp.parquet",
            "notes.txt",
        ] {
            std::fs::write(dir.path().join(n), b"x").unwrap();
        }
        let files = resolve_inputs(dir.path().to_str().unwrap()).unwrap();
        let names: Vec<_> = files
            .iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap())
            .collect();
        assert_eq!(names, ["a.parquet", "b.parquet"]);
        let globbed = resolve_inputs(&format!("{}/*.parquet", dir.path().display())).unwrap();
        assert_eq!(globbed.len(), 2);
    }

    #[test]
    fn missing_input_is_a_user_error() {
        let e = resolve_inputs("/nonexistent/x.parquet").unwrap_err();
        assert_eq!(e.exit_code(), 1);
        assert!(e.to_string().contains("/nonexistent/x.parquet"));
    }
}
