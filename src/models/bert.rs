//! A BERT-shaped encoder student that really trains (every layer norm is differentiable),
//! with exactly the tensor names of Hugging Face `BertForSequenceClassification`.
//!
//! Written for `retort` rather than reusing candle-transformers' `BertModel`, whose fast
//! `LayerNorm` has no backward pass (only the head would learn). Layer norms here use
//! `candle_nn::ops::layer_norm_slow`, softmax uses the composite `candle_nn::ops::softmax`.
//!
//! Dropout (hidden, attention-probability and classifier) is drawn from the caller's
//! [`DropoutRng`]; token type ids are all 0; position ids are `0..L`.

use std::collections::BTreeMap;

use candle_core::{DType, Tensor, D};
use candle_nn::{Linear, VarBuilder};
use serde::{Deserialize, Serialize};

use std::path::Path;

use super::files::{read_text, require_file, CONFIG_FILE, TOKENIZER_FILE, WEIGHTS_FILE};
use super::init::ZERO_INIT;
use super::model::{check_vocab, Model, ModelConfig};
use super::model::{Architecture, StudentSpec};
use super::tokenizer::TextTokenizer;
use super::weights::read_safetensors;
pub use super::weights::{hf_candidates, load_hf_weights};
use super::{maybe_dropout, Classifier, DropoutRng};
use crate::error::{Error, Result};

/// Default maximum length of a BERT student's inputs (capped by `max_position_embeddings`).
pub const BERT_DEFAULT_MAX_LEN: usize = 128;

fn default_act() -> String {
    "gelu".into()
}
fn default_drop() -> f32 {
    0.1
}
fn default_max_pos() -> usize {
    512
}
fn default_type_vocab() -> usize {
    2
}
fn default_eps() -> f64 {
    1e-12
}
fn default_model_type() -> String {
    "bert".into()
}

/// A Hugging Face BERT `config.json`. Unknown keys are kept in `extra` and written back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BertConfig {
    /// Always `"bert"` for this model.
    #[serde(default = "default_model_type")]
    pub model_type: String,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Hidden size `H`.
    pub hidden_size: usize,
    /// Number of encoder layers.
    pub num_hidden_layers: usize,
    /// Number of attention heads (must divide `hidden_size`).
    pub num_attention_heads: usize,
    /// Width of the feed-forward layer.
    pub intermediate_size: usize,
    /// `gelu` (erf, the default), `gelu_new` / `gelu_pytorch_tanh` (tanh approximation) or `relu`.
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// Dropout on embeddings, sublayer outputs and (unless `classifier_dropout`) the classifier.
    #[serde(default = "default_drop")]
    pub hidden_dropout_prob: f32,
    /// Dropout on attention probabilities.
    #[serde(default = "default_drop")]
    pub attention_probs_dropout_prob: f32,
    /// Dropout before the classifier; `hidden_dropout_prob` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classifier_dropout: Option<f32>,
    /// Number of position embeddings (maximum sequence length).
    #[serde(default = "default_max_pos")]
    pub max_position_embeddings: usize,
    /// Number of token types.
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    /// Layer-norm epsilon.
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    /// Class names by id (`"0": "neg"`); defines the number of classes when present.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub id2label: BTreeMap<String, String>,
    /// Class ids by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub label2id: BTreeMap<String, usize>,
    /// Number of classes when `id2label` is absent (Hugging Face's default is 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_labels: Option<usize>,
    /// Every other key of the file (architectures, pad_token_id, transformers_version, ...).
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl BertConfig {
    /// A tiny config for tests: hidden 32, 2 layers, 2 heads, intermediate 64, 64 positions.
    pub fn tiny(vocab_size: usize, num_labels: usize) -> Self {
        let mut c = BertConfig {
            model_type: default_model_type(),
            vocab_size,
            hidden_size: 32,
            num_hidden_layers: 2,
            num_attention_heads: 2,
            intermediate_size: 64,
            hidden_act: default_act(),
            hidden_dropout_prob: 0.1,
            attention_probs_dropout_prob: 0.1,
            classifier_dropout: None,
            max_position_embeddings: 64,
            type_vocab_size: 2,
            layer_norm_eps: 1e-12,
            id2label: BTreeMap::new(),
            label2id: BTreeMap::new(),
            num_labels: None,
            extra: serde_json::Map::new(),
        };
        let names: Vec<String> = (0..num_labels).map(|i| format!("LABEL_{i}")).collect();
        c.set_labels(&names);
        c
    }

    /// Parses a Hugging Face `config.json` and validates it.
    pub fn from_json(json: &str) -> Result<Self> {
        let c: BertConfig = serde_json::from_str(json)
            .map_err(|e| Error::user("invalid BERT `config.json`").with_source(e))?;
        c.validate()?;
        Ok(c)
    }

    /// A valid Hugging Face config for a sequence classifier: `model_type: "bert"`,
    /// `architectures: ["BertForSequenceClassification"]`, `id2label`, `label2id`.
    pub fn to_json(&self) -> Result<String> {
        let mut c = self.clone();
        c.model_type = "bert".into();
        c.extra.insert(
            "architectures".into(),
            serde_json::json!(["BertForSequenceClassification"]),
        );
        c.extra
            .entry("pad_token_id")
            .or_insert(serde_json::json!(0));
        c.num_labels = None;
        serde_json::to_string_pretty(&c)
            .map_err(|e| Error::runtime("cannot serialise BERT config").with_source(e))
    }

    /// Checks sizes, head divisibility and the activation name.
    pub fn validate(&self) -> Result<()> {
        let mut p = Vec::new();
        if self.model_type != "bert" {
            p.push(format!(
                "`model_type` is `{}`, expected `bert`",
                self.model_type
            ));
        }
        for (n, v) in [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("intermediate_size", self.intermediate_size),
            ("max_position_embeddings", self.max_position_embeddings),
            ("type_vocab_size", self.type_vocab_size),
        ] {
            if v == 0 {
                p.push(format!("`{n}` must be at least 1"));
            }
        }
        if self.num_attention_heads > 0
            && !self.hidden_size.is_multiple_of(self.num_attention_heads)
        {
            p.push(format!(
                "`hidden_size` {} is not a multiple of `num_attention_heads` {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if !["gelu", "gelu_new", "gelu_pytorch_tanh", "relu"].contains(&self.hidden_act.as_str()) {
            p.push(format!("unsupported `hidden_act` `{}`", self.hidden_act));
        }
        if self.num_labels() == 0 {
            p.push("the model must have at least one class".into());
        }
        if p.is_empty() {
            Ok(())
        } else {
            Err(Error::user("invalid BERT configuration").with_details(p))
        }
    }

    /// Number of classes: `id2label`'s size, else `num_labels`, else 2.
    pub fn num_labels(&self) -> usize {
        if !self.id2label.is_empty() {
            self.id2label.len()
        } else {
            self.num_labels.unwrap_or(2)
        }
    }

    /// Class names in id order (`LABEL_i` where `id2label` has none).
    pub fn label_names(&self) -> Vec<String> {
        (0..self.num_labels())
            .map(|i| {
                self.id2label
                    .get(&i.to_string())
                    .cloned()
                    .unwrap_or_else(|| format!("LABEL_{i}"))
            })
            .collect()
    }

    /// Sets `id2label`, `label2id` (and clears `num_labels`) from class names in id order, and
    /// marks the config as `BertForSequenceClassification` (`architectures`, `pad_token_id`).
    pub fn set_labels(&mut self, names: &[String]) {
        self.extra.insert(
            "architectures".into(),
            serde_json::json!(["BertForSequenceClassification"]),
        );
        self.extra
            .entry("pad_token_id")
            .or_insert(serde_json::json!(0));
        self.id2label = names
            .iter()
            .enumerate()
            .map(|(i, n)| (i.to_string(), n.clone()))
            .collect();
        self.label2id = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i))
            .collect();
        self.num_labels = None;
    }

    fn classifier_dropout(&self) -> f32 {
        self.classifier_dropout.unwrap_or(self.hidden_dropout_prob)
    }
}

#[derive(Debug, Clone)]
struct Norm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl Norm {
    fn new(h: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        Ok(Norm {
            weight: vb.get_with_hints(h, "weight", ZERO_INIT)?,
            bias: vb.get_with_hints(h, "bias", ZERO_INIT)?,
            eps,
        })
    }
    fn forward(&self, x: &Tensor, fused: bool) -> Result<Tensor> {
        if fused {
            // One kernel, f32 accumulation whatever the dtype; no backward pass.
            return Ok(candle_nn::ops::layer_norm(
                x,
                &self.weight,
                &self.bias,
                self.eps as f32,
            )?);
        }
        Ok(candle_nn::ops::layer_norm_slow(
            x,
            &self.weight,
            &self.bias,
            self.eps as f32,
        )?)
    }
}

fn linear(inp: usize, out: usize, vb: VarBuilder) -> Result<Linear> {
    let w = vb.get_with_hints((out, inp), "weight", ZERO_INIT)?;
    let b = vb.get_with_hints(out, "bias", ZERO_INIT)?;
    Ok(Linear::new(w, Some(b)))
}

fn apply(l: &Linear, x: &Tensor) -> Result<Tensor> {
    let w = l.weight();
    if w.dtype() == x.dtype() {
        return Ok(candle_nn::Module::forward(l, x)?);
    }
    // Mixed precision (inference only): the product in the weights' half precision (with f32
    // accumulation on the GPU), the result and the bias in the activations' f32.
    let y = x
        .to_dtype(w.dtype())?
        .broadcast_matmul(&w.t()?)?
        .to_dtype(x.dtype())?;
    Ok(match l.bias() {
        Some(b) => y.broadcast_add(b)?,
        None => y,
    })
}

/// `l` with its weight in `dtype` (the bias stays as it is).
fn with_weight_dtype(l: &Linear, dtype: DType) -> Result<Linear> {
    Ok(Linear::new(l.weight().to_dtype(dtype)?, l.bias().cloned()))
}

#[derive(Debug, Clone)]
struct Layer {
    query: Linear,
    key: Linear,
    value: Linear,
    attn_out: Linear,
    attn_norm: Norm,
    intermediate: Linear,
    output: Linear,
    out_norm: Norm,
}

impl Layer {
    fn new(c: &BertConfig, vb: VarBuilder) -> Result<Self> {
        let (h, i, eps) = (c.hidden_size, c.intermediate_size, c.layer_norm_eps);
        let a = vb.pp("attention");
        Ok(Layer {
            query: linear(h, h, a.pp("self").pp("query"))?,
            key: linear(h, h, a.pp("self").pp("key"))?,
            value: linear(h, h, a.pp("self").pp("value"))?,
            attn_out: linear(h, h, a.pp("output").pp("dense"))?,
            attn_norm: Norm::new(h, eps, a.pp("output").pp("LayerNorm"))?,
            intermediate: linear(h, i, vb.pp("intermediate").pp("dense"))?,
            output: linear(i, h, vb.pp("output").pp("dense"))?,
            out_norm: Norm::new(h, eps, vb.pp("output").pp("LayerNorm"))?,
        })
    }
}

/// The BERT student (see module docs). Cheap to clone: tensors share the `VarMap`'s storage.
#[derive(Debug, Clone)]
pub struct BertClassifier {
    cfg: BertConfig,
    word: Tensor,
    position: Tensor,
    token_type: Tensor,
    emb_norm: Norm,
    layers: Vec<Layer>,
    pooler: Linear,
    classifier: Linear,
    /// Inference only: fused layer norm and softmax kernels, computing in the weights' dtype.
    fused: bool,
}

impl BertClassifier {
    /// The same network for inference only (no gradients), with fused layer-norm and softmax
    /// kernels. `vb` should hold f32 tensors: activations, layer norms, attention and the
    /// residual stream stay in f32, and with `matmul_dtype` bf16 or f16 the encoder's linear
    /// layers (nearly all the work) multiply in that precision.
    pub fn for_inference(cfg: &BertConfig, vb: VarBuilder, matmul_dtype: DType) -> Result<Self> {
        let mut net = BertClassifier::new(cfg, vb)?;
        net.fused = true;
        if matmul_dtype != net.word.dtype() {
            for l in &mut net.layers {
                for lin in [
                    &mut l.query,
                    &mut l.key,
                    &mut l.value,
                    &mut l.attn_out,
                    &mut l.intermediate,
                    &mut l.output,
                ] {
                    *lin = with_weight_dtype(lin, matmul_dtype)?;
                }
            }
        }
        Ok(net)
    }

    /// Creates (or fetches) the variables under `vb` with Hugging Face
    /// `BertForSequenceClassification` names (`bert.*`, `classifier.*`).
    pub fn new(cfg: &BertConfig, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        let h = cfg.hidden_size;
        let b = vb.pp("bert");
        let e = b.pp("embeddings");
        let word = e.get_with_hints((cfg.vocab_size, h), "word_embeddings.weight", ZERO_INIT)?;
        let position = e.get_with_hints(
            (cfg.max_position_embeddings, h),
            "position_embeddings.weight",
            ZERO_INIT,
        )?;
        let token_type = e.get_with_hints(
            (cfg.type_vocab_size, h),
            "token_type_embeddings.weight",
            ZERO_INIT,
        )?;
        let emb_norm = Norm::new(h, cfg.layer_norm_eps, e.pp("LayerNorm"))?;
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| Layer::new(cfg, b.pp(format!("encoder.layer.{i}"))))
            .collect::<Result<Vec<_>>>()?;
        let pooler = linear(h, h, b.pp("pooler").pp("dense"))?;
        let classifier = linear(h, cfg.num_labels(), vb.pp("classifier"))?;
        Ok(BertClassifier {
            cfg: cfg.clone(),
            word,
            position,
            token_type,
            emb_norm,
            layers,
            pooler,
            classifier,
            fused: false,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &BertConfig {
        &self.cfg
    }

    fn act(&self, x: &Tensor) -> Result<Tensor> {
        Ok(match self.cfg.hidden_act.as_str() {
            "gelu_new" | "gelu_pytorch_tanh" => x.gelu()?,
            "relu" => x.relu()?,
            _ => x.gelu_erf()?,
        })
    }

    /// Final hidden states `[B, L, H]`.
    pub fn encode(
        &self,
        ids: &Tensor,
        mask: &Tensor,
        mut dropout: Option<&mut DropoutRng>,
    ) -> Result<Tensor> {
        let c = &self.cfg;
        let (b, l) = ids.dims2()?;
        if l > c.max_position_embeddings {
            return Err(Error::user(format!(
                "sequence length {l} exceeds max_position_embeddings {}",
                c.max_position_embeddings
            )));
        }
        let h = c.hidden_size;
        let nh = c.num_attention_heads;
        let hd = h / nh;
        let p = c.hidden_dropout_prob;
        let word = self
            .word
            .index_select(&ids.flatten_all()?, 0)?
            .reshape((b, l, h))?;
        let pos = self.position.narrow(0, 0, l)?.unsqueeze(0)?;
        let tt = self.token_type.narrow(0, 0, 1)?.unsqueeze(0)?;
        let x = word.broadcast_add(&pos)?.broadcast_add(&tt)?;
        let x = self.emb_norm.forward(&x, self.fused)?;
        let mut x = maybe_dropout(&x, p, dropout.as_deref_mut())?;
        // Additive attention bias [B, 1, 1, L]: 0 for tokens, -10000 for padding (as HF BERT).
        let bias = ((mask.to_dtype(DType::F32)? - 1.0)? * 10000.0)?
            .reshape((b, 1, 1, l))?
            .to_dtype(x.dtype())?;
        let scale = 1.0 / (hd as f64).sqrt();
        for layer in &self.layers {
            let heads = |t: Tensor| -> Result<Tensor> {
                Ok(t.reshape((b, l, nh, hd))?.transpose(1, 2)?.contiguous()?)
            };
            let q = heads(apply(&layer.query, &x)?)?;
            let k = heads(apply(&layer.key, &x)?)?;
            let v = heads(apply(&layer.value, &x)?)?;
            let scores = (q.matmul(&k.t()?)? * scale)?.broadcast_add(&bias)?;
            let probs = if self.fused {
                candle_nn::ops::softmax_last_dim(&scores)?
            } else {
                candle_nn::ops::softmax(&scores, D::Minus1)?
            };
            let probs = maybe_dropout(
                &probs,
                c.attention_probs_dropout_prob,
                dropout.as_deref_mut(),
            )?;
            let ctx = probs
                .matmul(&v)?
                .transpose(1, 2)?
                .contiguous()?
                .reshape((b, l, h))?;
            let a = apply(&layer.attn_out, &ctx)?;
            let a = maybe_dropout(&a, p, dropout.as_deref_mut())?;
            let x1 = layer.attn_norm.forward(&(a + &x)?, self.fused)?;
            let m = self.act(&apply(&layer.intermediate, &x1)?)?;
            let o = apply(&layer.output, &m)?;
            let o = maybe_dropout(&o, p, dropout.as_deref_mut())?;
            x = layer.out_norm.forward(&(o + &x1)?, self.fused)?;
        }
        Ok(x)
    }
}

impl Classifier for BertClassifier {
    /// The pooler output: `tanh(dense(h_[CLS]))`, `[B, H]`.
    fn features(
        &self,
        ids: &Tensor,
        mask: &Tensor,
        dropout: Option<&mut DropoutRng>,
    ) -> Result<Tensor> {
        let x = self.encode(ids, mask, dropout)?;
        let cls = x.narrow(1, 0, 1)?.squeeze(1)?;
        Ok(apply(&self.pooler, &cls)?.tanh()?)
    }

    fn head(&self, features: &Tensor, dropout: Option<&mut DropoutRng>) -> Result<Tensor> {
        let x = maybe_dropout(features, self.cfg.classifier_dropout(), dropout)?;
        apply(&self.classifier, &x)
    }

    fn num_labels(&self) -> usize {
        self.cfg.num_labels()
    }

    fn feature_dim(&self) -> usize {
        self.cfg.hidden_size
    }
}

/// The `bert` student architecture: [`BertClassifier`] with Hugging Face names.
#[derive(Debug, Clone, Copy)]
pub struct BertArch;

impl Architecture for BertArch {
    fn name(&self) -> &'static str {
        "bert"
    }

    fn summary(&self) -> &'static str {
        "BERT-shaped encoder (tiny from scratch, or from a Hugging Face folder with `init`)"
    }

    fn model_type(&self) -> &'static str {
        "bert"
    }

    fn default_learning_rate(&self) -> f64 {
        5e-5
    }

    fn starts_from_minilm(&self) -> bool {
        true
    }

    /// With `init`: the folder's config, tokenizer and weights ([`Model::bert_from_pretrained`]);
    /// without: a tiny BERT on a WordPiece tokenizer trained on the texts.
    fn new_student(&self, spec: &StudentSpec<'_>) -> Result<Model> {
        let names = spec.label_names.to_vec();
        match spec.init {
            Some(folder) => Model::bert_from_pretrained(folder, names, spec.seed, spec.device),
            None => {
                let tok = spec.tokenizer()?;
                let cfg = BertConfig::tiny(tok.vocab_size(), names.len());
                Model::new_bert(cfg, tok, names, spec.seed, spec.device)
            }
        }
    }

    /// Labels from `retort.json`, else from the config's `id2label`.
    fn model_for_config(
        &self,
        config_json: &str,
        tokenizer: TextTokenizer,
        label_names: Option<Vec<String>>,
        device: &candle_core::Device,
    ) -> Result<Model> {
        let cfg = BertConfig::from_json(config_json)?;
        let labels = label_names.unwrap_or_else(|| cfg.label_names());
        Model::new_bert(cfg, tokenizer, labels, 0, device)
    }

    fn network(&self, config_json: &str, vb: VarBuilder) -> Result<Box<dyn Classifier>> {
        let cfg = BertConfig::from_json(config_json)?;
        Ok(Box::new(BertClassifier::new(&cfg, vb)?))
    }

    /// Fused layer norm and softmax, the encoder's linear layers in `dtype`
    /// ([`BertClassifier::for_inference`]).
    fn inference_network(
        &self,
        config_json: &str,
        vb: VarBuilder,
        dtype: DType,
    ) -> Result<(Box<dyn Classifier>, DType)> {
        let cfg = BertConfig::from_json(config_json)?;
        let net = BertClassifier::for_inference(&cfg, vb, dtype)?;
        Ok((Box::new(net), dtype))
    }
}

impl Model {
    /// A new BERT student with seeded weights; `cfg`'s labels are set from `label_names`.
    /// `info.max_len = min(128, max_position_embeddings)`.
    pub fn new_bert(
        mut cfg: BertConfig,
        tokenizer: TextTokenizer,
        label_names: Vec<String>,
        seed: u64,
        device: &candle_core::Device,
    ) -> Result<Model> {
        if label_names.is_empty() {
            return Err(Error::user("a classifier needs at least one label"));
        }
        cfg.set_labels(&label_names);
        check_vocab(&tokenizer, cfg.vocab_size)?;
        let max_len = BERT_DEFAULT_MAX_LEN.min(cfg.max_position_embeddings);
        let config = ModelConfig::new(&BertArch, cfg.to_json()?);
        Model::build(config, tokenizer, label_names, max_len, seed, device)
    }

    /// A BERT student initialised from a Hugging Face folder (config.json, tokenizer.json,
    /// model.safetensors). Keys may lack the `bert.` prefix and use `LayerNorm.gamma/beta`.
    /// A folder without pooler or classifier (e.g. all-MiniLM-L6-v2) gets them from `seed`;
    /// a classifier with another class count than `label_names` is a user error.
    pub fn bert_from_pretrained(
        hf_folder: &Path,
        label_names: Vec<String>,
        seed: u64,
        device: &candle_core::Device,
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
}

#[cfg(test)]
mod tests;
