//! Translation engines for back-translation.

pub mod apertium;
pub mod backtranslate;
pub(crate) mod copies;
pub mod lines;
pub mod marian;
pub mod tiny;
