//! Row-level text augmenters and the adapter that turns them into pipeline stages.
//!
//! An augmenter only knows how to make one augmented copy of one text. Copies,
//! `keep_original`, per-row seeding, provenance columns and parallelism are handled once,
//! by [`adapter`], for every augmenter.

pub mod adapter;
pub mod amount;
pub mod eda;
pub mod perturb;
pub mod replace;
pub mod shuffle;
pub mod stopwords;
pub mod synonym;
pub mod tokens;
pub mod wordnet;

/// The random number generator every augmenter receives: seeded per row and copy, so output
/// never depends on thread count, batch size or sharding.
pub type RowRng = rand_chacha::ChaCha8Rng;

/// One augmented copy of a text.
#[derive(Debug, Clone, PartialEq)]
pub struct Augmentation {
    /// The new text.
    pub text: String,
    /// The `op` column value: `synonym`, `perturb`, `shuffle`, ...
    pub op: &'static str,
    /// The `op_params` column value: a JSON object describing what was done.
    pub params: String,
}

/// A row-level augmenter: makes one augmented copy of a tokenized text.
pub trait Augmenter: Send + Sync {
    /// Returns one augmented copy, or `None` when no operation applies to this text
    /// (nothing to replace, a single sentence to shuffle, ...). Must never return the text
    /// unchanged, and must never panic, whatever the Unicode.
    fn augment(&self, doc: &tokens::Doc<'_>, rng: &mut RowRng) -> Option<Augmentation>;

    /// Makes copy number `copy` of a row whose own seed is `row_seed`. The default ignores
    /// both and calls [`Augmenter::augment`]; augmenters that spread copies over several
    /// operations (EDA) override it.
    fn augment_copy(
        &self,
        doc: &tokens::Doc<'_>,
        _copy: u32,
        _row_seed: u64,
        rng: &mut RowRng,
    ) -> Option<Augmentation> {
        self.augment(doc, rng)
    }

    /// Why no copy could be made of `doc`, as a rejects `(reason, detail)`: asked when every
    /// requested copy of a row came back `None` and the row is not kept otherwise. The default
    /// says no operation applied; augmenters with a more precise cause override it.
    fn no_copy_reason(&self, _doc: &tokens::Doc<'_>) -> (&'static str, String) {
        (
            "no_applicable_op",
            "no operation of this augmenter applies to the text".into(),
        )
    }
}
