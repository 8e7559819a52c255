//! The hostile-input campaign of issue 17, kept as property tests on stable Rust: each
//! augmenter, the augmenter stage's row accounting, the pipeline file parser and planner, and
//! the Parquet source, on random and adversarial input (empty, huge, right-to-left, combining
//! marks, emoji and ZWJ sequences, control characters and NUL, invalid UTF-8 in Parquet, invalid
//! structure). Every property asserts no panic; those that move rows assert exact accounting.
//!
//! Cases are seeded (reproducible). `RETORT_FUZZ_CASES=N` runs N cases per property (scaled
//! for the dearer ones; the default is a few hundred), `RETORT_FUZZ_SEED=S` another campaign.
//! Each property prints how many cases it ran.

mod accounting;
mod augmenters;
mod end_to_end;
mod gen;
mod parquet_source;
mod pipeline_toml;
