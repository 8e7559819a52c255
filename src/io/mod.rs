//! Reading and writing Parquet: the source, the sink with its manifest, input file listing.

pub mod fault;
pub mod files;
pub mod hash_cache;
pub mod identity;
pub mod lock;
pub mod manifest;
pub mod sink;
pub mod source;
