//! Translation engines for back-translation.

pub mod apertium;
pub mod backtranslate;
pub mod marian;
pub mod tiny;
