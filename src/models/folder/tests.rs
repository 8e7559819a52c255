use super::*;
use crate::models::DropoutRng;
use crate::models::{BertConfig, CnnConfig};
use candle_nn::Optimizer;
use rand::{Rng, SeedableRng};

/// 192 toy sentences: label 1 contains "good", label 0 contains "bad".
fn toy() -> (Vec<String>, Vec<u32>) {
    let filler = [
        "the", "movie", "was", "really", "plot", "acting", "quite", "film", "story", "very", "a",
        "it", "ending", "music", "cast", "so",
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
        serde_json::from_str(&fs_err::read_to_string(folder.join(CONFIG_FILE)).unwrap()).unwrap();
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

/// The process's umask, from `/proc/self/status` (reading it does not change it).
fn umask() -> u32 {
    let status = fs_err::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("Umask:")).unwrap();
    u32::from_str_radix(line["Umask:".len()..].trim(), 8).unwrap()
}

#[test]
fn every_checkpoint_file_gets_the_mode_of_new_files() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("m");
    cnn(1).save(&folder).unwrap();
    let expected = 0o666 & !umask();
    for f in [CONFIG_FILE, TOKENIZER_FILE, INFO_FILE, WEIGHTS_FILE] {
        let mode = fs_err::metadata(folder.join(f))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, expected, "{f}: {mode:o}, expected {expected:o}");
    }
}

#[test]
fn save_replaces_only_what_retort_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let m = cnn(1);
    // Absent, empty, or a checkpoint retort wrote: replaced.
    let folder = dir.path().join("final");
    m.save(&folder).unwrap();
    m.save(&folder).unwrap();
    let empty = dir.path().join("empty");
    fs_err::create_dir(&empty).unwrap();
    m.save(&empty).unwrap();
    assert!(empty.join(WEIGHTS_FILE).is_file());
    // A folder of someone else's, a Hugging Face folder, a file: refused, left as they were.
    let mine = dir.path().join("mine");
    fs_err::create_dir(&mine).unwrap();
    fs_err::write(mine.join("notes.txt"), "keep me").unwrap();
    let hf = dir.path().join("hf");
    m.save(&hf).unwrap();
    fs_err::remove_file(hf.join(INFO_FILE)).unwrap();
    let bad_info = dir.path().join("bad-info");
    fs_err::create_dir(&bad_info).unwrap();
    fs_err::write(bad_info.join(INFO_FILE), "{}").unwrap();
    let file = dir.path().join("file");
    fs_err::write(&file, "a file").unwrap();
    for (target, why) in [
        (&mine, "it has no `retort.json`"),
        (&hf, "it has no `retort.json`"),
        (&bad_info, "its `retort.json` is not retort's"),
        (&file, "it is not a folder"),
    ] {
        let e = m.save(target).unwrap_err();
        assert_eq!(e.kind(), crate::error::ErrorKind::User);
        let text = e.to_string();
        assert!(
            text.contains(&format!("`{}` exists", target.display())),
            "{text}"
        );
        assert!(text.contains(why), "{text}");
        assert!(text.contains("refusing to replace it"), "{text}");
    }
    assert_eq!(
        fs_err::read_to_string(mine.join("notes.txt")).unwrap(),
        "keep me"
    );
    assert!(hf.join(WEIGHTS_FILE).is_file());
    assert_eq!(fs_err::read_to_string(&file).unwrap(), "a file");
}

#[test]
fn loads_real_minilm_when_present() {
    if !crate::testing::available(crate::testing::Dep::MiniLm) {
        return;
    }
    let folder = crate::assets::minilm_dir().expect("present");
    let m = Model::bert_from_pretrained(&folder, labels2(), 0, &Device::Cpu).unwrap();
    assert_eq!(m.config.arch().name(), "bert");
    let c = BertConfig::from_json(m.config.json()).unwrap();
    assert_eq!(c.hidden_size, 384);
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
#[ignore = "a speed report, not a test: run it by hand (see above)"]
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
