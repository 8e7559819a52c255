//! `retort export`: rows of Parquet output as JSON lines, for `jq`, scripts, and readers
//! without a Parquet library.

use std::io::Write;

use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;

use retort::error::{io_error, Error, Result};
use retort::io::files::resolve_inputs;

/// Writes the rows of every Parquet file under `path` (a file, folder or glob; parts in name
/// order) as JSON objects, one per line. `columns` picks and orders columns (all when
/// empty); `limit` stops after that many rows.
pub fn export(
    path: &str,
    columns: &[String],
    limit: Option<usize>,
    out: impl Write,
) -> Result<u64> {
    let files = resolve_inputs(path)?;
    let mut writer = arrow::json::LineDelimitedWriter::new(out);
    let mut written = 0u64;
    for file in files {
        if limit.is_some_and(|l| written as usize >= l) {
            break;
        }
        let shown = file.display().to_string();
        let f =
            fs_err::File::open(&file).map_err(|e| io_error(format!("cannot open `{shown}`"), e))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(f.into_parts().0)
            .map_err(|e| Error::user(format!("`{shown}` is not a Parquet file")).with_source(e))?;
        let builder = if columns.is_empty() {
            builder
        } else {
            let schema = builder.parquet_schema();
            let arrow_schema = builder.schema().clone();
            let mut roots = Vec::new();
            for c in columns {
                let i = arrow_schema.index_of(c).map_err(|_| {
                    let names: Vec<&str> = arrow_schema
                        .fields()
                        .iter()
                        .map(|f| f.name().as_str())
                        .collect();
                    Error::user(format!("`{shown}` has no column `{c}`"))
                        .with_hint(format!("its columns: {}", names.join(", ")))
                })?;
                roots.push(i);
            }
            let mask = ProjectionMask::roots(schema, roots);
            builder.with_projection(mask)
        };
        let reader = builder
            .build()
            .map_err(|e| Error::user(format!("cannot read `{shown}`")).with_source(e))?;
        for batch in reader {
            let batch =
                batch.map_err(|e| Error::user(format!("cannot read `{shown}`")).with_source(e))?;
            let batch = if columns.is_empty() {
                batch
            } else {
                // The projection keeps file order; put the columns in the order asked.
                let order: Vec<usize> = columns
                    .iter()
                    .map(|c| batch.schema().index_of(c).expect("projected"))
                    .collect();
                batch.project(&order)?
            };
            let take = match limit {
                Some(l) => (l - written as usize).min(batch.num_rows()),
                None => batch.num_rows(),
            };
            writer
                .write(&batch.slice(0, take))
                .map_err(|e| Error::runtime("cannot write JSON").with_source(e))?;
            written += take as u64;
            if limit.is_some_and(|l| written as usize >= l) {
                break;
            }
        }
    }
    writer
        .finish()
        .map_err(|e| Error::runtime("cannot write JSON").with_source(e))?;
    Ok(written)
}
