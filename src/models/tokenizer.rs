//! `TextTokenizer`: a thin wrapper over a Hugging Face `tokenizers::Tokenizer` that trains a
//! BERT-style WordPiece vocabulary, pads batches and identifies itself by a content hash.

use std::path::Path;

use sha2::{Digest, Sha256};
use tokenizers::decoders::wordpiece::WordPiece as WordPieceDecoder;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::bert::BertProcessing;
use tokenizers::{AddedToken, Tokenizer, TruncationDirection};

use crate::error::{Error, Result};

/// The special tokens of a trained tokenizer, in id order: `[PAD]` = 0, `[UNK]` = 1,
/// `[CLS]` = 2, `[SEP]` = 3, `[MASK]` = 4.
pub const SPECIAL_TOKENS: [&str; 5] = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];

fn tok_err(what: impl Into<String>, e: tokenizers::Error) -> Error {
    Error::runtime(what).with_source(std::io::Error::other(e.to_string()))
}

/// A tokenizer for student models: text to padded id and mask matrices.
#[derive(Debug, Clone)]
pub struct TextTokenizer {
    inner: Tokenizer,
    pad_id: u32,
}

/// A padded batch produced by [`TextTokenizer::encode_batch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedBatch {
    /// Token ids, row-major `[B, L]`, padded with the pad id.
    pub ids: Vec<u32>,
    /// Attention mask, row-major `[B, L]`: 1 for real tokens, 0 for padding.
    pub mask: Vec<u32>,
    /// Number of rows `B`.
    pub batch: usize,
    /// Padded length `L` (the longest row, at most `max_len`).
    pub len: usize,
}

impl TextTokenizer {
    /// Wraps a `tokenizers::Tokenizer`. Any padding or truncation configured in it is removed
    /// ([`Self::encode_batch`] does both); the pad id is that of `[PAD]` (or `<pad>`), else 0.
    pub fn new(mut inner: Tokenizer) -> Result<Self> {
        inner
            .with_truncation(None)
            .map_err(|e| tok_err("cannot configure tokenizer", e))?;
        inner.with_padding(None);
        let pad_id = inner
            .token_to_id("[PAD]")
            .or_else(|| inner.token_to_id("<pad>"))
            .unwrap_or(0);
        Ok(TextTokenizer { inner, pad_id })
    }

    /// Loads a `tokenizer.json` (e.g. from a Hugging Face model folder).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        if !path.is_file() {
            return Err(
                Error::user(format!("tokenizer file `{}` not found", path.display()))
                    .with_hint("a model folder needs a `tokenizer.json` (Hugging Face format)"),
            );
        }
        let inner = Tokenizer::from_file(path).map_err(|e| {
            Error::user(format!("cannot read tokenizer `{}`", path.display()))
                .with_source(std::io::Error::other(e.to_string()))
        })?;
        Self::new(inner)
    }

    /// Parses a tokenizer from its JSON text.
    pub fn from_json(json: &str) -> Result<Self> {
        let inner: Tokenizer = json
            .parse()
            .map_err(|e| tok_err("cannot parse tokenizer JSON", e))?;
        Self::new(inner)
    }

    /// Trains a BERT-style uncased WordPiece tokenizer on `texts`: BERT normalizer (lowercase,
    /// clean text, Chinese characters split, accents stripped), BERT pre-tokenizer, WordPiece
    /// with `##` continuation, specials [`SPECIAL_TOKENS`] at ids 0..5, and a post-processor that
    /// adds `[CLS]`/`[SEP]`. The vocabulary comes from [`super::wordpiece::train_vocab`] (merges
    /// need a pair seen at least twice). `vocab_size` counts the specials; the result may be
    /// smaller when the texts have fewer distinct pieces (or larger when the alphabet alone
    /// exceeds it). Deterministic: the same texts give the same JSON bytes (no seed: training
    /// involves no randomness; `tokenizers`' own trainer is not deterministic).
    pub fn train_wordpiece(texts: &[&str], vocab_size: usize) -> Result<Self> {
        if vocab_size < SPECIAL_TOKENS.len() + 1 {
            return Err(Error::user(format!(
                "vocabulary size {vocab_size} is too small (at least {} needed)",
                SPECIAL_TOKENS.len() + 1
            )));
        }
        let tokens = super::wordpiece::train_vocab(texts, &SPECIAL_TOKENS, vocab_size, 2)?;
        // vocab.txt format (one token per line, id = line number); tokens never hold newlines.
        let vocab = WordPiece::read_bytes(tokens.join("\n").as_bytes())
            .map_err(|e| tok_err("cannot build WordPiece vocabulary", e))?;
        let model = WordPiece::builder()
            .vocab(vocab)
            .unk_token("[UNK]".to_string())
            .continuing_subword_prefix("##".to_string())
            .build()
            .map_err(|e| tok_err("cannot build WordPiece model", e))?;
        let mut tk = Tokenizer::new(model);
        tk.with_normalizer(Some(BertNormalizer::new(true, true, None, true)))
            .map_err(|e| tok_err("cannot configure tokenizer", e))?;
        tk.with_pre_tokenizer(Some(BertPreTokenizer));
        tk.with_decoder(Some(WordPieceDecoder::default()));
        let specials: Vec<AddedToken> = SPECIAL_TOKENS
            .iter()
            .map(|s| AddedToken::from(s.to_string(), true))
            .collect();
        tk.add_special_tokens(specials)
            .map_err(|e| tok_err("cannot add special tokens", e))?;
        let cls = tk.token_to_id("[CLS]").unwrap_or(2);
        let sep = tk.token_to_id("[SEP]").unwrap_or(3);
        tk.with_post_processor(Some(BertProcessing::new(
            ("[SEP]".to_string(), sep),
            ("[CLS]".to_string(), cls),
        )));
        // Round trip through JSON so that a trained tokenizer and a loaded one are identical.
        let json = tk
            .to_string(false)
            .map_err(|e| tok_err("cannot serialise tokenizer", e))?;
        Self::from_json(&json)
    }

    /// The wrapped `tokenizers::Tokenizer`.
    pub fn inner(&self) -> &Tokenizer {
        &self.inner
    }

    /// Vocabulary size including added (special) tokens: ids are `< vocab_size()`.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The id used for padding.
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// The id of `token`, if it is in the vocabulary.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Token ids of one text with special tokens, truncated to `max_len` (specials kept).
    pub fn encode(&self, text: &str, max_len: usize) -> Result<Vec<u32>> {
        let n_special = self
            .inner
            .get_post_processor()
            .map(|p| tokenizers::PostProcessor::added_tokens(p, false))
            .unwrap_or(0);
        let mut enc = self
            .inner
            .encode(text, false)
            .map_err(|e| tok_err("tokenization failed", e))?;
        let room = max_len.saturating_sub(n_special).max(1);
        if enc.len() > room {
            enc.truncate(room, 0, TruncationDirection::Right);
        }
        let enc = self
            .inner
            .post_process(enc, None, true)
            .map_err(|e| tok_err("tokenization failed", e))?;
        let mut ids = enc.get_ids().to_vec();
        ids.truncate(max_len.max(1));
        Ok(ids)
    }

    /// Encodes `texts` with special tokens, truncating each to `max_len` and padding to the
    /// longest row (at least 1). Returns row-major `[B, L]` ids and mask.
    pub fn encode_batch(&self, texts: &[&str], max_len: usize) -> Result<EncodedBatch> {
        if max_len == 0 {
            return Err(Error::user("max_len must be at least 1"));
        }
        let rows: Vec<Vec<u32>> = texts
            .iter()
            .map(|t| self.encode(t, max_len))
            .collect::<Result<_>>()?;
        let len = rows.iter().map(|r| r.len()).max().unwrap_or(0).max(1);
        let mut ids = Vec::with_capacity(rows.len() * len);
        let mut mask = Vec::with_capacity(rows.len() * len);
        for r in &rows {
            ids.extend_from_slice(r);
            mask.extend(std::iter::repeat_n(1u32, r.len()));
            ids.extend(std::iter::repeat_n(self.pad_id, len - r.len()));
            mask.extend(std::iter::repeat_n(0u32, len - r.len()));
        }
        Ok(EncodedBatch {
            ids,
            mask,
            batch: rows.len(),
            len,
        })
    }

    /// The tokenizer as compact JSON (the bytes [`Self::save`] writes).
    pub fn to_json(&self) -> Result<String> {
        self.inner
            .to_string(false)
            .map_err(|e| tok_err("cannot serialise tokenizer", e))
    }

    /// Writes `tokenizer.json` to `path`.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        fs_err::write(path, self.to_json()?)
            .map_err(|e| crate::error::io_error(format!("cannot write `{}`", path.display()), e))
    }

    /// Hex sha256 of [`Self::to_json`].
    pub fn hash(&self) -> Result<String> {
        Ok(hex::encode(Sha256::digest(self.to_json()?.as_bytes())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus() -> Vec<String> {
        let words = [
            "good", "bad", "movie", "film", "great", "terrible", "plot", "acting", "the", "was",
            "really", "not", "café", "naïve", "東京",
        ];
        (0..200)
            .map(|i| {
                format!(
                    "The {} {} was {} {}!",
                    words[i % 15],
                    words[(i * 7) % 15],
                    words[(i * 3) % 15],
                    words[(i * 11) % 15]
                )
            })
            .collect()
    }

    #[test]
    fn training_is_deterministic_and_specials_fixed() {
        let c = corpus();
        let texts: Vec<&str> = c.iter().map(|s| s.as_str()).collect();
        let a = TextTokenizer::train_wordpiece(&texts, 200).unwrap();
        let b = TextTokenizer::train_wordpiece(&texts, 200).unwrap();
        assert_eq!(a.to_json().unwrap(), b.to_json().unwrap());
        assert_eq!(a.hash().unwrap(), b.hash().unwrap());
        for (i, s) in SPECIAL_TOKENS.iter().enumerate() {
            assert_eq!(a.token_to_id(s), Some(i as u32), "{s}");
        }
        assert_eq!(a.pad_id(), 0);
        assert!(a.vocab_size() <= 200);
    }

    #[test]
    fn encode_batch_pads_truncates_and_adds_specials() {
        let c = corpus();
        let texts: Vec<&str> = c.iter().map(|s| s.as_str()).collect();
        let t = TextTokenizer::train_wordpiece(&texts, 200).unwrap();
        let b = t
            .encode_batch(
                &["good movie", "", "the plot was really not good at all"],
                6,
            )
            .unwrap();
        assert_eq!(b.batch, 3);
        assert_eq!(b.len, 6);
        assert_eq!(b.ids.len(), 18);
        let cls = t.token_to_id("[CLS]").unwrap();
        let sep = t.token_to_id("[SEP]").unwrap();
        // Row 0: [CLS] good movie [SEP] pad pad
        assert_eq!(b.ids[0], cls);
        assert_eq!(b.ids[3], sep);
        assert_eq!(&b.mask[0..6], &[1, 1, 1, 1, 0, 0]);
        assert_eq!(&b.ids[4..6], &[0, 0]);
        // Row 1: empty text -> [CLS] [SEP]
        assert_eq!(&b.ids[6..8], &[cls, sep]);
        assert_eq!(&b.mask[6..12], &[1, 1, 0, 0, 0, 0]);
        // Row 2: truncated, still ends with [SEP]
        assert_eq!(b.ids[12], cls);
        assert_eq!(b.ids[17], sep);
        assert!(b.mask[12..18].iter().all(|&m| m == 1));
        // Lowercasing: "GOOD" == "good"
        assert_eq!(t.encode("GOOD", 10).unwrap(), t.encode("good", 10).unwrap());
        assert!(t.encode_batch(&[], 5).unwrap().ids.is_empty());
        assert!(t.encode_batch(&["x"], 0).is_err());
    }

    #[test]
    fn save_load_round_trip() {
        let c = corpus();
        let texts: Vec<&str> = c.iter().map(|s| s.as_str()).collect();
        let t = TextTokenizer::train_wordpiece(&texts, 150).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tokenizer.json");
        t.save(&p).unwrap();
        let u = TextTokenizer::from_file(&p).unwrap();
        assert_eq!(t.hash().unwrap(), u.hash().unwrap());
        let probe = ["Café naïve 東京 unseenword", "good bad"];
        assert_eq!(
            t.encode_batch(&probe, 32).unwrap(),
            u.encode_batch(&probe, 32).unwrap()
        );
        let e = TextTokenizer::from_file(dir.path().join("nope.json")).unwrap_err();
        assert!(e.to_string().contains("nope.json"));
    }
}
