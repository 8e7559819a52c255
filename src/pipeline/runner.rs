//! Where callers found the run's options, report and fingerprint before the executor seam
//! ([`crate::pipeline::executor`]); a plan runs through an [`Executor`], locally
//! [`crate::pipeline::local::LocalExecutor`].

pub use crate::pipeline::executor::{fingerprint, Executor, RunOptions, RunReport, StageSummary};
pub use crate::pipeline::local::LocalExecutor;
