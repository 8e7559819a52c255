//! What a run's fingerprint knows of the files it reads: enough that a rewritten input, even
//! one of the same size, makes the fingerprint change, and cheap enough to compute on every run.
//!
//! A Parquet file is identified by its path, size, modification time and a hash of its footer
//! (the schema, row groups, column chunk offsets and statistics).

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use xxhash_rust::xxh3::xxh3_64;

/// `path:size:mtime:footer` for a Parquet file; parts that cannot be read are left empty (the
/// file was read successfully moments before, so this does not hide a problem).
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
    format!("{}:{size}:{mtime}:{footer}", path.display())
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
}
