//! [`Model`]: a student (classifier + variables + tokenizer + metadata) and its checkpoint
//! folder: `config.json`, `tokenizer.json`, `model.safetensors`, `retort.json`.
//!
//! A BERT checkpoint's `config.json` is a valid Hugging Face `BertForSequenceClassification`
//! config and its tensors carry Hugging Face names, so other tools can load it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::bert::{load_hf_weights, BertClassifier, BertConfig};
use super::cnn::{CnnClassifier, CnnConfig, CNN_MODEL_TYPE};
use super::init::{const_vb, reinit};
use super::tokenizer::TextTokenizer;
use super::Classifier;
use crate::error::{io_error, Error, Result};

/// File names of a checkpoint folder.
pub const CONFIG_FILE: &str = "config.json";
/// Tokenizer file name.
pub const TOKENIZER_FILE: &str = "tokenizer.json";
/// Weights file name.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// Metadata file name.
pub const INFO_FILE: &str = "retort.json";

/// Default maximum length of a BERT student's inputs (capped by `max_position_embeddings`).
pub const BERT_DEFAULT_MAX_LEN: usize = 128;

/// Batch size of [`Model::logits`].
pub const EVAL_BATCH: usize = 64;

/// Metadata stored as `retort.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// Class names in logit order.
    pub label_names: Vec<String>,
    /// `"cnn"` or `"bert"`.
    pub kind: String,
    /// Maximum tokens per text (specials included) used by [`Model::encode`].
    pub max_len: usize,
    /// Free JSON written by the trainer (hyper-parameters, data hashes, metrics...).
    #[serde(default)]
    pub training: serde_json::Value,
}

/// The architecture and its configuration.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelConfig {
    /// The word-CNN student.
    Cnn(CnnConfig),
    /// The BERT-shaped student.
    Bert(BertConfig),
}

/// A student model ready to train or predict.
pub struct Model {
    /// The network; its tensors are the variables of `varmap`.
    pub classifier: Box<dyn Classifier>,
    /// All trainable variables (give `varmap.all_vars()` to the optimiser).
    pub varmap: VarMap,
    /// The tokenizer the model was built for.
    pub tokenizer: TextTokenizer,
    /// Labels, kind, max_len and free training metadata.
    pub info: ModelInfo,
    /// The architecture's configuration (written as `config.json`).
    pub config: ModelConfig,
    /// Where the variables live.
    pub device: Device,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("info", &self.info)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// `folder/name`, or a user error naming both when the folder or the file is missing.
pub fn require_file(folder: &Path, name: &str) -> Result<PathBuf> {
    if !folder.is_dir() {
        return Err(Error::user(format!(
            "model folder `{}` not found",
            folder.display()
        )));
    }
    let p = folder.join(name);
    if !p.is_file() {
        return Err(Error::user(format!(
            "model folder `{}` has no `{name}`",
            folder.display()
        ))
        .with_hint(format!(
            "a model folder holds `{CONFIG_FILE}`, `{TOKENIZER_FILE}` and `{WEIGHTS_FILE}`"
        )));
    }
    Ok(p)
}

fn read_text(path: &Path) -> Result<String> {
    fs_err::read_to_string(path)
        .map_err(|e| io_error(format!("cannot read `{}`", path.display()), e))
}

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

fn check_labels(label_names: &[String], num_labels: usize) -> Result<()> {
    if label_names.len() != num_labels {
        return Err(Error::user(format!(
            "class-count mismatch: {} label names but the model has {num_labels} classes",
            label_names.len()
        )));
    }
    if label_names.is_empty() {
        return Err(Error::user("a classifier needs at least one label"));
    }
    Ok(())
}

fn check_vocab(tokenizer: &TextTokenizer, vocab_size: usize) -> Result<()> {
    if tokenizer.vocab_size() > vocab_size {
        return Err(Error::user(format!(
            "the tokenizer has {} tokens but the model's vocab_size is {vocab_size}",
            tokenizer.vocab_size()
        )));
    }
    Ok(())
}

impl Model {
    /// A new CNN student with seeded weights. `cfg.num_labels` must equal `label_names.len()`
    /// and `cfg.vocab_size` must cover the tokenizer. `info.max_len = cfg.max_len`.
    pub fn new_cnn(
        cfg: CnnConfig,
        tokenizer: TextTokenizer,
        label_names: Vec<String>,
        seed: u64,
        device: &Device,
    ) -> Result<Model> {
        check_labels(&label_names, cfg.num_labels)?;
        check_vocab(&tokenizer, cfg.vocab_size)?;
        let varmap = VarMap::new();
        let net = CnnClassifier::new(&cfg, const_vb(&varmap, device))?;
        reinit(&varmap, seed)?;
        Ok(Model {
            classifier: Box::new(net),
            varmap,
            tokenizer,
            info: ModelInfo {
                label_names,
                kind: "cnn".into(),
                max_len: cfg.max_len,
                training: serde_json::Value::Null,
            },
            config: ModelConfig::Cnn(cfg),
            device: device.clone(),
        })
    }

    /// A new BERT student with seeded weights; `cfg`'s labels are set from `label_names`.
    /// `info.max_len = min(128, max_position_embeddings)`.
    pub fn new_bert(
        mut cfg: BertConfig,
        tokenizer: TextTokenizer,
        label_names: Vec<String>,
        seed: u64,
        device: &Device,
    ) -> Result<Model> {
        if label_names.is_empty() {
            return Err(Error::user("a classifier needs at least one label"));
        }
        cfg.set_labels(&label_names);
        check_vocab(&tokenizer, cfg.vocab_size)?;
        let varmap = VarMap::new();
        let net = BertClassifier::new(&cfg, const_vb(&varmap, device))?;
        reinit(&varmap, seed)?;
        let max_len = BERT_DEFAULT_MAX_LEN.min(cfg.max_position_embeddings);
        Ok(Model {
            classifier: Box::new(net),
            varmap,
            tokenizer,
            info: ModelInfo {
                label_names,
                kind: "bert".into(),
                max_len,
                training: serde_json::Value::Null,
            },
            config: ModelConfig::Bert(cfg),
            device: device.clone(),
        })
    }

    /// A BERT student initialised from a Hugging Face folder (config.json, tokenizer.json,
    /// model.safetensors). Keys may lack the `bert.` prefix and use `LayerNorm.gamma/beta`.
    /// A folder without pooler or classifier (e.g. all-MiniLM-L6-v2) gets them from `seed`;
    /// a classifier with another class count than `label_names` is a user error.
    pub fn bert_from_pretrained(
        hf_folder: &Path,
        label_names: Vec<String>,
        seed: u64,
        device: &Device,
    ) -> Result<Model> {
        let cfg_path = require_file(hf_folder, CONFIG_FILE)?;
        let tok_path = require_file(hf_folder, TOKENIZER_FILE)?;
        let w_path = require_file(hf_folder, WEIGHTS_FILE)?;
        let cfg = BertConfig::from_json(&read_text(&cfg_path)?)
            .map_err(|e| e.context(format!("`{}`", cfg_path.display())))?;
        let tokenizer = TextTokenizer::from_file(&tok_path)?;
        let model = Model::new_bert(cfg, tokenizer, label_names, seed, device)?;
        let weights = read_safetensors(&w_path, device)?;
        load_hf_weights(
            &model.varmap,
            &weights,
            true,
            &format!("`{}`", w_path.display()),
        )?;
        Ok(model)
    }

    /// Loads a checkpoint folder written by [`Model::save`] (`model_type` `retort-cnn` or
    /// `bert`). A Hugging Face BERT classifier folder without `retort.json` also loads: labels
    /// come from `id2label`, strictly (every tensor, classifier included, must be present).
    pub fn load(folder: &Path, device: &Device) -> Result<Model> {
        let cfg_path = require_file(folder, CONFIG_FILE)?;
        let tok_path = require_file(folder, TOKENIZER_FILE)?;
        let w_path = require_file(folder, WEIGHTS_FILE)?;
        let cfg_text = read_text(&cfg_path)?;
        let ctx = format!("`{}`", cfg_path.display());
        let value: serde_json::Value = serde_json::from_str(&cfg_text)
            .map_err(|e| Error::user(format!("{ctx} is not valid JSON")).with_source(e))?;
        let model_type = value
            .get("model_type")
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string();
        let info_path = folder.join(INFO_FILE);
        let info: Option<ModelInfo> = if info_path.is_file() {
            let t = read_text(&info_path)?;
            Some(serde_json::from_str(&t).map_err(|e| {
                Error::user(format!("`{}` is invalid", info_path.display())).with_source(e)
            })?)
        } else {
            None
        };
        let tokenizer = TextTokenizer::from_file(&tok_path)?;
        let mut model = match model_type.as_str() {
            CNN_MODEL_TYPE => {
                let cfg = CnnConfig::from_json(&cfg_text).map_err(|e| e.context(&ctx))?;
                let info = info.as_ref().ok_or_else(|| {
                    Error::user(format!(
                        "model folder `{}` has no `{INFO_FILE}`",
                        folder.display()
                    ))
                })?;
                Model::new_cnn(cfg, tokenizer, info.label_names.clone(), 0, device)?
            }
            "bert" => {
                let cfg = BertConfig::from_json(&cfg_text).map_err(|e| e.context(&ctx))?;
                let labels = match &info {
                    Some(i) => i.label_names.clone(),
                    None => cfg.label_names(),
                };
                Model::new_bert(cfg, tokenizer, labels, 0, device)?
            }
            other => {
                return Err(Error::user(format!(
                    "{ctx} has `model_type` `{other}`; expected `{CNN_MODEL_TYPE}` or `bert`"
                )))
            }
        };
        if let Some(i) = info {
            if i.kind != model.info.kind {
                return Err(Error::user(format!(
                    "`{}` says kind `{}` but config.json describes a `{}` model",
                    info_path.display(),
                    i.kind,
                    model.info.kind
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
    /// renamed over `folder` (an existing `folder` is replaced).
    pub fn save(&self, folder: &Path) -> Result<()> {
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
        let config = match &self.config {
            ModelConfig::Cnn(c) => c.to_json()?,
            ModelConfig::Bert(c) => c.to_json()?,
        };
        write(CONFIG_FILE, config)?;
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

    /// Tokenizes `texts` (up to `info.max_len` tokens) into `(ids, mask)` u32 tensors `[B, L]`
    /// on the model's device.
    pub fn encode(&self, texts: &[&str]) -> Result<(Tensor, Tensor)> {
        let b = self.tokenizer.encode_batch(texts, self.info.max_len)?;
        let ids = Tensor::from_vec(b.ids, (b.batch, b.len), &self.device)?;
        let mask = Tensor::from_vec(b.mask, (b.batch, b.len), &self.device)?;
        Ok((ids, mask))
    }

    /// Evaluation-mode logits (no dropout), one row of `num_labels` per text, in batches of 64.
    pub fn logits(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(EVAL_BATCH) {
            let (ids, mask) = self.encode(chunk)?;
            let l = self.classifier.forward(&ids, &mask, None)?;
            out.extend(l.to_vec2::<f32>()?);
        }
        Ok(out)
    }

    /// Copies the word-embedding matrix of a Hugging Face BERT folder into a CNN student
    /// (see [`super::cnn::init_embeddings_from`]). Errors for a BERT student.
    pub fn init_cnn_embeddings_from(&self, hf_folder: &Path) -> Result<()> {
        match &self.config {
            ModelConfig::Cnn(c) => super::cnn::init_embeddings_from(&self.varmap, c, hf_folder),
            ModelConfig::Bert(_) => Err(Error::user(
                "embeddings can only be copied into a CNN student",
            )),
        }
    }

    /// Hex sha256 over the folder's regular files (sorted by name; each contributes its name,
    /// a NUL byte, its length as u64 little-endian and its bytes). Subfolders are ignored.
    pub fn content_hash(folder: &Path) -> Result<String> {
        if !folder.is_dir() {
            return Err(Error::user(format!(
                "model folder `{}` not found",
                folder.display()
            )));
        }
        let rd = fs_err::read_dir(folder)
            .map_err(|e| io_error(format!("cannot list `{}`", folder.display()), e))?;
        let mut files = Vec::new();
        for entry in rd {
            let entry =
                entry.map_err(|e| io_error(format!("cannot list `{}`", folder.display()), e))?;
            if entry.path().is_file() {
                files.push(entry.file_name().to_string_lossy().to_string());
            }
        }
        files.sort();
        let mut h = Sha256::new();
        for f in files {
            let bytes = fs_err::read(folder.join(&f))
                .map_err(|e| io_error(format!("cannot read `{}`", folder.join(&f).display()), e))?;
            h.update(f.as_bytes());
            h.update([0u8]);
            h.update((bytes.len() as u64).to_le_bytes());
            h.update(&bytes);
        }
        Ok(hex::encode(h.finalize()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::DropoutRng;
    use candle_nn::Optimizer;
    use rand::{Rng, SeedableRng};

    /// 192 toy sentences: label 1 contains "good", label 0 contains "bad".
    fn toy() -> (Vec<String>, Vec<u32>) {
        let filler = [
            "the", "movie", "was", "really", "plot", "acting", "quite", "film", "story", "very",
            "a", "it", "ending", "music", "cast", "so",
        ];
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let mut texts = Vec::new();
        let mut labels = Vec::new();
        for i in 0..192 {
            let n = rng.random_range(3..9);
            let mut words: Vec<&str> = (0..n).map(|_| filler[rng.random_range(0..16)]).collect();
            let pos = rng.random_range(0..=words.len());
            let label = (i % 2) as u32;
            words.insert(pos, if label == 1 { "good" } else { "bad" });
            texts.push(words.join(" "));
            labels.push(label);
        }
        (texts, labels)
    }

    fn toy_tokenizer(texts: &[String]) -> TextTokenizer {
        let refs: Vec<&str> = texts.iter().map(|s| s.as_str()).collect();
        TextTokenizer::train_wordpiece(&refs, 120).unwrap()
    }

    fn labels2() -> Vec<String> {
        vec!["neg".into(), "pos".into()]
    }

    fn small_cnn(tok: &TextTokenizer) -> CnnConfig {
        CnnConfig {
            embed_dim: 32,
            filters: 16,
            ..CnnConfig::new(tok.vocab_size(), 2)
        }
    }

    fn cnn(seed: u64) -> Model {
        let (texts, _) = toy();
        let tok = toy_tokenizer(&texts);
        let cfg = small_cnn(&tok);
        Model::new_cnn(cfg, tok, labels2(), seed, &Device::Cpu).unwrap()
    }

    fn bert(seed: u64) -> Model {
        let (texts, _) = toy();
        let tok = toy_tokenizer(&texts);
        let cfg = BertConfig::tiny(tok.vocab_size(), 2);
        Model::new_bert(cfg, tok, labels2(), seed, &Device::Cpu).unwrap()
    }

    fn train(model: &Model, steps: usize, lr: f64) -> f32 {
        let (texts, labels) = toy();
        let mut opt = candle_nn::AdamW::new(
            model.varmap.all_vars(),
            candle_nn::ParamsAdamW {
                lr,
                weight_decay: 0.0,
                ..Default::default()
            },
        )
        .unwrap();
        let mut drop = DropoutRng::new(1);
        let bs = 32;
        let nb = texts.len() / bs;
        for step in 0..steps {
            let i = (step % nb) * bs;
            let batch: Vec<&str> = texts[i..i + bs].iter().map(|s| s.as_str()).collect();
            let (ids, mask) = model.encode(&batch).unwrap();
            let y = Tensor::new(&labels[i..i + bs], &Device::Cpu).unwrap();
            let logits = model
                .classifier
                .forward(&ids, &mask, Some(&mut drop))
                .unwrap();
            let loss = candle_nn::loss::cross_entropy(&logits, &y).unwrap();
            opt.backward_step(&loss).unwrap();
        }
        let refs: Vec<&str> = texts.iter().map(|s| s.as_str()).collect();
        let logits = model.logits(&refs).unwrap();
        let correct = logits
            .iter()
            .zip(&labels)
            .filter(|(l, &y)| (l[1] > l[0]) == (y == 1))
            .count();
        correct as f32 / labels.len() as f32
    }

    #[test]
    fn cnn_learns_toy_task() {
        let m = cnn(1);
        let acc = train(&m, 200, 3e-3);
        assert!(acc >= 0.95, "CNN training accuracy {acc}");
    }

    #[test]
    fn bert_learns_toy_task() {
        let m = bert(1);
        let acc = train(&m, 300, 1e-3);
        assert!(acc >= 0.95, "BERT training accuracy {acc}");
    }

    fn probe() -> Vec<&'static str> {
        vec![
            "a good movie",
            "bad",
            "",
            "Ünïcödé text, the film was GOOD!",
        ]
    }

    #[test]
    fn same_seed_same_logits_other_seed_differs() {
        for make in [cnn as fn(u64) -> Model, bert] {
            let a = make(4).logits(&probe()).unwrap();
            let b = make(4).logits(&probe()).unwrap();
            let c = make(5).logits(&probe()).unwrap();
            assert_eq!(a, b);
            assert_ne!(a, c);
        }
    }

    #[test]
    fn save_load_gives_bit_identical_logits() {
        let dir = tempfile::tempdir().unwrap();
        for (i, make) in [cnn as fn(u64) -> Model, bert].into_iter().enumerate() {
            let mut m = make(7);
            train(&m, 5, 1e-2);
            m.info.training = serde_json::json!({"epochs": 1});
            let folder = dir.path().join(format!("ckpt{i}"));
            m.save(&folder).unwrap();
            let h1 = Model::content_hash(&folder).unwrap();
            m.save(&folder).unwrap(); // overwrite in place
            assert_eq!(Model::content_hash(&folder).unwrap(), h1);
            let l = Model::load(&folder, &Device::Cpu).unwrap();
            assert_eq!(l.info, m.info);
            assert_eq!(l.config, m.config);
            assert_eq!(l.logits(&probe()).unwrap(), m.logits(&probe()).unwrap());
            let names: Vec<String> = fs_err::read_dir(&folder)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
                .collect();
            assert_eq!(names.len(), 4, "{names:?}");
        }
        // No temporary folders left behind.
        let left: Vec<_> = fs_err::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 2);
    }

    #[test]
    fn bert_checkpoint_is_hf_shaped_and_loads_as_pretrained() {
        let dir = tempfile::tempdir().unwrap();
        let m = bert(3);
        let folder = dir.path().join("b");
        m.save(&folder).unwrap();
        let cfg: serde_json::Value =
            serde_json::from_str(&fs_err::read_to_string(folder.join(CONFIG_FILE)).unwrap())
                .unwrap();
        assert_eq!(cfg["model_type"], "bert");
        assert_eq!(cfg["architectures"][0], "BertForSequenceClassification");
        assert_eq!(cfg["id2label"]["1"], "pos");
        assert_eq!(cfg["label2id"]["neg"], 0);
        let w = read_safetensors(&folder.join(WEIGHTS_FILE), &Device::Cpu).unwrap();
        for k in [
            "bert.embeddings.word_embeddings.weight",
            "bert.embeddings.LayerNorm.bias",
            "bert.encoder.layer.1.attention.self.query.weight",
            "bert.encoder.layer.0.attention.output.LayerNorm.weight",
            "bert.encoder.layer.0.intermediate.dense.bias",
            "bert.encoder.layer.0.output.dense.weight",
            "bert.pooler.dense.weight",
            "classifier.weight",
        ] {
            assert!(w.contains_key(k), "{k}");
        }
        // As a teacher/initialisation: same logits with the same labels.
        let p = Model::bert_from_pretrained(&folder, labels2(), 99, &Device::Cpu).unwrap();
        assert_eq!(p.logits(&probe()).unwrap(), m.logits(&probe()).unwrap());
        // Without retort.json it still loads (labels from id2label).
        fs_err::remove_file(folder.join(INFO_FILE)).unwrap();
        let q = Model::load(&folder, &Device::Cpu).unwrap();
        assert_eq!(q.info.label_names, labels2());
        // Another class count is a clear error.
        let e = Model::bert_from_pretrained(
            &folder,
            vec!["a".into(), "b".into(), "c".into()],
            0,
            &Device::Cpu,
        )
        .unwrap_err();
        assert!(e.to_string().contains("class-count mismatch"), "{e}");
    }

    #[test]
    fn missing_folder_or_file_is_a_user_error() {
        let dir = tempfile::tempdir().unwrap();
        let e = Model::load(&dir.path().join("nope"), &Device::Cpu).unwrap_err();
        assert_eq!(e.kind(), crate::error::ErrorKind::User);
        assert!(e.to_string().contains("nope"), "{e}");
        let m = cnn(1);
        let folder = dir.path().join("c");
        m.save(&folder).unwrap();
        fs_err::remove_file(folder.join(WEIGHTS_FILE)).unwrap();
        let e = Model::load(&folder, &Device::Cpu).unwrap_err();
        assert_eq!(e.kind(), crate::error::ErrorKind::User);
        assert!(e.to_string().contains("model.safetensors"), "{e}");
        assert!(Model::content_hash(&dir.path().join("nope")).is_err());
        let (texts, _) = toy();
        let tok = toy_tokenizer(&texts);
        let cfg = small_cnn(&tok);
        let e = Model::new_cnn(cfg, tok, vec!["x".into()], 0, &Device::Cpu).unwrap_err();
        assert!(e.to_string().contains("class-count mismatch"), "{e}");
    }

    fn minilm_folder() -> Option<PathBuf> {
        let mut c = Vec::new();
        if let Ok(a) = std::env::var("RETORT_ASSETS") {
            c.push(PathBuf::from(a).join("minilm"));
        }
        if let Ok(h) = std::env::var("HOME") {
            c.push(PathBuf::from(h).join(".cache/retort/assets/minilm"));
        }
        c.into_iter().find(|p| p.join(WEIGHTS_FILE).is_file())
    }

    #[test]
    fn loads_real_minilm_when_present() {
        let Some(folder) = minilm_folder() else {
            eprintln!("skipped: no MiniLM folder in $RETORT_ASSETS/minilm or ~/.cache/retort/assets/minilm");
            return;
        };
        let m = Model::bert_from_pretrained(&folder, labels2(), 0, &Device::Cpu).unwrap();
        match &m.config {
            ModelConfig::Bert(c) => assert_eq!(c.hidden_size, 384),
            _ => unreachable!(),
        }
        assert_eq!(m.classifier.feature_dim(), 384);
        let l = m.logits(&["a test sentence", "another one"]).unwrap();
        assert_eq!(l.len(), 2);
        assert!(l.iter().flatten().all(|x| x.is_finite()));
    }

    fn steps_per_second(model: &Model, steps: usize) -> f64 {
        let words = [
            "the", "movie", "was", "good", "bad", "plot", "acting", "film",
        ];
        let texts: Vec<String> = (0..32)
            .map(|i| {
                (0..38)
                    .map(|j| words[(i * 7 + j * 3) % 8])
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        let refs: Vec<&str> = texts.iter().map(|s| s.as_str()).collect();
        let (ids, mask) = model.encode(&refs).unwrap();
        assert_eq!(ids.dims(), &[32, 40]);
        let y = Tensor::new(&[0u32; 32], &Device::Cpu).unwrap();
        let mut opt = candle_nn::AdamW::new(model.varmap.all_vars(), Default::default()).unwrap();
        let mut drop = DropoutRng::new(0);
        let mut run = |n: usize| {
            for _ in 0..n {
                let logits = model
                    .classifier
                    .forward(&ids, &mask, Some(&mut drop))
                    .unwrap();
                let loss = candle_nn::loss::cross_entropy(&logits, &y).unwrap();
                opt.backward_step(&loss).unwrap();
            }
        };
        run(2);
        let t = std::time::Instant::now();
        run(steps);
        steps as f64 / t.elapsed().as_secs_f64()
    }

    /// Speed report: `cargo test speed -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn speed_batch32_len40() {
        let (texts, _) = toy();
        let refs: Vec<&str> = texts.iter().map(|s| s.as_str()).collect();
        let tok = TextTokenizer::train_wordpiece(&refs, 120).unwrap();
        for vocab in [tok.vocab_size(), 30522] {
            let cfg = CnnConfig::new(vocab, 2);
            let m = Model::new_cnn(cfg, tok.clone(), labels2(), 0, &Device::Cpu).unwrap();
            eprintln!(
                "CNN default (E128 F100 w345) vocab {vocab}: {:.1} steps/s",
                steps_per_second(&m, 30)
            );
        }
        let m = Model::new_bert(
            BertConfig::tiny(tok.vocab_size(), 2),
            tok.clone(),
            labels2(),
            0,
            &Device::Cpu,
        )
        .unwrap();
        eprintln!(
            "tiny BERT (H32 L2): {:.1} steps/s",
            steps_per_second(&m, 30)
        );
        let mut c = BertConfig::tiny(30522, 2);
        c.hidden_size = 384;
        c.num_hidden_layers = 6;
        c.num_attention_heads = 12;
        c.intermediate_size = 1536;
        c.max_position_embeddings = 512;
        let m = Model::new_bert(c, tok, labels2(), 0, &Device::Cpu).unwrap();
        eprintln!(
            "MiniLM-L6 shape (H384 L6): {:.2} steps/s",
            steps_per_second(&m, 3)
        );
    }
}
