//! The records a sink leaves on disk: one journal entry per committed part, and the final
//! manifest `_SUCCESS.json`, written last.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::batch::Tally;
use crate::error::{Error, Result};

/// One committed part, as recorded in `_progress/`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PartRecord {
    /// Part number within this shard.
    pub index: u32,
    /// Fingerprint of the run that wrote it.
    pub fingerprint: String,
    /// Its configuration fingerprint (empty in records of older versions).
    #[serde(default)]
    pub config_fingerprint: String,
    /// Data file name (relative to the output folder).
    pub file: String,
    /// Rows in the data file.
    pub rows: u64,
    /// Size of the data file in bytes.
    pub bytes: u64,
    /// SHA-256 of the data file.
    pub sha256: String,
    /// First and last sequence numbers the part covers.
    pub seq_first: u64,
    /// Last sequence number the part covers.
    pub seq_last: u64,
    /// Rejects file (relative), when rows were rejected.
    pub rejects_file: Option<String>,
    /// Rows in the rejects file.
    pub rejects: u64,
    /// Rows of the data file by `op`.
    pub rows_by_op: BTreeMap<String, u64>,
    /// Per-stage counts for the sequence numbers this part covers.
    pub stages: BTreeMap<String, Tally>,
}

/// A data file listed in the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileEntry {
    /// File name relative to the output folder.
    pub path: String,
    /// Rows.
    pub rows: u64,
    /// Bytes.
    pub bytes: u64,
    /// SHA-256 of the file.
    pub sha256: String,
}

/// The manifest written last: a folder with it is complete.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// Always `retort`.
    pub tool: String,
    /// Version of `retort` that wrote it.
    pub version: String,
    /// Pipeline name.
    pub pipeline: String,
    /// Hash of config, seed, shard, batch size and the content of the inputs and models.
    pub fingerprint: String,
    /// Hash of the configuration alone: a folder with the same one but another `fingerprint`
    /// was made from inputs or models that have changed since (empty in older manifests).
    #[serde(default)]
    pub config_fingerprint: String,
    /// Pipeline seed.
    pub seed: u64,
    /// `[index, count]` of the shard (index from 1), when sharded.
    pub shard: Option<[u32; 2]>,
    /// Rows in the data files.
    pub rows: u64,
    /// Rows in the rejects files.
    pub rows_rejected: u64,
    /// Rows by `op`.
    pub rows_by_op: BTreeMap<String, u64>,
    /// Data files, in order.
    pub files: Vec<FileEntry>,
    /// Rejects files, in order.
    pub rejects: Vec<FileEntry>,
    /// Per-stage counts: rows in, out by op, rejected by reason.
    pub stages: BTreeMap<String, Tally>,
    /// The resolved pipeline.
    pub config: serde_json::Value,
}

/// Writes `value` as pretty JSON to `path` atomically (temporary file, fsync, rename).
pub fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs_err::create_dir_all(dir)
        .map_err(|e| Error::runtime("cannot create folder").with_source(e))?;
    let tmp = dir.join(format!(
        "_tmp.{}",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ));
    let mut text = serde_json::to_string_pretty(value)
        .map_err(|e| Error::runtime("cannot encode JSON").with_source(e))?;
    text.push('\n');
    {
        use std::io::Write;
        let mut f = fs_err::File::create(&tmp)
            .map_err(|e| Error::runtime("cannot write").with_source(e))?;
        f.write_all(text.as_bytes())
            .and_then(|_| f.sync_all())
            .map_err(|e| Error::runtime("cannot write").with_source(e))?;
    }
    fs_err::rename(&tmp, path).map_err(|e| Error::runtime("cannot commit").with_source(e))?;
    Ok(())
}

/// Reads a JSON file written by [`write_json_atomic`].
pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let text =
        fs_err::read_to_string(path).map_err(|e| Error::runtime("cannot read").with_source(e))?;
    serde_json::from_str(&text).map_err(|e| {
        Error::user(format!("`{}` is not a valid retort record", path.display())).with_source(e)
    })
}
