//! Tests of the Marian engine on seeded tiny folders.

use super::*;
use crate::translate::tiny::{write_tiny_marian, TinyMarian, TINY_WORDS};

fn tiny(eos_bias: f32) -> (tempfile::TempDir, Marian) {
    let dir = tempfile::tempdir().unwrap();
    let t = TinyMarian {
        seed: 5,
        layers: 2,
        eos_bias,
        ..TinyMarian::default()
    };
    write_tiny_marian(dir.path(), &t).unwrap();
    let m = Marian::load(dir.path(), &Device::Cpu).unwrap();
    (dir, m)
}

/// 24 texts of 1 to 6 words (several of each length), some with unknown words.
fn texts() -> Vec<String> {
    (0..24)
        .map(|i| {
            let n = 1 + i % 6;
            let mut words: Vec<&str> = (0..n)
                .map(|j| TINY_WORDS[(i * 7 + j * 3) % TINY_WORDS.len()])
                .collect();
            if i % 5 == 0 {
                words.push("zebra");
            }
            words.join(" ")
        })
        .collect()
}

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
}

fn gen(decoding: Decoding, max_new_tokens: usize) -> Generation {
    Generation {
        decoding,
        max_new_tokens,
    }
}

const SAMPLE: Decoding = Decoding::Sample { temperature: 0.9 };

#[test]
fn encoder_and_decoder_have_the_right_shapes() {
    let (_d, m) = tiny(0.0);
    let src = vec![vec![2, 3, 4, 0], vec![5, 6, 7, 0], vec![8, 9, 10, 0]];
    let enc = m.encoder_output(&src).unwrap();
    assert_eq!(enc.dims(), &[3, 4, 16]);
    let start = m.config().decoder_start_token_id;
    let prefix = vec![vec![start, 2], vec![start, 3], vec![start, 4]];
    let logits = m.decoder_logits(&src, &prefix).unwrap();
    assert_eq!(logits.dims(), &[3, 2, TINY_WORDS.len() + 3]);
    // Source ids end with `</s>`; unknown words are `<unk>`.
    assert_eq!(m.source_ids("the film zebra").unwrap(), vec![2, 4, 1, 0]);
}

#[test]
fn generation_stops_at_eos_and_at_max_new_tokens() {
    let src = vec![vec![2, 3, 0], vec![4, 5, 0]];
    let (_d, stops) = tiny(100.0);
    for d in [Decoding::Greedy, SAMPLE, Decoding::Beam { size: 3 }] {
        let out = stops.generate(&src, &[1, 2], &gen(d, 10)).unwrap();
        assert_eq!(out, vec![Vec::<u32>::new(); 2], "{d:?}");
    }
    let (_d, never) = tiny(-100.0);
    for d in [Decoding::Greedy, SAMPLE, Decoding::Beam { size: 3 }] {
        let out = never.generate(&src, &[1, 2], &gen(d, 7)).unwrap();
        for o in &out {
            assert_eq!(o.len(), 7, "{d:?}");
            assert!(!o.contains(&0) && !o.contains(&never.config().pad_token_id));
        }
    }
    // A model that can stop stays within the limit.
    let (_d, m) = tiny(0.0);
    for o in m.generate(&src, &[1, 2], &gen(SAMPLE, 5)).unwrap() {
        assert!(o.len() <= 5);
    }
}

#[test]
fn output_does_not_depend_on_batch_size_or_threads() {
    let (_d, m) = tiny(0.0);
    let texts = texts();
    let seeds: Vec<u64> = (0..texts.len() as u64).map(|i| i * 31 + 7).collect();
    for d in [SAMPLE, Decoding::Greedy, Decoding::Beam { size: 2 }] {
        let g = gen(d, 8);
        let base = m.translate(&texts, &seeds, &g, 16, &pool(2));
        assert!(base.iter().all(Result::is_ok), "{base:?}");
        // Not trivially equal: the texts differ from each other.
        let distinct: std::collections::HashSet<&String> =
            base.iter().map(|r| r.as_ref().unwrap()).collect();
        assert!(distinct.len() > 4, "{d:?}: {base:?}");
        eprintln!("{d:?}: {:?}", &base[..4]);
        assert_eq!(
            base,
            m.translate(&texts, &seeds, &g, 16, &pool(2)),
            "{d:?} again"
        );
        assert_eq!(
            base,
            m.translate(&texts, &seeds, &g, 1, &pool(2)),
            "{d:?} batch 1"
        );
        assert_eq!(
            base,
            m.translate(&texts, &seeds, &g, 3, &pool(1)),
            "{d:?} 1 thread"
        );
        // Alone, and with the texts in another order.
        let rev: Vec<String> = texts.iter().rev().cloned().collect();
        let rev_seeds: Vec<u64> = seeds.iter().rev().copied().collect();
        let mut back = m.translate(&rev, &rev_seeds, &g, 16, &pool(2));
        back.reverse();
        assert_eq!(base, back, "{d:?} reversed");
    }
}

#[test]
fn other_seeds_sample_other_texts() {
    let (_d, m) = tiny(-2.0);
    let texts = vec!["the film was good".to_string(); 8];
    let g = gen(Decoding::Sample { temperature: 2.0 }, 8);
    let seeds: Vec<u64> = (0..8).map(|c| crate::seed::copy_seed(42, c)).collect();
    let out: Vec<String> = m
        .translate(&texts, &seeds, &g, 8, &pool(1))
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let distinct: std::collections::HashSet<&String> = out.iter().collect();
    assert_eq!(distinct.len(), 8, "{out:?}");
    // Greedy ignores the seed.
    let greedy = m.translate(&texts, &seeds, &gen(Decoding::Greedy, 8), 8, &pool(1));
    assert!(greedy.iter().all(|g| g == &greedy[0]));
}

#[test]
fn beam_of_one_is_greedy() {
    let (_d, m) = tiny(0.0);
    let texts = texts();
    let seeds = vec![0; texts.len()];
    let greedy = m.translate(&texts, &seeds, &gen(Decoding::Greedy, 8), 8, &pool(1));
    let beam = m.translate(
        &texts,
        &seeds,
        &gen(Decoding::Beam { size: 1 }, 8),
        8,
        &pool(1),
    );
    assert_eq!(greedy, beam);
}

#[test]
fn round_trip_goes_there_and_back() {
    let dir = tempfile::tempdir().unwrap();
    let (f, b) = (dir.path().join("f"), dir.path().join("b"));
    write_tiny_marian(
        &f,
        &TinyMarian {
            seed: 1,
            ..TinyMarian::default()
        },
    )
    .unwrap();
    write_tiny_marian(
        &b,
        &TinyMarian {
            seed: 2,
            ..TinyMarian::default()
        },
    )
    .unwrap();
    let pair = MarianPair::load(&f, &b, &Device::Cpu).unwrap();
    let mut texts = texts();
    texts.push(vec!["film"; 80].join(" "));
    let seeds: Vec<u64> = (0..texts.len() as u64).collect();
    let g = gen(SAMPLE, 6);
    let out = pair.round_trip(&texts, &seeds, &g, 4, &pool(2));
    assert_eq!(out.len(), texts.len());
    assert!(out[..24].iter().all(Result::is_ok));
    let err = out[24].as_ref().unwrap_err();
    assert!(err.starts_with("forward: the text is 81 tokens"), "{err}");
    assert_eq!(out, pair.round_trip(&texts, &seeds, &g, 1, &pool(1)));
}

#[test]
fn missing_files_are_named_with_what_to_put_there() {
    let dir = tempfile::tempdir().unwrap();
    let nope = dir.path().join("nope");
    let e = Marian::load(&nope, &Device::Cpu).err().unwrap();
    assert!(
        e.render().contains("nope") && e.render().contains("config.json"),
        "{}",
        e.render()
    );
    write_tiny_marian(dir.path(), &TinyMarian::default()).unwrap();
    std::fs::rename(dir.path().join(SHARED_TOKENIZER), dir.path().join("x.json")).unwrap();
    let e = Marian::load(dir.path(), &Device::Cpu)
        .err()
        .unwrap()
        .render();
    assert!(
        e.contains(SOURCE_TOKENIZER) && e.contains("docs/MARIAN.md"),
        "{e}"
    );
    std::fs::rename(dir.path().join("x.json"), dir.path().join(SOURCE_TOKENIZER)).unwrap();
    std::fs::copy(
        dir.path().join(SOURCE_TOKENIZER),
        dir.path().join(TARGET_TOKENIZER),
    )
    .unwrap();
    Marian::load(dir.path(), &Device::Cpu).unwrap();
    std::fs::remove_file(dir.path().join(WEIGHTS_FILE)).unwrap();
    let e = Marian::load(dir.path(), &Device::Cpu)
        .err()
        .unwrap()
        .render();
    assert!(
        e.contains(WEIGHTS_FILE) && e.contains("does not exist"),
        "{e}"
    );
}

#[test]
fn wrong_weights_and_configs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_marian(dir.path(), &TinyMarian::default()).unwrap();
    let mut cfg = crate::translate::tiny::tiny_config(2);
    std::fs::write(
        dir.path().join(CONFIG_FILE),
        serde_json::to_string(&cfg).unwrap(),
    )
    .unwrap();
    let e = Marian::load(dir.path(), &Device::Cpu)
        .err()
        .unwrap()
        .render();
    assert!(
        e.contains("model.encoder.layers.1") && e.contains("missing"),
        "{e}"
    );
    cfg.encoder_layers = 1;
    cfg.decoder_layers = 1;
    cfg.share_encoder_decoder_embeddings = false;
    std::fs::write(
        dir.path().join(CONFIG_FILE),
        serde_json::to_string(&cfg).unwrap(),
    )
    .unwrap();
    let e = Marian::load(dir.path(), &Device::Cpu)
        .err()
        .unwrap()
        .render();
    assert!(e.contains("share_encoder_decoder_embeddings"), "{e}");
}
