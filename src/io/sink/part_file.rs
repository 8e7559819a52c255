//! One file of an output folder, written under a temporary name and renamed when complete: the
//! data parts (hashed and counted as they are written) and the `_rejects/` files.
//!
//! Temporary names are unique to the process and the file (`_tmp.NAME.PID-N`) and created
//! with `O_EXCL`, so no writer ever truncates or appends to a file it did not create. A writer
//! dropped before it is finished (a failed run) removes its temporary file, so a full disk is
//! not kept full.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arrow::array::{ArrayRef, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression as PqCompression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use sha2::{Digest, Sha256};

use crate::batch::Reject;
use crate::error::{io_error, Result};

/// Prefix of every temporary file a sink writes.
pub const TMP_PREFIX: &str = "_tmp.";

/// A new temporary path for the file `name` in `dir`, unique in this process.
fn temp_path(dir: &Path, name: &str) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    dir.join(format!("{TMP_PREFIX}{name}.{}-{n}", std::process::id()))
}

/// Creates a file that did not exist (`O_EXCL`).
fn create_new(path: &Path) -> Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| io_error(format!("cannot create `{}`", path.display()), e))
}

/// A file writer that hashes and counts what it writes.
struct HashingFile {
    file: std::io::BufWriter<std::fs::File>,
    hasher: Sha256,
    bytes: u64,
}

impl Write for HashingFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// A data part being written under its temporary name.
pub struct PartWriter {
    writer: Option<ArrowWriter<HashingFile>>,
    tmp: PathBuf,
    /// Set once the file has its final name; until then dropping removes it.
    committed: bool,
}

impl PartWriter {
    /// Starts the part `name` in `dir`.
    pub fn create(
        dir: &Path,
        name: &str,
        schema: &SchemaRef,
        props: WriterProperties,
    ) -> Result<PartWriter> {
        let tmp = temp_path(dir, name);
        let file = create_new(&tmp)?;
        let inner = HashingFile {
            file: std::io::BufWriter::with_capacity(1 << 20, file),
            hasher: Sha256::new(),
            bytes: 0,
        };
        // From here on, dropping `part` removes the temporary file.
        let mut part = PartWriter {
            writer: None,
            tmp,
            committed: false,
        };
        part.writer = Some(ArrowWriter::try_new(inner, schema.clone(), Some(props))?);
        Ok(part)
    }

    /// Appends rows.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.writer.as_mut().expect("open").write(batch)?;
        Ok(())
    }

    /// Bytes written so far, including the row group in memory.
    pub fn size(&self) -> u64 {
        self.writer
            .as_ref()
            .map(|w| w.bytes_written() + w.in_progress_size())
            .unwrap_or(0) as u64
    }

    /// Finishes the file, syncs it and renames it to `dir/name`; returns its size and SHA-256.
    pub fn commit(mut self, dir: &Path, name: &str) -> Result<(u64, String)> {
        let w = self.writer.take().expect("open");
        let mut inner = w.into_inner()?;
        inner
            .flush()
            .map_err(|e| io_error("cannot write part", e))?;
        let HashingFile {
            file,
            hasher,
            bytes,
        } = inner;
        let file = file
            .into_inner()
            .map_err(|e| io_error("cannot write part", e.into_error()))?;
        file.sync_all()
            .map_err(|e| io_error("cannot sync part", e))?;
        fs_err::rename(&self.tmp, dir.join(name)).map_err(|e| io_error("cannot commit part", e))?;
        self.committed = true;
        Ok((bytes, hex::encode(hasher.finalize())))
    }
}

impl Drop for PartWriter {
    fn drop(&mut self) {
        // Not committed (the run failed, perhaps while finishing the file on a full disk):
        // leave no temporary file behind.
        if !self.committed {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// `name` inside `dir`, relative to the output folder `root` (`_rejects/part-00000.parquet`).
pub fn relative(dir: &Path, root: &Path, name: &str) -> String {
    match dir.strip_prefix(root) {
        Ok(p) if !p.as_os_str().is_empty() => format!("{}/{name}", p.display()),
        _ => name.to_string(),
    }
}

/// SHA-256 of a whole file, as hex.
pub fn file_sha256(path: &Path) -> Result<String> {
    crate::io::hash_cache::sha256_of_file(path)
}

/// The schema of `_rejects/` files.
pub fn rejects_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("stage", DataType::Utf8, false),
        Field::new("reason", DataType::Utf8, false),
        Field::new("detail", DataType::Utf8, false),
        Field::new("id", DataType::Utf8, true),
        Field::new("text", DataType::Utf8, true),
    ]))
}

/// Writes `rejects` to `dir/name` (under a temporary name first).
pub fn write_rejects(dir: &Path, name: &str, rejects: &[Reject]) -> Result<()> {
    fs_err::create_dir_all(dir).map_err(|e| io_error("cannot create `_rejects`", e))?;
    let strings = |f: fn(&Reject) -> &str| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(rejects.iter().map(f)))
    };
    let optional = |f: fn(&Reject) -> Option<&str>| -> ArrayRef {
        Arc::new(StringArray::from_iter(rejects.iter().map(f)))
    };
    let cols: Vec<ArrayRef> = vec![
        strings(|r| r.stage.as_str()),
        strings(|r| r.reason.as_str()),
        strings(|r| r.detail.as_str()),
        optional(|r| r.id.as_deref()),
        optional(|r| r.text.as_deref()),
    ];
    let batch = RecordBatch::try_new(rejects_schema(), cols)?;
    let props = WriterProperties::builder()
        .set_compression(PqCompression::ZSTD(ZstdLevel::default()))
        .build();
    let mut part = PartWriter::create(dir, name, &rejects_schema(), props)?;
    part.write(&batch)?;
    part.commit(dir, name)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch() -> RecordBatch {
        let schema = rejects_schema();
        let col = |v: &str| -> ArrayRef { Arc::new(StringArray::from(vec![v])) };
        RecordBatch::try_new(
            schema,
            vec![col("s"), col("r"), col("d"), col("i"), col("t")],
        )
        .unwrap()
    }

    #[test]
    fn temporary_names_are_unique_and_never_reused() {
        let dir = tempfile::tempdir().unwrap();
        let props = || WriterProperties::builder().build();
        let a = PartWriter::create(dir.path(), "part-00000.parquet", &rejects_schema(), props())
            .unwrap();
        let b = PartWriter::create(dir.path(), "part-00000.parquet", &rejects_schema(), props())
            .unwrap();
        assert_ne!(a.tmp, b.tmp);
        // O_EXCL: an existing file is never opened for writing again.
        assert!(create_new(&a.tmp).is_err());
    }

    #[test]
    fn a_commit_that_fails_removes_its_temporary_file() {
        // As on a full disk, where finishing or syncing the file fails: here the rename does.
        let dir = tempfile::tempdir().unwrap();
        let props = WriterProperties::builder().build();
        let mut part =
            PartWriter::create(dir.path(), "a.parquet", &rejects_schema(), props).unwrap();
        part.write(&batch()).unwrap();
        let tmp = part.tmp.clone();
        let missing = dir.path().join("no-such-folder");
        assert!(part.commit(&missing, "a.parquet").is_err());
        assert!(
            !tmp.exists(),
            "the failed part's temporary file is left behind"
        );
    }

    #[test]
    fn a_dropped_writer_removes_its_temporary_file_and_a_committed_one_keeps_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let props = || WriterProperties::builder().build();
        let mut failed =
            PartWriter::create(dir.path(), "a.parquet", &rejects_schema(), props()).unwrap();
        failed.write(&batch()).unwrap();
        let tmp = failed.tmp.clone();
        assert!(tmp.exists());
        drop(failed);
        assert!(!tmp.exists());

        let mut ok =
            PartWriter::create(dir.path(), "b.parquet", &rejects_schema(), props()).unwrap();
        ok.write(&batch()).unwrap();
        let (bytes, sha) = ok.commit(dir.path(), "b.parquet").unwrap();
        let path = dir.path().join("b.parquet");
        assert_eq!(std::fs::metadata(&path).unwrap().len(), bytes);
        assert_eq!(file_sha256(&path).unwrap(), sha);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, vec!["b.parquet".to_string()]);
    }
}
