//! Language models: a causal LM (GGUF) and what it is used for: pseudo-data (`generate`) and
//! compact soft labels for language-model distillation (top-k and sampled, `lm_teacher`).

pub mod causal;
pub mod decoder;
pub mod generate;
pub mod gguf_tokenizer;
pub mod lm_teacher;
pub mod pseudo;
pub mod resolve;
pub mod soft_labels;
#[cfg(test)]
mod tiny_lm;
