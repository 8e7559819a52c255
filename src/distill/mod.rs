//! Knowledge distillation: soft labels from a teacher, the distillation loss, the trainer and
//! evaluation.

pub mod calibrate;
pub mod choose;
pub mod crossfit;
pub mod data;
pub mod dev_split;
pub mod experiment;
pub mod loss;
pub mod metrics;
pub mod plot;
pub mod results;
pub mod rows_file;
pub mod selfdistill;
pub mod stats;
pub mod teacher;
pub mod train;
pub mod train_config;
pub mod train_stage;
pub mod transfer;
