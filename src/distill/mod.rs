//! Knowledge distillation: soft labels from a teacher, the distillation loss, the trainer and
//! evaluation.

pub mod data;
pub mod loss;
pub mod metrics;
pub mod selfdistill;
pub mod teacher;
pub mod train;
