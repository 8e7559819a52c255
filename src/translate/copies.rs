//! A row's back-translated copies: what the engine returned for each copy, turned into the
//! copies written and the counts of those dropped.
//!
//! A copy is dropped when it is empty or when it equals the row's text (also after Unicode
//! NFC, the form the engine was given); both count as skipped. A copy equal to an earlier copy
//! of the same row (two pivots often give the same English back) is dropped later, by the
//! augmenters' writer, and counted in `copies_duplicate`. Nothing dropped is silent.

use unicode_normalization_alignments::UnicodeNormalization;

use crate::augment::adapter::RowResult;
use crate::augment::Augmentation;

/// What the engine returned for one requested copy.
pub(crate) struct Candidate {
    /// The translation, or why it failed.
    pub text: std::result::Result<String, String>,
    /// `op_params` of the copy.
    pub params: String,
    /// The copy's seed.
    pub seed: u64,
    /// What made it (e.g. "pivot `spa`"), for failure details.
    pub label: String,
}

/// The copies of one row, in candidate order.
pub(crate) struct RowCopies {
    /// The copies kept.
    pub made: Vec<(Augmentation, u64)>,
    /// Copies that came back empty.
    pub empty: u32,
    /// Copies equal to the row's text.
    pub unchanged: u32,
    /// Failures, one per failed copy.
    pub errors: Vec<String>,
}

impl RowCopies {
    /// Sorts the candidates of the row whose text is `source`.
    pub fn new(source: &str, candidates: impl IntoIterator<Item = Candidate>) -> Self {
        let source = source.trim();
        let nfc: String = source.nfc().map(|(c, _)| c).collect();
        let mut copies = RowCopies {
            made: Vec::new(),
            empty: 0,
            unchanged: 0,
            errors: Vec::new(),
        };
        for c in candidates {
            match c.text {
                Ok(t) if t.is_empty() => copies.empty += 1,
                Ok(t) if t == source || t == nfc => copies.unchanged += 1,
                Ok(t) => copies.made.push((
                    Augmentation {
                        text: t,
                        op: "backtranslate",
                        params: c.params,
                    },
                    c.seed,
                )),
                Err(e) => copies.errors.push(format!("{}: {e}", c.label)),
            }
        }
        copies
    }

    /// The row's result: it fails (goes to the rejects) only when every copy failed. Empty,
    /// unchanged and failed copies all count as skipped.
    pub fn into_result(self) -> RowResult {
        let failure = (!self.errors.is_empty() && self.made.is_empty())
            .then(|| ("backtranslate_failed", self.errors.join("; ")));
        let no_copy = (self.made.is_empty() && self.unchanged > 0).then(|| {
            (
                "copy_equals_original",
                "every translation came back equal to the original text".to_string(),
            )
        });
        let skipped = self.empty + self.unchanged + self.errors.len() as u32;
        RowResult {
            copies: self.made,
            skipped,
            failure,
            no_copy,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Candidate, RowCopies};

    fn cand(text: &str) -> Candidate {
        Candidate {
            text: Ok(text.to_string()),
            params: "{}".into(),
            seed: 7,
            label: "pivot `x`".into(),
        }
    }

    #[test]
    fn empty_and_unchanged_copies_are_skipped_and_counted() {
        let c = RowCopies::new(
            " a good film ",
            [
                cand("a fine film"),
                cand("a fine film"),
                cand("a good film"),
                cand(""),
                cand("a nice film"),
            ],
        );
        let texts: Vec<_> = c.made.iter().map(|m| m.0.text.as_str()).collect();
        // The second "a fine film" is left to the writer, which counts it as a duplicate.
        assert_eq!(texts, ["a fine film", "a fine film", "a nice film"]);
        assert_eq!((c.empty, c.unchanged), (1, 1));
        let r = c.into_result();
        assert_eq!(r.skipped, 2);
        assert!(r.failure.is_none());
    }

    #[test]
    fn a_copy_equal_to_the_nfc_text_is_a_duplicate() {
        let c = RowCopies::new("nai\u{0308}ve", [cand("na\u{00ef}ve")]);
        assert!(c.made.is_empty());
        assert_eq!(c.unchanged, 1);
        let r = c.into_result();
        assert_eq!(r.no_copy.map(|n| n.0), Some("copy_equals_original"));
    }

    #[test]
    fn a_row_fails_only_when_every_copy_failed() {
        let failed = || Candidate {
            text: Err("boom".into()),
            ..cand("")
        };
        let r = RowCopies::new("x", [failed(), cand("y")]).into_result();
        assert!(r.failure.is_none());
        assert_eq!(r.skipped, 1);
        let r = RowCopies::new("x", [failed(), failed()]).into_result();
        let (reason, detail) = r.failure.expect("fails");
        assert_eq!(reason, "backtranslate_failed");
        assert_eq!(detail, "pivot `x`: boom; pivot `x`: boom");
    }
}
