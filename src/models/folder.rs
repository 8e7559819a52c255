//! A [`Model`]'s checkpoint folder: `config.json`, `tokenizer.json`, `model.safetensors`,
//! `retort.json`. Loading finds the architecture from `config.json`'s `model_type` in
//! [`super::architectures::ARCHITECTURES`].
//!
//! A BERT checkpoint's `config.json` is a valid Hugging Face `BertForSequenceClassification`
//! config and its tensors carry Hugging Face names, so other tools can load it.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};

use super::architectures;
use super::files::read_text;
use super::tokenizer::TextTokenizer;
use super::weights::load_hf_weights;
use crate::error::{io_error, Error, Result};

pub use super::files::{require_file, CONFIG_FILE, INFO_FILE, TOKENIZER_FILE, WEIGHTS_FILE};
pub use super::model::{Model, ModelConfig, ModelInfo, EVAL_BATCH};
pub use super::weights::read_safetensors;

/// Reads `retort.json` of `folder` when there is one.
fn read_info(folder: &Path) -> Result<Option<ModelInfo>> {
    let info_path = folder.join(INFO_FILE);
    if !info_path.is_file() {
        return Ok(None);
    }
    let t = read_text(&info_path)?;
    let info = serde_json::from_str(&t)
        .map_err(|e| Error::user(format!("`{}` is invalid", info_path.display())).with_source(e))?;
    Ok(Some(info))
}

/// Checks that writing a checkpoint to `folder` replaces nothing retort did not write: it may
/// be absent, an empty folder, or a checkpoint folder with a valid `retort.json` (only retort
/// writes that file). Anything else (a Hugging Face folder, a file, a folder of the user's) is
/// refused with an error that names it.
pub fn check_replaceable(folder: &Path) -> Result<()> {
    let Ok(meta) = fs_err::symlink_metadata(folder) else {
        return Ok(());
    };
    let refuse = |why: &str| {
        Err(Error::user(format!(
            "`{}` exists and retort did not write it ({why}): refusing to replace it",
            folder.display()
        ))
        .with_hint("move it away or choose another output folder"))
    };
    if !meta.is_dir() {
        return refuse("it is not a folder");
    }
    let empty = fs_err::read_dir(folder)
        .map_err(|e| io_error(format!("cannot list `{}`", folder.display()), e))?
        .next()
        .is_none();
    if empty {
        return Ok(());
    }
    match read_info(folder) {
        Ok(Some(_)) => Ok(()),
        Ok(None) => refuse(&format!("it has no `{INFO_FILE}`")),
        Err(_) => refuse(&format!("its `{INFO_FILE}` is not retort's")),
    }
}

/// The `model_type` of a `config.json` text (`ctx` names the file in errors).
fn model_type_of(cfg_text: &str, ctx: &str) -> Result<String> {
    let value: serde_json::Value = serde_json::from_str(cfg_text)
        .map_err(|e| Error::user(format!("{ctx} is not valid JSON")).with_source(e))?;
    Ok(value
        .get("model_type")
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_string())
}

impl Model {
    /// Loads a checkpoint folder written by [`Model::save`] (any `model_type` of
    /// [`architectures::ARCHITECTURES`]: `retort-cnn`, `bert`). A Hugging Face BERT classifier folder without
    /// `retort.json` also loads: labels come from `id2label`, strictly (every tensor,
    /// classifier included, must be present).
    pub fn load(folder: &Path, device: &Device) -> Result<Model> {
        let cfg_path = require_file(folder, CONFIG_FILE)?;
        let tok_path = require_file(folder, TOKENIZER_FILE)?;
        let w_path = require_file(folder, WEIGHTS_FILE)?;
        let cfg_text = read_text(&cfg_path)?;
        let ctx = format!("`{}`", cfg_path.display());
        let model_type = model_type_of(&cfg_text, &ctx)?;
        let arch = architectures::by_model_type(&model_type).ok_or_else(|| {
            Error::user(format!(
                "{ctx} has `model_type` `{model_type}`; expected {}",
                architectures::quoted(|a| a.model_type(), " or ")
            ))
        })?;
        let info = read_info(folder)?;
        let tokenizer = TextTokenizer::from_file(&tok_path)?;
        let labels = info.as_ref().map(|i| i.label_names.clone());
        let mut model = arch
            .model_for_config(&cfg_text, tokenizer, labels, device)
            .map_err(|e| e.context(&ctx))?;
        if let Some(i) = info {
            if i.kind != model.info.kind {
                return Err(Error::user(format!(
                    "`{}` says kind `{}` but config.json describes a `{}` model",
                    folder.join(INFO_FILE).display(),
                    i.kind,
                    model.info.kind
                ))
                .with_hint(format!(
                    "the kinds are {}",
                    architectures::quoted(|a| a.name(), " and ")
                )));
            }
            model.info = i;
        }
        let weights = read_safetensors(&w_path, device)?;
        load_hf_weights(
            &model.varmap,
            &weights,
            false,
            &format!("`{}`", w_path.display()),
        )?;
        Ok(model)
    }

    /// Writes the four files into `folder` atomically: into a temporary sibling folder, then
    /// renamed over `folder`. An existing `folder` is replaced only when retort wrote it
    /// ([`check_replaceable`]). Every file gets the mode the umask gives new files.
    pub fn save(&self, folder: &Path) -> Result<()> {
        check_replaceable(folder)?;
        let name = folder
            .file_name()
            .ok_or_else(|| Error::user(format!("`{}` is not a folder name", folder.display())))?
            .to_string_lossy()
            .to_string();
        let parent = folder
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        fs_err::create_dir_all(parent)
            .map_err(|e| io_error(format!("cannot create `{}`", parent.display()), e))?;
        let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
        if tmp.exists() {
            fs_err::remove_dir_all(&tmp)
                .map_err(|e| io_error(format!("cannot remove `{}`", tmp.display()), e))?;
        }
        fs_err::create_dir_all(&tmp)
            .map_err(|e| io_error(format!("cannot create `{}`", tmp.display()), e))?;
        let write = |file: &str, text: String| -> Result<()> {
            let p = tmp.join(file);
            fs_err::write(&p, text)
                .map_err(|e| io_error(format!("cannot write `{}`", p.display()), e))
        };
        write(CONFIG_FILE, self.config.json().to_string())?;
        write(TOKENIZER_FILE, self.tokenizer.to_json()?)?;
        let info = serde_json::to_string_pretty(&self.info)
            .map_err(|e| Error::runtime("cannot serialise retort.json").with_source(e))?;
        write(INFO_FILE, info)?;
        let tensors: HashMap<String, Tensor> = {
            let data = self.varmap.data().lock().expect("varmap lock poisoned");
            data.iter()
                .map(|(k, v)| (k.clone(), v.as_tensor().detach()))
                .collect()
        };
        let wp = tmp.join(WEIGHTS_FILE);
        candle_core::safetensors::save(&tensors, &wp).map_err(|e| {
            Error::runtime(format!("cannot write `{}`", wp.display())).with_source(e)
        })?;
        // safetensors writes through a temporary file, created mode 0600 whatever the umask:
        // give the weights the mode of the other files, which were created the usual way.
        let mode = fs_err::metadata(tmp.join(CONFIG_FILE))
            .map_err(|e| io_error(format!("cannot read `{}`", tmp.display()), e))?
            .permissions();
        fs_err::set_permissions(&wp, mode)
            .map_err(|e| io_error(format!("cannot set the mode of `{}`", wp.display()), e))?;
        let old = parent.join(format!(".{name}.old-{}", std::process::id()));
        if folder.exists() {
            fs_err::rename(folder, &old)
                .map_err(|e| io_error(format!("cannot replace `{}`", folder.display()), e))?;
        }
        fs_err::rename(&tmp, folder)
            .map_err(|e| io_error(format!("cannot write `{}`", folder.display()), e))?;
        if old.exists() {
            fs_err::remove_dir_all(&old)
                .map_err(|e| io_error(format!("cannot remove `{}`", old.display()), e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
