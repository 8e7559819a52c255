//! EDA (Wei & Zou 2019): each copy uses one of synonym replacement (SR), random insertion
//! (RI), random swap (RS) or random deletion (RD), all with strength `alpha`.
//!
//! Copies of one row are spread evenly over the four techniques: copy `i` uses
//! `perm[i % 4]`, where `perm` is a random permutation of `[SR, RI, RS, RD]` drawn from
//! `RowRng::seed_from_u64(row_seed)`. When that technique does not apply to the text, the next
//! ones in `perm` are tried in turn.
//!
//! Output: `op` of the technique used (`synonym` or `perturb`), params `{"technique":"sr",...}` followed by the keys of the technique
//! (`{"technique":"sr","n":2}`, `{"technique":"rd","mode":"delete","p":0.1,"deleted":1}`, ...).

use std::path::PathBuf;

use std::sync::Arc;

use rand::{Rng, SeedableRng};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::error::Result;
use crate::stage::kind::{Kind, Needs, Role};

use super::adapter::{augment_keys, build_augment, parse_augment, CopyOptions};
use super::amount::{check_unit, Amount, DEFAULT_ALPHA};
use super::perturb::Perturb;
use super::stopwords::Stopwords;
use super::synonym::Synonym;
use super::tokens::Doc;
use super::wordnet::{default_wordnet_dir, SynonymTable};
use super::{Augmentation, Augmenter, RowRng};

/// Configuration of the `eda` augmenter.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EdaConfig {
    /// Strength in [0, 1] of every technique: SR, RI and RS change max(1, floor(alpha · words))
    /// words, RD deletes each word with probability alpha.
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    /// Directory of the WordNet 3.0 database.
    #[serde(default = "default_wordnet_dir")]
    pub wordnet: PathBuf,
    /// Words never replaced and never used for insertion (case-insensitive); replaces the
    /// built-in English list.
    #[serde(default)]
    pub stopwords: Option<Vec<String>>,
    /// Behave like the reference EDA code: lower-case the text and keep only the letters a-z
    /// and single spaces (apostrophes dropped, anything else a space) before augmenting.
    #[serde(default)]
    pub eda_compat: bool,
}

fn default_alpha() -> f64 {
    DEFAULT_ALPHA
}

impl Default for EdaConfig {
    fn default() -> Self {
        EdaConfig {
            alpha: DEFAULT_ALPHA,
            wordnet: default_wordnet_dir(),
            stopwords: None,
            eda_compat: false,
        }
    }
}

/// The four EDA techniques, by their short names.
pub const TECHNIQUES: [&str; 4] = ["sr", "ri", "rs", "rd"];

/// The EDA augmenter.
#[derive(Debug, Clone)]
pub struct Eda {
    sr: Synonym,
    ri: Perturb,
    rs: Perturb,
    rd: Perturb,
    compat: bool,
}

/// The reference EDA cleaning: lower-case a-z letters and single spaces, trimmed.
pub fn eda_clean(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii_alphabetic() {
            out.push(c.to_ascii_lowercase());
        } else if c == '\'' || c == '\u{2019}' {
            continue;
        } else if !out.is_empty() && !out.ends_with(' ') {
            out.push(' ');
        }
    }
    if out.ends_with(' ') {
        out.pop();
    }
    out
}

/// The technique order of a row: a permutation of `0..4` (indices into [`TECHNIQUES`])
/// drawn from `RowRng::seed_from_u64(row_seed)`.
pub fn technique_order(row_seed: u64) -> [usize; 4] {
    let mut rng = RowRng::seed_from_u64(row_seed);
    let mut perm = [0, 1, 2, 3];
    for i in (1..4).rev() {
        perm.swap(i, rng.random_range(0..=i));
    }
    perm
}

impl Eda {
    /// Validates `cfg` and loads (or reuses) the WordNet table.
    pub fn new(cfg: &EdaConfig) -> Result<Eda> {
        check_unit("eda", "alpha", cfg.alpha)?;
        let table = SynonymTable::load(&cfg.wordnet)?;
        let stopwords = Stopwords::new(cfg.stopwords.as_deref());
        let amount = Amount::Alpha(cfg.alpha);
        Ok(Eda {
            sr: Synonym::with_table(table.clone(), stopwords.clone(), amount, true),
            ri: Perturb::insert(table, stopwords, amount),
            rs: Perturb::swap(amount),
            rd: Perturb::delete(cfg.alpha, true),
            compat: cfg.eda_compat,
        })
    }

    /// Makes copy number `copy_index` of a row whose seed is `row_seed` (see the module docs);
    /// `rng` drives the technique itself.
    pub fn augment_copy(
        &self,
        doc: &Doc<'_>,
        copy_index: u32,
        row_seed: u64,
        rng: &mut RowRng,
    ) -> Option<Augmentation> {
        let order = technique_order(row_seed);
        if self.compat {
            let clean = eda_clean(doc.text);
            self.run(&Doc::new(&clean), &order, copy_index, rng)
        } else {
            self.run(doc, &order, copy_index, rng)
        }
    }

    fn run(
        &self,
        doc: &Doc<'_>,
        order: &[usize; 4],
        copy_index: u32,
        rng: &mut RowRng,
    ) -> Option<Augmentation> {
        let start = (copy_index % 4) as usize;
        for k in 0..4 {
            let t = order[(start + k) % 4];
            let made = match t {
                0 => self.sr.augment(doc, rng),
                1 => self.ri.augment(doc, rng),
                2 => self.rs.augment(doc, rng),
                _ => self.rd.augment(doc, rng),
            };
            if let Some(a) = made {
                let inner = a.params.strip_prefix('{').unwrap_or("}");
                let sep = if inner.starts_with('}') { "" } else { "," };
                let params = format!("{{\"technique\":\"{}\"{sep}{inner}", TECHNIQUES[t]);
                return Some(Augmentation {
                    text: a.text,
                    op: a.op,
                    params,
                });
            }
        }
        None
    }
}

impl Augmenter for Eda {
    /// Copy 0 of a row whose seed is drawn from `rng`: one technique chosen at random, the
    /// others tried when it does not apply.
    fn augment(&self, doc: &Doc<'_>, rng: &mut RowRng) -> Option<Augmentation> {
        let row_seed = rng.random::<u64>();
        Eda::augment_copy(self, doc, 0, row_seed, rng)
    }

    fn augment_copy(
        &self,
        doc: &Doc<'_>,
        copy: u32,
        row_seed: u64,
        rng: &mut RowRng,
    ) -> Option<Augmentation> {
        Eda::augment_copy(self, doc, copy, row_seed, rng)
    }
}

/// Stage kind `eda`.
pub static KIND: Kind<(CopyOptions, EdaConfig)> = Kind {
    name: "eda",
    role: Role::Transform,
    summary: "The EDA recipe (Wei & Zou 2019): each copy made by one of synonym replacement, random insertion, swap or deletion",
    needs: Needs {
        wordnet: true,
        ..Needs::NOTHING
    },
    example: r#"alpha = 0.1
copies = 4
keep_original = true"#,
    parse: parse_augment,
    keys: augment_keys::<EdaConfig>,
    build: |cfg, cx| {
        build_augment(cfg, cx, |c| {
            Ok(Arc::new(Eda::new(&c)?) as Arc<dyn Augmenter>)
        })
    },
    config: std::marker::PhantomData,
};

#[cfg(test)]
mod tests {
    use super::*;

    fn eda(compat: bool) -> Eda {
        Eda::new(&EdaConfig {
            eda_compat: compat,
            ..Default::default()
        })
        .unwrap()
    }

    const TEXT: &str =
        "The committee will decide about the new proposal for the city park next week.";

    #[test]
    fn config() {
        let cfg: EdaConfig = toml::from_str("alpha = 0.2\neda_compat = true").unwrap();
        assert_eq!(cfg.alpha, 0.2);
        assert!(cfg.eda_compat);
        assert!(toml::from_str::<EdaConfig>("n = 1").is_err());
        let e = Eda::new(&EdaConfig {
            alpha: 1.5,
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.to_string().contains("`alpha`"));
    }

    #[test]
    fn copies_spread_over_techniques() {
        let e = eda(false);
        let d = Doc::new(TEXT);
        for row_seed in 0..10u64 {
            let mut seen: Vec<String> = Vec::new();
            for copy in 0..4u32 {
                let mut rng = RowRng::seed_from_u64(row_seed * 100 + copy as u64);
                let a = e.augment_copy(&d, copy, row_seed, &mut rng).unwrap();
                assert!(a.op == "synonym" || a.op == "perturb", "{}", a.op);
                assert_ne!(a.text, TEXT);
                let v: serde_json::Value = serde_json::from_str(&a.params).unwrap();
                seen.push(v["technique"].as_str().unwrap().to_string());
            }
            seen.sort();
            assert_eq!(seen, ["rd", "ri", "rs", "sr"], "row {row_seed}");
        }
        let order = technique_order(7);
        let mut sorted = order;
        sorted.sort();
        assert_eq!(sorted, [0, 1, 2, 3]);
        assert_eq!(order, technique_order(7));
    }

    #[test]
    fn falls_back_when_technique_does_not_apply() {
        let e = eda(false);
        // no synonyms: SR and RI never apply; RS and RD do.
        let d = Doc::new("xqzv blorpt fnarg");
        for copy in 0..8u32 {
            let mut rng = RowRng::seed_from_u64(copy as u64);
            let a = e.augment_copy(&d, copy, 7, &mut rng).unwrap();
            let v: serde_json::Value = serde_json::from_str(&a.params).unwrap();
            assert!(matches!(v["technique"].as_str(), Some("rs" | "rd")));
        }
    }

    #[test]
    fn compat_cleans_text() {
        assert_eq!(
            eda_clean("Don't STOP -- it's 4 you!  Café"),
            "dont stop its you caf"
        );
        assert_eq!(eda_clean("  ...  "), "");
        let e = eda(true);
        let d = Doc::new("Hello, World! The dog's HAPPY.");
        let mut rng = RowRng::seed_from_u64(7);
        let a = e.augment_copy(&d, 0, 7, &mut rng).unwrap();
        assert!(!a.text.contains([',', '!', '.']), "{}", a.text);
        assert!(!a.text.contains("HAPPY"), "{}", a.text);
    }

    #[test]
    fn edge_cases() {
        for compat in [false, true] {
            let e = eda(compat);
            for text in [
                "",
                " ",
                "word",
                "?!",
                "東京は日本の首都です。",
                "the the",
                "😀 🎉",
                "e\u{301}te\u{301}",
                "שלום עולם",
            ] {
                for copy in 0..4 {
                    let mut rng = RowRng::seed_from_u64(7);
                    if let Some(a) = e.augment_copy(&Doc::new(text), copy, 7, &mut rng) {
                        assert_ne!(a.text, text);
                    }
                }
            }
        }
    }

    #[test]
    fn no_panic_on_random_unicode() {
        use crate::augment::perturb::{PerturbConfig, PerturbMode};
        use crate::augment::shuffle::{Shuffle, ShuffleConfig};
        use crate::augment::synonym::{Synonym, SynonymConfig};
        let alphabet: Vec<char> = "aZ é\u{301}'’-‐.!?,\n\t東京😀\u{200d}🎉שלםمرحبا0 9İıß"
            .chars()
            .collect();
        let mut augs: Vec<Box<dyn Augmenter>> = vec![
            Box::new(Synonym::new(&SynonymConfig::default()).unwrap()),
            Box::new(Shuffle::new(&ShuffleConfig {})),
            Box::new(eda(false)),
            Box::new(eda(true)),
        ];
        for mode in [PerturbMode::Insert, PerturbMode::Delete, PerturbMode::Swap] {
            let mut cfg = PerturbConfig::new(mode);
            if mode == PerturbMode::Delete {
                cfg.p = Some(0.5);
            }
            augs.push(Box::new(Perturb::new(&cfg).unwrap()));
        }
        let mut rng = RowRng::seed_from_u64(7);
        for _ in 0..3000 {
            let len = rng.random_range(0..24);
            let mut text: String = (0..len)
                .map(|_| alphabet[rng.random_range(0..alphabet.len())])
                .collect();
            if rng.random_bool(0.3) {
                text.push_str(" happy dog. The car runs");
            }
            let doc = Doc::new(&text);
            assert_eq!(doc.rebuild(|_| None), text);
            for a in &augs {
                if let Some(out) = a.augment(&doc, &mut rng) {
                    assert_ne!(out.text, text);
                    let _: serde_json::Value = serde_json::from_str(&out.params).unwrap();
                }
            }
        }
    }

    #[test]
    fn deterministic_and_augmenter() {
        let e = eda(false);
        let d = Doc::new(TEXT);
        let a = e.augment(&d, &mut RowRng::seed_from_u64(7));
        let b = e.augment(&d, &mut RowRng::seed_from_u64(7));
        assert_eq!(a, b);
        assert!(a.is_some());
    }
}

#[cfg(test)]
mod bench {
    use super::*;
    use crate::augment::perturb::{PerturbConfig, PerturbMode};
    use crate::augment::shuffle::{Shuffle, ShuffleConfig};
    use crate::augment::synonym::SynonymConfig;
    use std::time::Instant;

    /// Copies per second on one core, tokenizing and seeding a fresh RNG for every copy as
    /// the pipeline does. Run with
    /// `cargo test --release bench_augmenters -- --ignored --nocapture`.
    #[test]
    #[ignore = "a benchmark, not a test: run it by hand (see above)"]
    fn bench_augmenters() {
        const TEXT: &str = "The quick brown fox jumps over the lazy dog while the farmer \
                            watches from his old wooden house. Nobody knows why it happened.";
        let n = Doc::new(TEXT).word_count();
        let eda_aug = Eda::new(&EdaConfig::default()).unwrap();
        let cases: Vec<(&str, Box<dyn Augmenter>)> = vec![
            (
                "synonym",
                Box::new(Synonym::new(&SynonymConfig::default()).unwrap()),
            ),
            (
                "perturb insert",
                Box::new(Perturb::new(&PerturbConfig::new(PerturbMode::Insert)).unwrap()),
            ),
            (
                "perturb delete",
                Box::new(Perturb::new(&PerturbConfig::new(PerturbMode::Delete)).unwrap()),
            ),
            (
                "perturb swap",
                Box::new(Perturb::new(&PerturbConfig::new(PerturbMode::Swap)).unwrap()),
            ),
            ("shuffle", Box::new(Shuffle::new(&ShuffleConfig {}))),
            ("eda (augment)", Box::new(eda_aug.clone())),
        ];
        const ITERS: u64 = 200_000;
        let start = Instant::now();
        let mut words = 0;
        for _ in 0..ITERS {
            words += Doc::new(std::hint::black_box(TEXT)).word_count();
        }
        let t = start.elapsed();
        eprintln!(
            "tokenize only: {:>10.0} docs/s ({n} words, {words})",
            ITERS as f64 / t.as_secs_f64()
        );
        for (name, aug) in &cases {
            let start = Instant::now();
            let mut made = 0u64;
            for i in 0..ITERS {
                let doc = Doc::new(std::hint::black_box(TEXT));
                let mut rng = RowRng::seed_from_u64(i);
                made += aug.augment(&doc, &mut rng).is_some() as u64;
            }
            let t = start.elapsed();
            eprintln!(
                "{name:<16} {:>10.0} copies/s ({made} made)",
                ITERS as f64 / t.as_secs_f64()
            );
        }
        let start = Instant::now();
        for i in 0..ITERS {
            let doc = Doc::new(std::hint::black_box(TEXT));
            let mut rng = RowRng::seed_from_u64(i);
            let _ = eda_aug.augment_copy(&doc, (i % 4) as u32, i / 4, &mut rng);
        }
        let t = start.elapsed();
        eprintln!(
            "{:<16} {:>10.0} copies/s",
            "eda (copies)",
            ITERS as f64 / t.as_secs_f64()
        );
    }
}
