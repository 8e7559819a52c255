//! Language-model distillation: compact soft labels (top-k and sampled) and their math.
//! The `lm_teacher` stage that writes them from a causal LM is not built yet.

pub mod causal;
pub mod gguf_tokenizer;
pub mod soft_labels;
