//! Finding and loading the causal LM of a stage (`generate`, `lm_teacher`): the `model` key,
//! or the SmolLM2 asset, on the run's device.

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::lm::causal::CausalLm;
use crate::models::device::Compute;
use crate::stage::kind::BuildContext;

/// A stage's causal LM, the path it was loaded from and the device it runs on.
pub struct StageLm {
    /// The model file or folder.
    pub path: PathBuf,
    /// The loaded model.
    pub lm: CausalLm,
    /// The run's opened device and precision.
    pub compute: Compute,
}

/// Loads `model` (a GGUF file or a Hugging Face folder), or the SmolLM2 asset when it is
/// `None`, on the run's device. Errors name the stage.
pub fn load_stage_lm(model: Option<&str>, cx: &BuildContext<'_>) -> Result<StageLm> {
    let ctx = |e: Error| e.context(format!("stage `{}`", cx.stage));
    let path = match model {
        Some(m) => PathBuf::from(m),
        None => crate::assets::require_smollm2().map_err(ctx)?,
    };
    let compute = cx.settings.compute().map_err(ctx)?;
    let lm = CausalLm::load(&path, &compute).map_err(ctx)?;
    Ok(StageLm { path, lm, compute })
}
