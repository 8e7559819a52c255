//! Test helpers: tiny seeded Hugging Face llama and qwen2 folders, the SmolLM2 asset, and
//! candle-transformers' own implementations of them, which retort's decoder is checked against.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_transformers::models::quantized_llama::ModelWeights;
use candle_transformers::models::{llama, qwen2};

/// The word-level vocabulary of the tiny folders (id = position).
pub const WORDS: [&str; 18] = [
    "<unk>", "<s>", "</s>", "the", "a", "film", "was", "good", "bad", "very", "plot", "and", "it",
    "is", "not", ".", "great", "dull",
];

fn config(arch: &str) -> serde_json::Value {
    let v = WORDS.len();
    match arch {
        "llama" | "llama3" => {
            let mut c = serde_json::json!({
                "model_type": "llama", "hidden_size": 16, "intermediate_size": 32,
                "vocab_size": v, "num_hidden_layers": 2, "num_attention_heads": 2,
                "num_key_value_heads": 1, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
                "bos_token_id": 1, "eos_token_id": 2, "max_position_embeddings": 64,
                "tie_word_embeddings": false
            });
            if arch == "llama3" {
                // Wavelengths 6.3, 63, 628 and 6283 positions: one kept, one blended, two
                // slowed down.
                c["rope_scaling"] = serde_json::json!({
                    "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                    "high_freq_factor": 4.0, "original_max_position_embeddings": 64
                });
            }
            c
        }
        _ => serde_json::json!({
            "model_type": "qwen2", "hidden_size": 16, "intermediate_size": 32,
            "vocab_size": v, "num_hidden_layers": 2, "num_attention_heads": 2,
            "num_key_value_heads": 1, "max_position_embeddings": 64, "sliding_window": 64,
            "max_window_layers": 2, "tie_word_embeddings": true, "rope_theta": 10000.0,
            "rms_norm_eps": 1e-6, "use_sliding_window": false, "hidden_act": "silu",
            "bos_token_id": 1, "eos_token_id": 2
        }),
    }
}

/// Writes a tiny Hugging Face folder of `arch` (`llama`, `llama3`: llama with Llama 3's rope
/// scaling, or `qwen2`) with seeded random weights and a word-level tokenizer.
pub fn tiny_folder(dir: &Path, arch: &str) {
    let vocab: serde_json::Map<String, serde_json::Value> = WORDS
        .iter()
        .enumerate()
        .map(|(i, w)| (w.to_string(), serde_json::json!(i)))
        .collect();
    let tokenizer = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": null, "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": null, "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"}
    });
    std::fs::write(dir.join("tokenizer.json"), tokenizer.to_string()).unwrap();
    let config = config(arch);
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    // candle-transformers' models name the variables; they are then filled from a seed.
    let varmap = candle_nn::VarMap::new();
    let vb = crate::models::init::const_vb(&varmap, &Device::Cpu);
    Reference::build(&config, vb);
    crate::models::init::reinit(&varmap, 11).unwrap();
    varmap.save(dir.join("model.safetensors")).unwrap();
}

/// The SmolLM2 GGUF from the asset folder, or `None` (the skip reported by
/// [`crate::testing::available`]) when `make assets` has not fetched it.
pub fn smollm2_path() -> Option<std::path::PathBuf> {
    crate::testing::available(crate::testing::Dep::SmolLm2)
        .then(crate::assets::smollm2_gguf)
        .flatten()
}

/// candle-transformers' implementation of a model: logits of the last position only.
pub enum Reference {
    /// Llama with its cache.
    Llama(llama::Llama, llama::Cache),
    /// Qwen2 (keeps its own cache).
    Qwen2(qwen2::ModelForCausalLM),
    /// Quantized llama from a GGUF file (keeps its own cache).
    Gguf(ModelWeights),
}

impl Reference {
    fn build(config: &serde_json::Value, vb: candle_nn::VarBuilder) -> Reference {
        if config["model_type"] == "llama" {
            let cfg: llama::LlamaConfig = serde_json::from_value(config.clone()).unwrap();
            let cfg = cfg.into_config(false);
            let cache = llama::Cache::new(true, vb.dtype(), &cfg, vb.device()).unwrap();
            Reference::Llama(llama::Llama::load(vb, &cfg).unwrap(), cache)
        } else {
            let cfg: qwen2::Config = serde_json::from_value(config.clone()).unwrap();
            Reference::Qwen2(qwen2::ModelForCausalLM::new(&cfg, vb).unwrap())
        }
    }

    /// Loads a GGUF file of llama architecture (CPU).
    pub fn load_gguf(path: &Path) -> Reference {
        let mut f = std::fs::File::open(path).unwrap();
        let content = candle_core::quantized::gguf_file::Content::read(&mut f).unwrap();
        Reference::Gguf(ModelWeights::from_gguf(content, &mut f, &Device::Cpu).unwrap())
    }

    /// Loads the folder `dir` (f32, CPU).
    pub fn load(dir: &Path) -> Reference {
        let text = std::fs::read_to_string(dir.join("config.json")).unwrap();
        let config: serde_json::Value = serde_json::from_str(&text).unwrap();
        let files = [dir.join("model.safetensors")];
        // SAFETY: a test's own file, not changed while it is mapped.
        let vb = unsafe {
            candle_nn::VarBuilder::from_mmaped_safetensors(&files, DType::F32, &Device::Cpu)
        }
        .unwrap();
        Reference::build(&config, vb)
    }

    /// Feeds `ids` one token at a time and returns the logits after each.
    pub fn position_logits(&mut self, ids: &[u32]) -> Vec<Vec<f32>> {
        ids.iter()
            .enumerate()
            .map(|(pos, &id)| {
                let x = Tensor::new(&[id], &Device::Cpu)
                    .unwrap()
                    .unsqueeze(0)
                    .unwrap();
                let logits = match self {
                    Reference::Llama(m, cache) => m.forward(&x, pos, cache).unwrap(),
                    Reference::Qwen2(m) => m.forward(&x, pos).unwrap(),
                    Reference::Gguf(m) => m.forward(&x, pos).unwrap(),
                };
                logits.flatten_all().unwrap().to_vec1().unwrap()
            })
            .collect()
    }
}

/// Largest absolute difference between two equally long lists of logits rows.
pub fn max_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .flatten()
        .zip(b.iter().flatten())
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max)
}
