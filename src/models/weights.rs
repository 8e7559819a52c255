//! Tensors of a checkpoint's `model.safetensors`: reading them, and copying them into a
//! model's variables under Hugging Face names (so a BERT folder from other tools loads too).

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use candle_nn::VarMap;

use crate::error::{io_error, Error, Result};

/// Reads every tensor of a safetensors file onto `device`, converted to f32.
pub fn read_safetensors(path: &Path, device: &Device) -> Result<HashMap<String, Tensor>> {
    let bytes =
        fs_err::read(path).map_err(|e| io_error(format!("cannot read `{}`", path.display()), e))?;
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| {
        Error::user(format!(
            "`{}` is not a valid safetensors file",
            path.display()
        ))
        .with_source(e)
    })?;
    let mut out = HashMap::new();
    for (name, view) in st.tensors() {
        let t = candle_core::safetensors::Load::load(&view, device)?;
        out.insert(name, t.to_dtype(candle_core::DType::F32)?);
    }
    Ok(out)
}

/// Names under which a Hugging Face file may store our variable `name`: as is, without the
/// `bert.` prefix, and with the old `LayerNorm.gamma`/`LayerNorm.beta` names.
pub fn hf_candidates(name: &str) -> Vec<String> {
    let mut base = vec![name.to_string()];
    if let Some(s) = name.strip_prefix("bert.") {
        base.push(s.to_string());
    }
    let mut out = base.clone();
    for b in &base {
        if let Some(s) = b.strip_suffix("LayerNorm.weight") {
            out.push(format!("{s}LayerNorm.gamma"));
        }
        if let Some(s) = b.strip_suffix("LayerNorm.bias") {
            out.push(format!("{s}LayerNorm.beta"));
        }
    }
    out
}

/// Copies Hugging Face weights into `varmap` (built by an architecture's network, e.g.
/// [`super::bert::BertClassifier::new`]). Every variable
/// must be found (see [`hf_candidates`]) with the right shape, except `bert.pooler.*` and
/// `classifier.*` when `allow_missing_head` (they keep their seeded values). Returns the names
/// that were not found. A classifier with another number of classes is a user error.
pub fn load_hf_weights(
    varmap: &VarMap,
    weights: &HashMap<String, Tensor>,
    allow_missing_head: bool,
    source: &str,
) -> Result<Vec<String>> {
    let data = varmap.data().lock().expect("varmap lock poisoned");
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    let mut missing = Vec::new();
    for name in names {
        let var = &data[name];
        let found = hf_candidates(name)
            .into_iter()
            .find_map(|k| weights.get(&k).map(|t| (k, t)));
        match found {
            Some((key, t)) => {
                if t.dims() != var.dims() {
                    if name == "classifier.weight" || name == "classifier.bias" {
                        return Err(Error::user(format!(
                            "class-count mismatch: `{key}` in {source} has shape {:?}, the model \
                             has {} classes",
                            t.dims(),
                            var.dims()[0]
                        ))
                        .with_hint("give as many label names as the checkpoint has classes"));
                    }
                    return Err(Error::user(format!(
                        "shape mismatch for `{key}` in {source}: {:?} in the file, {:?} expected \
                         from config.json",
                        t.dims(),
                        var.dims()
                    )));
                }
                var.set(&t.to_dtype(var.dtype())?.to_device(var.device())?)?;
            }
            None => {
                let head = name.starts_with("bert.pooler.") || name.starts_with("classifier.");
                if allow_missing_head && head {
                    missing.push(name.clone());
                } else {
                    return Err(Error::user(format!(
                        "tensor `{name}` is missing from {source}"
                    )));
                }
            }
        }
    }
    Ok(missing)
}
