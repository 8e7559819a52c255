use super::*;
use std::collections::HashMap;

use crate::models::init::{const_vb, reinit};
use candle_core::Device;
use candle_nn::VarMap;

#[test]
fn config_round_trip_keeps_extra_and_is_hf_like() {
    let j = r#"{"architectures":["BertModel"],"attention_probs_dropout_prob":0.1,
        "gradient_checkpointing":false,"hidden_act":"gelu","hidden_dropout_prob":0.1,
        "hidden_size":384,"initializer_range":0.02,"intermediate_size":1536,
        "layer_norm_eps":1e-12,"max_position_embeddings":512,"model_type":"bert",
        "num_attention_heads":12,"num_hidden_layers":6,"pad_token_id":0,
        "position_embedding_type":"absolute","transformers_version":"4.8.2",
        "type_vocab_size":2,"use_cache":true,"vocab_size":30522}"#;
    let mut c = BertConfig::from_json(j).unwrap();
    assert_eq!(c.num_labels(), 2);
    assert_eq!(c.hidden_size, 384);
    c.set_labels(&["neg".into(), "pos".into(), "mixed".into()]);
    let out = c.to_json().unwrap();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["architectures"][0], "BertForSequenceClassification");
    assert_eq!(v["id2label"]["2"], "mixed");
    assert_eq!(v["label2id"]["pos"], 1);
    assert_eq!(v["initializer_range"], 0.02);
    let back = BertConfig::from_json(&out).unwrap();
    assert_eq!(back.label_names(), vec!["neg", "pos", "mixed"]);
    assert!(BertConfig::from_json(r#"{"vocab_size":5}"#).is_err());
    let mut bad = BertConfig::tiny(10, 2);
    bad.num_attention_heads = 3;
    assert!(bad.validate().is_err());
}

#[test]
fn candidates_cover_old_names() {
    let c = hf_candidates("bert.encoder.layer.0.output.LayerNorm.weight");
    assert!(c.contains(&"encoder.layer.0.output.LayerNorm.gamma".to_string()));
    assert!(c.contains(&"bert.encoder.layer.0.output.LayerNorm.gamma".to_string()));
    assert_eq!(hf_candidates("classifier.bias"), vec!["classifier.bias"]);
}

#[test]
fn every_parameter_gets_a_gradient() {
    let cfg = BertConfig::tiny(40, 3);
    let vm = VarMap::new();
    let m = BertClassifier::new(&cfg, const_vb(&vm, &Device::Cpu)).unwrap();
    reinit(&vm, 5).unwrap();
    let ids = Tensor::from_vec(
        vec![2u32, 7, 8, 3, 0, 2, 9, 10, 11, 3],
        (2, 5),
        &Device::Cpu,
    )
    .unwrap();
    let mask =
        Tensor::from_vec(vec![1u32, 1, 1, 1, 0, 1, 1, 1, 1, 1], (2, 5), &Device::Cpu).unwrap();
    let mut rng = DropoutRng::new(1);
    let logits = m.forward(&ids, &mask, Some(&mut rng)).unwrap();
    assert_eq!(logits.dims(), &[2, 3]);
    let y = Tensor::new(&[0u32, 2], &Device::Cpu).unwrap();
    let loss = candle_nn::loss::cross_entropy(&logits, &y).unwrap();
    let grads = loss.backward().unwrap();
    crate::models::init::assert_every_var_has_gradient(&vm, &grads, 5 + 16 * 2 + 2 + 2);
}

#[test]
fn padding_is_masked() {
    let cfg = BertConfig::tiny(40, 2);
    let vm = VarMap::new();
    let m = BertClassifier::new(&cfg, const_vb(&vm, &Device::Cpu)).unwrap();
    reinit(&vm, 9).unwrap();
    let dev = Device::Cpu;
    let a: Vec<Vec<f32>> = m
        .forward(
            &Tensor::new(&[[2u32, 7, 3]], &dev).unwrap(),
            &Tensor::new(&[[1u32, 1, 1]], &dev).unwrap(),
            None,
        )
        .unwrap()
        .to_vec2()
        .unwrap();
    let b: Vec<Vec<f32>> = m
        .forward(
            &Tensor::new(&[[2u32, 7, 3, 0, 0]], &dev).unwrap(),
            &Tensor::new(&[[1u32, 1, 1, 0, 0]], &dev).unwrap(),
            None,
        )
        .unwrap()
        .to_vec2()
        .unwrap();
    for k in 0..2 {
        assert!((a[0][k] - b[0][k]).abs() < 1e-5, "{a:?} {b:?}");
    }
}

#[test]
fn loading_accepts_hf_names_and_checks_shapes() {
    let cfg = BertConfig::tiny(40, 2);
    let src = VarMap::new();
    BertClassifier::new(&cfg, const_vb(&src, &Device::Cpu)).unwrap();
    reinit(&src, 1).unwrap();
    // Export like all-MiniLM: no `bert.` prefix, old gamma/beta names, no pooler/classifier.
    let mut w = HashMap::new();
    for (k, v) in src.data().lock().unwrap().iter() {
        if k.starts_with("bert.pooler") || k.starts_with("classifier") {
            continue;
        }
        let k = k
            .strip_prefix("bert.")
            .unwrap()
            .replace("LayerNorm.weight", "LayerNorm.gamma")
            .replace("LayerNorm.bias", "LayerNorm.beta");
        w.insert(k, v.as_tensor().copy().unwrap());
    }
    let dst = VarMap::new();
    BertClassifier::new(&cfg, const_vb(&dst, &Device::Cpu)).unwrap();
    reinit(&dst, 2).unwrap();
    let missing = load_hf_weights(&dst, &w, true, "test").unwrap();
    assert_eq!(missing.len(), 4);
    assert!(load_hf_weights(&dst, &w, false, "test").is_err());
    let s = src.data().lock().unwrap();
    let d = dst.data().lock().unwrap();
    let key = "bert.encoder.layer.1.output.LayerNorm.weight";
    let a: Vec<f32> = s[key].as_tensor().to_vec1().unwrap();
    let b: Vec<f32> = d[key].as_tensor().to_vec1().unwrap();
    assert_eq!(a, b);
    drop(d);
    // A classifier with 3 classes into a 2-class model.
    let mut w3 = w.clone();
    w3.insert(
        "classifier.weight".into(),
        Tensor::zeros((3, 32), DType::F32, &Device::Cpu).unwrap(),
    );
    let e = load_hf_weights(&dst, &w3, true, "test").unwrap_err();
    assert!(e.to_string().contains("class-count mismatch"), "{e}");
}

/// ARCHITECTURE.md's claim: on all-MiniLM-L6-v2, retort's BERT (loaded as a student) and
/// candle-transformers' `BertModel` on the same weights, token ids and mask give the same
/// hidden states at real tokens and the same pooled output.
#[test]
fn matches_candle_transformers_on_minilm() {
    use crate::models::files::{CONFIG_FILE, WEIGHTS_FILE};
    use crate::models::model::Model;
    use crate::models::weights::read_safetensors;
    if !crate::testing::available(crate::testing::Dep::MiniLm) {
        return;
    }
    let folder = crate::assets::minilm_dir().expect("present");
    let dev = Device::Cpu;
    let labels = vec!["neg".to_string(), "pos".to_string()];
    let student = Model::bert_from_pretrained(&folder, labels, 0, &dev).unwrap();
    let texts = [
        "a test sentence",
        "Another, somewhat longer sentence: with punctuation and more words in it!",
        "",
    ];
    let (ids, mask) = student.encode(&texts).unwrap();
    let cfg = BertConfig::from_json(student.config.json()).unwrap();
    let ours = BertClassifier::new(
        &cfg,
        VarBuilder::from_varmap(&student.varmap, DType::F32, &dev),
    )
    .unwrap();
    let hidden = ours.encode(&ids, &mask, None).unwrap();
    let pooled = ours.features(&ids, &mask, None).unwrap();

    let weights = read_safetensors(&folder.join(WEIGHTS_FILE), &dev).unwrap();
    let text = fs_err::read_to_string(folder.join(CONFIG_FILE)).unwrap();
    let ref_cfg: candle_transformers::models::bert::Config = serde_json::from_str(&text).unwrap();
    let vb = VarBuilder::from_tensors(weights.clone(), DType::F32, &dev);
    let reference = candle_transformers::models::bert::BertModel::load(vb, &ref_cfg).unwrap();
    let ref_hidden = reference
        .forward(&ids, &ids.zeros_like().unwrap(), Some(&mask))
        .unwrap();
    let pooler = Linear::new(
        weights["pooler.dense.weight"].clone(),
        Some(weights["pooler.dense.bias"].clone()),
    );
    let cls = ref_hidden.narrow(1, 0, 1).unwrap().squeeze(1).unwrap();
    let ref_pooled = candle_nn::Module::forward(&pooler, &cls)
        .unwrap()
        .tanh()
        .unwrap();

    let real = mask.to_dtype(DType::F32).unwrap().unsqueeze(2).unwrap();
    let max_abs = |a: &Tensor, b: &Tensor| -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar()
            .unwrap()
    };
    let d_hidden = max_abs(
        &hidden.broadcast_mul(&real).unwrap(),
        &ref_hidden.broadcast_mul(&real).unwrap(),
    );
    let d_pooled = max_abs(&pooled, &ref_pooled);
    eprintln!("MiniLM vs candle-transformers: max |diff| hidden {d_hidden:e}, pooled {d_pooled:e}");
    assert!(d_hidden < 1e-4, "hidden states differ by {d_hidden}");
    assert!(d_pooled < 1e-4, "pooled outputs differ by {d_pooled}");
}
