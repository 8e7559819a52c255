//! Turning a user's input path (a file, a folder or a glob) into a sorted list of Parquet files.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Whether a file name is one of ours that readers skip (`_SUCCESS.json`, `_rejects`, temp files).
pub fn is_hidden(name: &str) -> bool {
    name.starts_with('_') || name.starts_with('.')
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
