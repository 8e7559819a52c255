//! Row ids that occur more than once in a source's input.
//!
//! Every augmented copy takes its id and its random stream from its row's id, so two rows with
//! one id would give copies that share both. The first row with a given id (in the order of
//! the files and their rows) is read as usual; every later one goes to the rejects as
//! `duplicate_id`. The decision is made from a scan of the id column of every input file before
//! any row is read, so it does not depend on the shard, the batch size or on where a run was
//! resumed.

use std::collections::{HashMap, HashSet};
use std::fs::File;

use arrow::array::{Array, StringArray};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;
use xxhash_rust::xxh3::xxh3_64;

use super::columns::to_utf8;
use super::InputFile;
use crate::error::{Error, Result};

/// Where a row is: (file index, row index within the file).
type RowAt = (usize, u64);

/// The ids that occur more than once, each with the row that keeps it.
#[derive(Debug, Default)]
pub(super) struct DuplicateIds {
    first: HashMap<String, RowAt>,
}

impl DuplicateIds {
    /// Scans column `id_column` of every file. Ids are first compared by a 64-bit hash; the
    /// few whose hash repeats are then compared as strings in a second scan, so a hash
    /// collision never rejects a row.
    pub(super) fn scan(files: &[InputFile], id_column: &str) -> Result<Self> {
        let mut seen: HashSet<u64> = HashSet::new();
        let mut repeated: HashSet<u64> = HashSet::new();
        for_each_id(files, id_column, |_, id| {
            let h = xxh3_64(id.as_bytes());
            if !seen.insert(h) {
                repeated.insert(h);
            }
        })?;
        drop(seen);
        let mut dups = DuplicateIds::default();
        if repeated.is_empty() {
            return Ok(dups);
        }
        let mut count: HashMap<String, (RowAt, u32)> = HashMap::new();
        for_each_id(files, id_column, |at, id| {
            if repeated.contains(&xxh3_64(id.as_bytes())) {
                count.entry(id.to_string()).or_insert((at, 0)).1 += 1;
            }
        })?;
        dups.first = count
            .into_iter()
            .filter(|(_, (_, n))| *n > 1)
            .map(|(id, (at, _))| (id, at))
            .collect();
        Ok(dups)
    }

    /// Whether row `row` of file `file`, whose id is `id`, repeats an earlier row's id; then
    /// returns where that earlier row is.
    pub(super) fn earlier(&self, id: &str, file: usize, row: u64) -> Option<RowAt> {
        if self.first.is_empty() {
            return None;
        }
        self.first
            .get(id)
            .copied()
            .filter(|&first| first != (file, row))
    }

    /// How many distinct ids occur more than once.
    pub(super) fn len(&self) -> usize {
        self.first.len()
    }
}

/// Calls `f` with the place and value of every non-null id, file by file, row by row.
fn for_each_id(files: &[InputFile], id_column: &str, mut f: impl FnMut(RowAt, &str)) -> Result<()> {
    for (fi, file) in files.iter().enumerate() {
        let shown = file.path.display().to_string();
        let cannot_read = |e: parquet::errors::ParquetError| {
            Error::user(format!(
                "cannot read the id column `{id_column}` of `{shown}`"
            ))
            .with_source(e)
            .with_hint("the file may be corrupt or truncated")
        };
        let handle = File::open(&file.path)
            .map_err(|e| Error::user(format!("cannot open input `{shown}`")).with_source(e))?;
        let builder = ParquetRecordBatchReaderBuilder::new_with_metadata(handle, file.meta.clone());
        let Ok(index) = builder.schema().index_of(id_column) else {
            continue;
        };
        let mask = ProjectionMask::roots(builder.parquet_schema(), [index]);
        let reader = builder
            .with_projection(mask)
            .with_batch_size(65_536)
            .build()
            .map_err(cannot_read)?;
        let mut row = 0u64;
        for batch in reader {
            let batch = batch.map_err(|e| cannot_read(e.into()))?;
            let ids = to_utf8(batch.column(0), id_column, &shown)?;
            let ids = ids
                .as_any()
                .downcast_ref::<StringArray>()
                .expect("to_utf8 gives strings");
            for i in 0..ids.len() {
                if ids.is_valid(i) {
                    f((fi, row + i as u64), ids.value(i));
                }
            }
            row += ids.len() as u64;
        }
    }
    Ok(())
}
