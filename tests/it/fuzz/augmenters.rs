//! Each augmenter on hostile text: it never panics, never returns the text unchanged, is
//! deterministic for a seed, writes `op_params` as a JSON object, and keeps what it promises to
//! keep (shuffle and swap move text without changing it, delete only removes, insert only adds).

use rand::{Rng, SeedableRng};
use retort::augment::eda::{Eda, EdaConfig, TECHNIQUES};
use retort::augment::perturb::{Perturb, PerturbConfig, PerturbMode};
use retort::augment::shuffle::Shuffle;
use retort::augment::synonym::{Synonym, SynonymConfig};
use retort::augment::tokens::Doc;
use retort::augment::{Augmentation, Augmenter, RowRng};

use super::gen::{self, campaign, show, Gen};
use crate::common::{available, Dep};

/// A text for one case: mostly hostile, sometimes plain sentences (so that every operation
/// really runs), now and then an empty one.
fn case_text(g: &mut Gen) -> String {
    if g.random_range(0..10) < 2 {
        gen::plain_text(g)
    } else {
        gen::text(g)
    }
}

/// Runs copy `copy` of `text` twice with one seed and checks the properties every augmenter
/// shares; returns the copy made, if any.
fn run_checked(aug: &dyn Augmenter, text: &str, g: &mut Gen, ops: &[&str]) -> Option<Augmentation> {
    let doc = Doc::new(text);
    let (copy, row_seed, seed) = (g.random_range(0..6), g.random::<u64>(), g.random::<u64>());
    let made = aug.augment_copy(&doc, copy, row_seed, &mut RowRng::seed_from_u64(seed));
    let again = aug.augment_copy(&doc, copy, row_seed, &mut RowRng::seed_from_u64(seed));
    assert_eq!(made, again, "not deterministic on {}", show(text));
    let a = made?;
    assert_ne!(a.text, text, "returned the text unchanged: {}", show(text));
    assert!(ops.contains(&a.op), "op {:?} on {}", a.op, show(text));
    let params: serde_json::Value = serde_json::from_str(&a.params).unwrap_or_else(|e| {
        panic!(
            "op_params {:?} is not JSON ({e}) on {}",
            a.params,
            show(text)
        )
    });
    assert!(params.is_object(), "op_params {:?}", a.params);
    Some(a)
}

fn sorted_chars(s: &str) -> Vec<char> {
    let mut v: Vec<char> = s.chars().collect();
    v.sort_unstable();
    v
}

/// Whether `small`'s characters appear in `big` in order.
fn is_subsequence(small: &str, big: &str) -> bool {
    let mut it = big.chars();
    small.chars().all(|c| it.any(|b| b == c))
}

/// The tokenizer every augmenter uses covers the text exactly, in order, whatever it holds.
#[test]
fn tokenizer_covers_any_text() {
    campaign("tokenizer", 400, |g, _| {
        let text = gen::text(g);
        let doc = Doc::new(&text);
        let mut pos = 0;
        for t in &doc.tokens {
            assert_eq!(t.start, pos, "gap or overlap in {}", show(&text));
            assert!(t.end > t.start && text.is_char_boundary(t.end));
            pos = t.end;
        }
        assert_eq!(pos, text.len());
        assert_eq!(doc.rebuild(|_| None), text);
    });
}

/// `shuffle` only moves sentences: the same characters, the same length.
#[test]
fn shuffle_on_hostile_text() {
    campaign("shuffle", 300, |g, _| {
        let text = case_text(g);
        if let Some(a) = run_checked(&Shuffle, &text, g, &["shuffle"]) {
            assert_eq!(a.text.len(), text.len(), "{}", show(&text));
            assert_eq!(
                sorted_chars(&a.text),
                sorted_chars(&text),
                "{}",
                show(&text)
            );
        }
    });
}

fn perturb(mode: PerturbMode, g: &mut Gen) -> Perturb {
    let mut cfg = PerturbConfig::new(mode);
    match (mode, g.random_range(0..3)) {
        (PerturbMode::Delete, 0) => cfg.p = Some([0.0, 1.0, 0.5][g.random_range(0..3)]),
        (PerturbMode::Delete, 1) => cfg.alpha = Some(g.random()),
        (PerturbMode::Delete, _) => cfg.p = Some(g.random()),
        (_, 0) => cfg.n = Some(g.random_range(0..6)),
        (_, 1) => cfg.alpha = Some([0.0, 1.0, 0.3][g.random_range(0..3)]),
        _ => {}
    }
    Perturb::new(&cfg).unwrap_or_else(|e| panic!("{cfg:?}: {e}"))
}

/// `perturb` swap moves words and nothing else: the same characters, the same length.
#[test]
fn perturb_swap_on_hostile_text() {
    campaign("perturb swap", 300, |g, _| {
        let aug = perturb(PerturbMode::Swap, g);
        let text = case_text(g);
        if let Some(a) = run_checked(&aug, &text, g, &["perturb"]) {
            assert_eq!(
                sorted_chars(&a.text),
                sorted_chars(&text),
                "{}",
                show(&text)
            );
        }
    });
}

/// `perturb` delete only removes: the copy is a subsequence of the text and keeps a word.
#[test]
fn perturb_delete_on_hostile_text() {
    campaign("perturb delete", 300, |g, _| {
        let aug = perturb(PerturbMode::Delete, g);
        let text = case_text(g);
        if let Some(a) = run_checked(&aug, &text, g, &["perturb"]) {
            assert!(
                is_subsequence(&a.text, &text),
                "{} -> {}",
                show(&text),
                show(&a.text)
            );
            assert!(a.text.chars().any(char::is_alphanumeric), "{}", show(&text));
            assert!(a.text.len() < text.len());
        }
    });
}

/// `perturb` insert only adds: the text is a subsequence of the copy.
#[test]
fn perturb_insert_on_hostile_text() {
    if !available(Dep::WordNet) {
        gen::say("SKIPPED perturb_insert_on_hostile_text: WordNet is not installed");
        return;
    }
    campaign("perturb insert", 200, |g, _| {
        let aug = perturb(PerturbMode::Insert, g);
        let text = case_text(g);
        if let Some(a) = run_checked(&aug, &text, g, &["perturb"]) {
            assert!(
                is_subsequence(&text, &a.text),
                "{} -> {}",
                show(&text),
                show(&a.text)
            );
            assert!(a.text.len() > text.len());
        }
    });
}

fn synonym(g: &mut Gen) -> Synonym {
    let mut cfg = SynonymConfig {
        use_pos: g.random(),
        ..Default::default()
    };
    match g.random_range(0..4) {
        0 => cfg.n = Some(g.random_range(0..6)),
        1 => cfg.p = Some([0.0, 1.0, 0.5][g.random_range(0..3)]),
        2 => cfg.alpha = Some(g.random()),
        _ => {}
    }
    if g.random_range(0..5) == 0 {
        cfg.stopwords = Some(vec!["good".into(), "".into(), "\u{301}".into()]);
    }
    Synonym::new(&cfg).unwrap_or_else(|e| panic!("{cfg:?}: {e}"))
}

/// `synonym` (with the real WordNet) changes words only: whitespace-free runs of other
/// characters (punctuation, emoji, marks on their own) stay, in order.
#[test]
fn synonym_on_hostile_text() {
    if !available(Dep::WordNet) {
        gen::say("SKIPPED synonym_on_hostile_text: WordNet is not installed");
        return;
    }
    campaign("synonym", 300, |g, _| {
        let aug = synonym(g);
        let text = case_text(g);
        if let Some(a) = run_checked(&aug, &text, g, &["synonym"]) {
            let others = |s: &str| -> String {
                let d = Doc::new(s);
                (0..d.tokens.len())
                    .filter(|&t| !d.tokens[t].is_word && !d.is_space(t))
                    .map(|t| d.token_text(t))
                    .collect()
            };
            // Lemmas may hold hyphens or apostrophes (compare without the joiners) and other
            // punctuation ("O.K."): the text's own characters stay, in order, among them.
            let strip = |s: String| s.replace(['-', '\''], "");
            assert!(
                is_subsequence(&strip(others(&text)), &strip(others(&a.text))),
                "{} -> {}",
                show(&text),
                show(&a.text)
            );
        }
    });
}

/// `eda` (every technique, with and without `eda_compat`): one technique per copy, named in
/// `op_params`.
#[test]
fn eda_on_hostile_text() {
    if !available(Dep::WordNet) {
        gen::say("SKIPPED eda_on_hostile_text: WordNet is not installed");
        return;
    }
    campaign("eda", 300, |g, _| {
        let cfg = EdaConfig {
            alpha: [0.0, 0.1, 0.5, 1.0][g.random_range(0..4)],
            eda_compat: g.random_range(0..4) == 0,
            ..Default::default()
        };
        let aug = Eda::new(&cfg).unwrap();
        let text = case_text(g);
        if let Some(a) = run_checked(&aug, &text, g, &["synonym", "perturb"]) {
            let params: serde_json::Value = serde_json::from_str(&a.params).unwrap();
            let t = params["technique"].as_str().unwrap_or_default();
            assert!(TECHNIQUES.contains(&t), "{}", a.params);
            if cfg.eda_compat {
                assert!(
                    !a.text.chars().any(|c| c.is_control()),
                    "eda_compat kept a control character: {}",
                    show(&a.text)
                );
            }
        }
    });
}

/// Every augmenter on texts of about 1 MB: no panic, and in reasonable time.
#[test]
fn augmenters_on_huge_texts() {
    let alpha = retort::augment::amount::Amount::Alpha(0.1);
    let mut augs: Vec<(&str, Box<dyn Augmenter>)> = vec![
        ("shuffle", Box::new(Shuffle) as Box<dyn Augmenter>),
        ("swap", Box::new(Perturb::swap(alpha)) as Box<dyn Augmenter>),
        (
            "delete",
            Box::new(Perturb::delete(0.1, false)) as Box<dyn Augmenter>,
        ),
    ];
    if available(Dep::WordNet) {
        augs.push((
            "synonym",
            Box::new(Synonym::new(&SynonymConfig::default()).unwrap()),
        ));
        augs.push(("eda", Box::new(Eda::new(&EdaConfig::default()).unwrap())));
        let insert = PerturbConfig::new(PerturbMode::Insert);
        augs.push(("insert", Box::new(Perturb::new(&insert).unwrap())));
    } else {
        gen::say(
            "SKIPPED the WordNet augmenters of augmenters_on_huge_texts: WordNet is not installed",
        );
    }
    let started = std::time::Instant::now();
    let mut runs = 0;
    for (what, text) in gen::huge_texts() {
        let doc = Doc::new(&text);
        for (name, aug) in &augs {
            let t = std::time::Instant::now();
            let made = aug.augment_copy(&doc, 0, 7, &mut RowRng::seed_from_u64(7));
            if let Some(a) = made {
                assert_ne!(a.text, text, "{name} on {what}");
            }
            runs += 1;
            assert!(
                t.elapsed().as_secs() < 20,
                "{name} took {:?} on 1 MB of {what}",
                t.elapsed()
            );
        }
    }
    gen::say(&format!(
        "fuzz: huge texts: {runs} runs of 1 MB in {:.2} s",
        started.elapsed().as_secs_f64()
    ));
}

/// A count `n` far beyond the words of a text (TOML takes any 64-bit integer) is refused when
/// the stage is built, instead of looping for ever or aborting on allocation.
#[test]
fn perturb_refuses_a_huge_count() {
    for mode in [PerturbMode::Swap, PerturbMode::Insert] {
        let mut cfg = PerturbConfig::new(mode);
        cfg.n = Some(i64::MAX as usize);
        let Err(err) = Perturb::new(&cfg) else {
            panic!("n = 2^63-1 was accepted");
        };
        assert!(err.to_string().contains("at most 1000"), "{err}");
    }
}
