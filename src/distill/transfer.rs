//! Transfer sets built without any data beyond the labelled rows: inputs a teacher labels so
//! that a student sees what the teacher knows about words its training rows never show.
//!
//! The WordNet transfer set is a seeded sample of WordNet's example sentences
//! ([`crate::augment::wordnet::example_sentences`]). It is domain-free English, not in-domain
//! text: what it carries is vocabulary (tens of thousands of words in context), which a
//! student trained from scratch on a few hundred rows lacks most.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray};
use parquet::arrow::ArrowWriter;

use crate::augment::wordnet::example_sentences;
use crate::distill::dev_split::normalized;
use crate::error::{Error, Result};

/// Default number of WordNet sentences in the `distill-wordnet` transfer set: about as many as
/// the in-domain pools of docs/RESULTS.md (3,600 to 6,900 rows), fixed before any measurement.
pub const DEFAULT_WORDNET_SENTENCES: usize = 6000;

/// `n` WordNet example sentences from `wordnet_dir`, chosen by a seeded hash of their text
/// (the same sample on every machine), none equal to a text of `exclude` (compared
/// [`normalized`]); fewer when WordNet has fewer.
pub fn wordnet_sample(
    wordnet_dir: &Path,
    n: usize,
    seed: u64,
    exclude: &HashSet<String>,
) -> Result<Vec<String>> {
    let mut keyed: Vec<(u64, String)> = example_sentences(wordnet_dir)?
        .into_iter()
        .filter(|s| !exclude.contains(&normalized(s)))
        .map(|s| (xxhash_rust::xxh3::xxh3_64_with_seed(s.as_bytes(), seed), s))
        .collect();
    keyed.sort_unstable();
    keyed.truncate(n);
    Ok(keyed.into_iter().map(|(_, s)| s).collect())
}

/// Writes `texts` as a Parquet file with columns `id` (`wordnet-<i>`) and `text` at `path`,
/// unless the file already holds exactly these bytes (so that a rerun leaves its identity,
/// and every step that read it, up to date).
pub fn write_text_pool(path: &Path, texts: &[String]) -> Result<()> {
    let ids: Vec<String> = (0..texts.len()).map(|i| format!("wordnet-{i}")).collect();
    let batch = RecordBatch::try_from_iter([
        ("id", Arc::new(StringArray::from(ids)) as ArrayRef),
        (
            "text",
            Arc::new(StringArray::from(texts.to_vec())) as ArrayRef,
        ),
    ])
    .map_err(|e| Error::runtime("cannot build the transfer set's rows").with_source(e))?;
    let mut bytes = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut bytes, batch.schema(), None)
        .map_err(|e| Error::runtime("cannot encode the transfer set").with_source(e))?;
    writer
        .write(&batch)
        .and_then(|_| writer.close().map(|_| ()))
        .map_err(|e| Error::runtime("cannot encode the transfer set").with_source(e))?;
    if fs_err::read(path).is_ok_and(|old| old == bytes) {
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        fs_err::create_dir_all(dir)
            .map_err(|e| Error::runtime("cannot create folder").with_source(e))?;
    }
    let tmp = path.with_extension("parquet.tmp");
    fs_err::write(&tmp, &bytes)
        .and_then(|_| fs_err::rename(&tmp, path))
        .map_err(|e| Error::runtime("cannot write the transfer set").with_source(e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::augment::wordnet::DEFAULT_WORDNET_DIR;
    use crate::testing::{available, Dep};

    #[test]
    fn the_sample_is_seeded_and_never_holds_an_excluded_text() {
        if !available(Dep::WordNet) {
            return;
        }
        let dir = Path::new(DEFAULT_WORDNET_DIR);
        let a = wordnet_sample(dir, 500, 7, &HashSet::new()).unwrap();
        assert_eq!(a.len(), 500);
        assert_eq!(a, wordnet_sample(dir, 500, 7, &HashSet::new()).unwrap());
        let b = wordnet_sample(dir, 500, 8, &HashSet::new()).unwrap();
        assert!(
            a.iter().filter(|s| b.contains(s)).count() < 100,
            "another seed, another sample"
        );
        let exclude: HashSet<String> = a[..10].iter().map(|s| normalized(s)).collect();
        let c = wordnet_sample(dir, 500, 7, &exclude).unwrap();
        assert!(c.iter().all(|s| !exclude.contains(&normalized(s))));
        assert_eq!(&c[..490], &a[10..]);
    }

    #[test]
    fn a_pool_file_is_rewritten_only_when_its_rows_change() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pool.parquet");
        let texts = vec![
            "a happy outcome".to_string(),
            "the pursuit of love".to_string(),
        ];
        write_text_pool(&path, &texts).unwrap();
        let first = fs_err::metadata(&path).unwrap().modified().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        write_text_pool(&path, &texts).unwrap();
        assert_eq!(fs_err::metadata(&path).unwrap().modified().unwrap(), first);
        let data = crate::distill::data::load(path.to_str().unwrap(), "text", "label", None);
        let rows = data.unwrap();
        let read: Vec<&str> = rows.examples.iter().map(|e| e.text.as_str()).collect();
        assert_eq!(read, ["a happy outcome", "the pursuit of love"]);
        write_text_pool(&path, &texts[..1]).unwrap();
        assert_ne!(fs_err::metadata(&path).unwrap().modified().unwrap(), first);
    }
}
