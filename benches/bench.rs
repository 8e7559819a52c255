//! Benchmarks for `retort` (run by `scripts/bench.sh`, i.e. `make bench`).
//!
//! `harness = false`: this is a plain program. Modes:
//!
//! * `cargo bench --bench bench` or `cargo bench --bench bench -- aug [CORPUS]`: single-thread
//!   throughput of every augmenter over the `text` column of CORPUS (default: the SST-2 train
//!   set under `../shared/datasets` when present, else `fixtures/reviews.parquet`). Prints
//!   markdown table rows (`| benchmark | result | target | notes |`) on stdout.
//! * `cargo bench --bench bench -- rows PATH`: prints the number of non-null texts of PATH.
//! * `cargo bench --bench bench -- gen-corpus N PATH [SOURCE]`: writes an N-row Parquet file
//!   (columns `id`, `text`, `label`; zstd; row groups of 65,536 rows) cycling the sentences
//!   of SOURCE (same default as above) with unique ids. Progress goes to stderr.

use std::fs::File;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Array, ArrayRef, Int64Array, Int64Builder, StringArray, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use rand::SeedableRng;

use retort::augment::eda::{Eda, EdaConfig};
use retort::augment::perturb::{Perturb, PerturbConfig, PerturbMode};
use retort::augment::shuffle::{Shuffle, ShuffleConfig};
use retort::augment::synonym::{Synonym, SynonymConfig};
use retort::augment::tokens::Doc;
use retort::augment::{Augmenter, RowRng};
use retort::seed;

type Res<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const SST2: &str = "../shared/datasets/sst2/train_full.parquet";
const FIXTURE: &str = "fixtures/reviews.parquet";
/// Copies per input row, as in `pipelines/eda.toml` with `--var copies=4`.
const COPIES: u32 = 4;
/// Minimum measuring time per augmenter.
const MIN_TIME: Duration = Duration::from_millis(1500);
const ROW_GROUP: usize = 65_536;

fn default_corpus() -> PathBuf {
    if Path::new(SST2).is_file() {
        PathBuf::from(SST2)
    } else {
        PathBuf::from(FIXTURE)
    }
}

/// The `text` column (and the `label` column when it is an integer column) of a Parquet file.
fn read_corpus(path: &Path) -> Res<(Vec<String>, Option<Vec<i64>>)> {
    let file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)?.build()?;
    let mut texts = Vec::new();
    let mut labels: Option<Vec<i64>> = Some(Vec::new());
    for batch in reader {
        let batch = batch?;
        let col = batch
            .column_by_name("text")
            .ok_or_else(|| format!("{}: no `text` column", path.display()))?;
        let col = arrow::compute::cast(col, &DataType::Utf8)?;
        let col = col
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or("text column is not a string column")?;
        for i in 0..col.len() {
            if col.is_valid(i) {
                texts.push(col.value(i).to_string());
            }
        }
        // Labels only when every row has one; otherwise they are made up by the generator.
        labels = match (labels, batch.column_by_name("label")) {
            (Some(mut l), Some(c)) if c.data_type().is_integer() && c.null_count() == 0 => {
                let c = arrow::compute::cast(c, &DataType::Int64)?;
                let c = c
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .ok_or("label cast")?;
                if c.len() == col.len() && col.null_count() == 0 {
                    l.extend(c.values().iter().copied());
                    Some(l)
                } else {
                    None
                }
            }
            _ => None,
        };
    }
    if texts.is_empty() {
        return Err(format!("{}: no text rows", path.display()).into());
    }
    Ok((texts, labels))
}

fn gen_corpus(n: usize, out: &Path, source: &Path) -> Res<()> {
    let (texts, labels) = read_corpus(source)?;
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("text", DataType::Utf8, false),
        Field::new("label", DataType::Int64, false),
    ]));
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_max_row_group_row_count(Some(ROW_GROUP))
        .build();
    let tmp = out.with_extension("parquet.tmp");
    let mut writer = ArrowWriter::try_new(File::create(&tmp)?, schema.clone(), Some(props))?;
    let start = Instant::now();
    let mut done = 0usize;
    let mut last_report = Instant::now();
    while done < n {
        let m = (n - done).min(ROW_GROUP);
        let mut ids = StringBuilder::with_capacity(m, m * 12);
        let mut txt = StringBuilder::with_capacity(m, m * 110);
        let mut lab = Int64Builder::with_capacity(m);
        for r in done..done + m {
            let k = r % texts.len();
            ids.append_value(format!("g{r:09}"));
            txt.append_value(&texts[k]);
            lab.append_value(labels.as_ref().map_or((r % 2) as i64, |l| l[k]));
        }
        let cols: Vec<ArrayRef> = vec![
            Arc::new(ids.finish()),
            Arc::new(txt.finish()),
            Arc::new(lab.finish()),
        ];
        writer.write(&RecordBatch::try_new(schema.clone(), cols)?)?;
        done += m;
        if last_report.elapsed() > Duration::from_secs(5) || done == n {
            eprintln!(
                "gen-corpus: {done}/{n} rows ({:.1}s)",
                start.elapsed().as_secs_f64()
            );
            last_report = Instant::now();
        }
    }
    writer.close()?;
    std::fs::rename(&tmp, out)?;
    Ok(())
}

/// Groups digits by thousands: `45000` -> `45,000`.
fn thousands(x: f64) -> String {
    let s = format!("{:.0}", x);
    let (sign, digits) = s.strip_prefix('-').map_or(("", s.as_str()), |d| ("-", d));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{sign}{out}")
}

fn bench_augmenters(corpus: &Path) -> Res<()> {
    let (texts, _) = read_corpus(corpus)?;
    let words: usize = texts.iter().map(|t| Doc::new(t).word_count()).sum();
    let avg_words = words as f64 / texts.len() as f64;
    // Row seeds as the pipeline derives them (stage `eda`, pipeline seed 17), computed up front.
    let stage_seed = seed::stage_seed(17, "eda");
    let row_seeds: Vec<u64> = (0..texts.len())
        .map(|i| seed::row_seed(stage_seed, &format!("g{i:09}")))
        .collect();
    let name = corpus.display();
    eprintln!(
        "bench: {} sentences from {name}, {avg_words:.1} words on average",
        texts.len()
    );

    // WordNet load (the table is cached per directory afterwards, so only the first counts).
    let t = Instant::now();
    let synonym = Synonym::new(&SynonymConfig::default())?;
    let wordnet_load = t.elapsed();
    println!(
        "| WordNet load, in-process | {:.2} s | | `SynonymTable::load` of /usr/share/wordnet, first use |",
        wordnet_load.as_secs_f64()
    );

    let eda_cfg = EdaConfig {
        alpha: 0.1,
        ..Default::default()
    };
    let cases: Vec<(&str, Box<dyn Augmenter>)> = vec![
        ("synonym", Box::new(synonym)),
        (
            "perturb insert",
            Box::new(Perturb::new(&PerturbConfig::new(PerturbMode::Insert))?),
        ),
        (
            "perturb delete",
            Box::new(Perturb::new(&PerturbConfig::new(PerturbMode::Delete))?),
        ),
        (
            "perturb swap",
            Box::new(Perturb::new(&PerturbConfig::new(PerturbMode::Swap))?),
        ),
        ("shuffle", Box::new(Shuffle::new(&ShuffleConfig::default()))),
        ("eda (alpha=0.1)", Box::new(Eda::new(&eda_cfg)?)),
    ];

    // Tokenizing alone, for reference.
    {
        let start = Instant::now();
        let mut rows = 0u64;
        let mut w = 0usize;
        while start.elapsed() < MIN_TIME {
            for t in &texts {
                w += Doc::new(black_box(t)).word_count();
            }
            rows += texts.len() as u64;
        }
        black_box(w);
        let secs = start.elapsed().as_secs_f64();
        println!(
            "| tokenize only (`Doc::new`), 1 thread | {} rows/s | | reference for the rows below |",
            thousands(rows as f64 / secs)
        );
    }

    for (label, aug) in &cases {
        // One warm-up pass, then whole passes until MIN_TIME has passed.
        let mut made = 0u64;
        let mut attempts = 0u64;
        let mut rows = 0u64;
        let mut out_bytes = 0usize;
        let pass = |made: &mut u64, attempts: &mut u64, out_bytes: &mut usize| {
            for (t, &row_seed) in texts.iter().zip(&row_seeds) {
                let doc = Doc::new(black_box(t));
                for c in 0..COPIES {
                    let mut rng = RowRng::seed_from_u64(seed::copy_seed(row_seed, c));
                    if let Some(a) = aug.augment_copy(&doc, c, row_seed, &mut rng) {
                        *made += 1;
                        *out_bytes += a.text.len() + a.params.len();
                    }
                    *attempts += 1;
                }
            }
        };
        pass(&mut 0, &mut 0, &mut 0);
        let start = Instant::now();
        while start.elapsed() < MIN_TIME {
            pass(&mut made, &mut attempts, &mut out_bytes);
            rows += texts.len() as u64;
        }
        black_box(out_bytes);
        let secs = start.elapsed().as_secs_f64();
        println!(
            "| {label}, 1 thread | {} copies/s ({} rows/s at {COPIES} copies) | | {:.0}% of copies made; {:.1} s measured |",
            thousands(attempts as f64 / secs),
            thousands(rows as f64 / secs),
            100.0 * made as f64 / attempts.max(1) as f64,
            secs
        );
        eprintln!("bench: {label} done");
    }
    Ok(())
}

fn main() {
    // `cargo bench` passes `--bench` (and maybe other flags): keep only the positional args.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let result = match args.first().map(String::as_str) {
        None => bench_augmenters(&default_corpus()),
        Some("aug") => bench_augmenters(&args.get(1).map_or_else(default_corpus, PathBuf::from)),
        Some("rows") => match args.get(1) {
            Some(path) => read_corpus(Path::new(path)).map(|(t, _)| println!("{}", t.len())),
            None => Err("usage: rows PATH".into()),
        },
        Some("gen-corpus") => {
            let n = args.get(1).and_then(|s| s.replace('_', "").parse::<usize>().ok());
            match (n, args.get(2)) {
                (Some(n), Some(path)) if n > 0 => gen_corpus(
                    n,
                    Path::new(path),
                    &args.get(3).map_or_else(default_corpus, PathBuf::from),
                ),
                _ => Err("usage: gen-corpus N PATH [SOURCE]".into()),
            }
        }
        Some(other) => Err(format!(
            "unknown mode `{other}` (expected `aug [CORPUS]`, `rows PATH` or `gen-corpus N PATH [SOURCE]`)"
        )
        .into()),
    };
    if let Err(e) = result {
        eprintln!("bench: error: {e}");
        std::process::exit(1);
    }
}
