//! Rebuilds a causal LM's tokenizer from GGUF metadata (`tokenizer.ggml.*`) into a
//! `tokenizers` object. Supports the byte-level BPE (`tokenizer.ggml.model = "gpt2"`) that
//! SmolLM2, Llama 3 and Qwen2 use.

use std::path::Path;

use candle_core::quantized::gguf_file::{Content, Value};
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, Tokenizer};

use crate::error::{Error, Result};

/// A GGUF file's header and metadata (the tensors are not read).
pub fn read_gguf(path: &Path) -> Result<Content> {
    let mut f = fs_err::File::open(path).map_err(|e| {
        Error::user(format!("cannot open `{}`", path.display()))
            .with_source(e)
            .with_hint("`make assets` fetches the SmolLM2 GGUF")
    })?;
    Content::read(&mut f).map_err(|e| {
        Error::user(format!("`{}` is not a readable GGUF file", path.display())).with_source(e)
    })
}

fn get<'a>(content: &'a Content, key: &str) -> Result<&'a Value> {
    content
        .metadata
        .get(key)
        .ok_or_else(|| Error::user(format!("the GGUF metadata has no `{key}`")))
}

fn strings(content: &Content, key: &str) -> Result<Vec<String>> {
    let bad = |e: candle_core::Error| {
        Error::user(format!("GGUF key `{key}` is not a list of strings")).with_source(e)
    };
    get(content, key)?
        .to_vec()
        .map_err(bad)?
        .iter()
        .map(|v| v.to_string().cloned().map_err(bad))
        .collect()
}

/// The token id stored under `key`, if any.
pub fn special_id(content: &Content, key: &str) -> Option<u32> {
    content.metadata.get(key).and_then(|v| v.to_u32().ok())
}

/// The chat template (`tokenizer.chat_template`), when the file has one.
pub fn chat_template(content: &Content) -> Option<String> {
    content
        .metadata
        .get("tokenizer.chat_template")
        .and_then(|v| v.to_string().ok().cloned())
}

/// Builds the tokenizer: vocabulary and merges from the metadata, byte-level pre-tokenizer
/// and decoder, and control tokens (token type 3) as special tokens that are never split.
pub fn tokenizer_from_gguf(content: &Content) -> Result<Tokenizer> {
    let model = get(content, "tokenizer.ggml.model")?
        .to_string()
        .map_err(|e| Error::user("`tokenizer.ggml.model` is not a string").with_source(e))?;
    if model != "gpt2" {
        return Err(Error::user(format!(
            "the GGUF tokenizer is `{model}`; only byte-level BPE (`gpt2`) is supported"
        )));
    }
    let tokens = strings(content, "tokenizer.ggml.tokens")?;
    let merges: Vec<(String, String)> = strings(content, "tokenizer.ggml.merges")?
        .into_iter()
        .map(|m| {
            m.split_once(' ')
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .ok_or_else(|| Error::user(format!("GGUF merge `{m}` is not two tokens")))
        })
        .collect::<Result<_>>()?;
    let vocab: tokenizers::models::bpe::Vocab = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), i as u32))
        .collect();
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .build()
        .map_err(|e| Error::user(format!("cannot build the BPE model: {e}")))?;
    let mut tokenizer = Tokenizer::new(bpe);
    tokenizer.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
    tokenizer.with_decoder(Some(ByteLevelDecoder::default()));
    let types: Vec<i64> = match content.metadata.get("tokenizer.ggml.token_type") {
        Some(v) => v
            .to_vec()
            .map_err(|e| Error::user("`tokenizer.ggml.token_type` is not a list").with_source(e))?
            .iter()
            .map(|t| t.to_i32().map(i64::from).unwrap_or(1))
            .collect(),
        None => vec![],
    };
    let specials: Vec<AddedToken> = tokens
        .iter()
        .zip(&types)
        .filter(|(_, &t)| t == 3)
        .map(|(tok, _)| AddedToken::from(tok.clone(), true))
        .collect();
    tokenizer
        .add_special_tokens(specials)
        .map_err(|e| Error::user(format!("cannot add the control tokens: {e}")))?;
    Ok(tokenizer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smollm2_tokenizer_round_trips_text_exactly() {
        let Some(path) = crate::lm::tiny_lm::smollm2_path() else {
            return;
        };
        let content = read_gguf(&path).unwrap();
        let tok = tokenizer_from_gguf(&content).unwrap();
        assert_eq!(tok.get_vocab_size(false), 49152);
        for text in [
            "The screen cracked the first time I dropped it.",
            "  leading and trailing spaces  ",
            "tabs\tand\nnew lines\r\n",
            "naïve café, 非常好, שלום, 😍 and “quotes” — 12345.678",
            "",
        ] {
            let enc = tok.encode(text, false).unwrap();
            let back = tok.decode(enc.get_ids(), false).unwrap();
            assert_eq!(back, text);
            if !text.is_empty() {
                assert!(
                    enc.get_ids().len() < text.len() + 1,
                    "{text}: no merges applied"
                );
            }
        }
        // Control tokens stay single tokens.
        let enc = tok.encode("<|im_start|>user\nhi<|im_end|>", false).unwrap();
        let start = tok.token_to_id("<|im_start|>").unwrap();
        assert_eq!(enc.get_ids()[0], start);
        assert!(enc
            .get_ids()
            .contains(&tok.token_to_id("<|im_end|>").unwrap()));
        assert!(chat_template(&content).is_some_and(|t| t.contains("im_start")));
        assert!(special_id(&content, "tokenizer.ggml.eos_token_id").is_some());
    }
}
