//! The one integration-test binary (linking is slow on small machines: keep one).

mod accounting;
mod bad_input;
mod cli;
mod common;
mod contract;
mod crossfit;
mod determinism;
mod distill;
mod exit_codes;
mod faults;
mod fixtures;
mod full_disk;
mod fuzz;
mod generate;
mod identity;
mod pipelines;
mod recipe;
mod resume;
mod training_cli;
mod translate;
mod writers;
