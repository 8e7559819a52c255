//! Pipelines: the file format ([`spec`]), pipelines built in code ([`build`]), validation into
//! a graph ([`plan`]) and execution of a plan through an [`executor::Executor`] ([`local`]
//! runs it in this process, one thread per stage).

pub mod build;
pub mod executor;
pub mod local;
pub mod plan;
pub mod spec;
mod stage_loop;
