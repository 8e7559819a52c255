//! Pipelines: the file format ([`spec`]), validation into a graph ([`plan`]) and execution
//! ([`runner`]).

pub mod plan;
pub mod runner;
pub mod spec;
