//! Translation engines for back-translation.

pub mod apertium;
pub mod backtranslate;
