//! A fast word tokenizer shared by every word-level augmenter.
//!
//! The text is cut into tokens that cover it exactly, with no gaps and no overlaps, so that
//! concatenating the tokens gives the text back byte for byte. There are three kinds:
//!
//! * **word**: a run of alphanumeric characters (any script: Latin, Cyrillic, Han, ...).
//!   Combining marks, zero-width joiners and variation selectors that follow a word character
//!   stay in the word. An apostrophe (`'`, `’`) or hyphen (`-`, `‐`, `‑`) *between* two
//!   alphanumeric characters is kept inside the word, so `don't`, `rock’n’roll` and
//!   `well-known` are each one word, while `'quoted'` and `- dash` are not joined.
//! * **space**: a run of whitespace characters.
//! * **other**: a run of anything else (punctuation, symbols, emoji).
//!
//! This is a hand-written character scan (with an ASCII fast path), not UAX #29 word
//! segmentation: it runs for every row and copy, so it must cost well under a microsecond
//! for a sentence.

/// One token: a byte range of the text and whether it is a word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    /// Byte offset of the first byte (always a char boundary).
    pub start: usize,
    /// Byte offset one past the last byte (always a char boundary).
    pub end: usize,
    /// `true` for a word; `false` for a run of whitespace or of other characters.
    pub is_word: bool,
}

/// A tokenized text.
#[derive(Debug, Clone)]
pub struct Doc<'a> {
    /// The original text.
    pub text: &'a str,
    /// Tokens covering `text` exactly, in order.
    pub tokens: Vec<Token>,
    /// Indices into `tokens` of the word tokens, in order.
    pub words: Vec<usize>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Word,
    Mark,
    Join,
    Space,
    Other,
}

/// Classes of the ASCII characters.
const ASCII_CLASS: [Class; 128] = {
    let mut t = [Class::Other; 128];
    let mut b = 0;
    while b < 128 {
        let c = b as u8;
        t[b] = if c.is_ascii_alphanumeric() {
            Class::Word
        } else if c.is_ascii_whitespace() || c == 0x0b {
            Class::Space
        } else if c == b'\'' || c == b'-' {
            Class::Join
        } else {
            Class::Other
        };
        b += 1;
    }
    t
};

#[inline]
fn classify(c: char) -> Class {
    if c.is_ascii() {
        ASCII_CLASS[c as usize]
    } else if c.is_alphanumeric() {
        Class::Word
    } else if c.is_whitespace() {
        Class::Space
    } else if matches!(c, '\u{2019}' | '\u{2010}' | '\u{2011}') {
        Class::Join
    } else if is_mark(c) {
        Class::Mark
    } else {
        Class::Other
    }
}

/// Combining marks and joiners that are not `Alphabetic` but belong to the preceding letter.
#[inline]
fn is_mark(c: char) -> bool {
    matches!(c,
        '\u{0300}'..='\u{036F}'
        | '\u{0483}'..='\u{0489}'
        | '\u{0591}'..='\u{05C7}'
        | '\u{0610}'..='\u{061A}'
        | '\u{064B}'..='\u{065F}'
        | '\u{0900}'..='\u{0903}'
        | '\u{093A}'..='\u{094F}'
        | '\u{0E31}'..='\u{0E3A}'
        | '\u{0E47}'..='\u{0E4E}'
        | '\u{1AB0}'..='\u{1AFF}'
        | '\u{1DC0}'..='\u{1DFF}'
        | '\u{200C}'..='\u{200D}'
        | '\u{20D0}'..='\u{20FF}'
        | '\u{3099}'..='\u{309A}'
        | '\u{FE00}'..='\u{FE0F}'
        | '\u{FE20}'..='\u{FE2F}'
        | '\u{E0100}'..='\u{E01EF}')
}

/// Decodes the char starting at byte `i` (a char boundary) and its length in bytes.
#[inline]
fn char_at(text: &str, i: usize) -> Option<(char, usize)> {
    let b = *text.as_bytes().get(i)?;
    if b < 0x80 {
        Some((b as char, 1))
    } else {
        let c = text.get(i..)?.chars().next()?;
        Some((c, c.len_utf8()))
    }
}

impl<'a> Doc<'a> {
    /// Tokenizes `text`. Never panics, whatever the input.
    pub fn new(text: &'a str) -> Self {
        let mut tokens = Vec::with_capacity(text.len() / 3 + 1);
        let mut words = Vec::with_capacity(text.len() / 6 + 1);
        let len = text.len();
        let mut i = 0;
        while i < len {
            let Some((c, clen)) = char_at(text, i) else {
                break;
            };
            let start = i;
            let first = classify(c);
            i += clen;
            let is_word = first == Class::Word;
            match first {
                Class::Word => {
                    while let Some((c, clen)) = char_at(text, i) {
                        match classify(c) {
                            Class::Word | Class::Mark => i += clen,
                            Class::Join => match char_at(text, i + clen) {
                                Some((n, nlen)) if classify(n) == Class::Word => {
                                    i += clen + nlen;
                                }
                                _ => break,
                            },
                            _ => break,
                        }
                    }
                }
                Class::Space => {
                    while let Some((c, clen)) = char_at(text, i) {
                        if classify(c) != Class::Space {
                            break;
                        }
                        i += clen;
                    }
                }
                Class::Mark | Class::Join | Class::Other => {
                    while let Some((c, clen)) = char_at(text, i) {
                        if matches!(classify(c), Class::Word | Class::Space) {
                            break;
                        }
                        i += clen;
                    }
                }
            }
            if is_word {
                words.push(tokens.len());
            }
            tokens.push(Token {
                start,
                end: i,
                is_word,
            });
        }
        Doc {
            text,
            tokens,
            words,
        }
    }

    /// Number of words.
    #[inline]
    pub fn word_count(&self) -> usize {
        self.words.len()
    }

    /// The `i`-th word (not token). Panics if `i >= word_count()`.
    #[inline]
    pub fn word(&self, i: usize) -> &'a str {
        self.token_text(self.words[i])
    }

    /// The text of token `t`. Panics if `t >= tokens.len()`.
    #[inline]
    pub fn token_text(&self, t: usize) -> &'a str {
        let tok = self.tokens[t];
        &self.text[tok.start..tok.end]
    }

    /// Whether token `t` exists and is a run of whitespace.
    #[inline]
    pub fn is_space(&self, t: usize) -> bool {
        match self.tokens.get(t) {
            Some(tok) if !tok.is_word => self.text[tok.start..]
                .chars()
                .next()
                .is_some_and(|c| classify(c) == Class::Space),
            _ => false,
        }
    }

    /// Rebuilds the text token by token: token `t` is written as `replace(t)` when that is
    /// `Some` (an empty string drops it) and as itself otherwise.
    pub fn rebuild<'r>(&self, replace: impl FnMut(usize) -> Option<&'r str>) -> String {
        let mut out = String::with_capacity(self.text.len() + 16);
        self.rebuild_into(&mut out, replace);
        out
    }

    /// Like [`Doc::rebuild`], appending to `out`.
    pub fn rebuild_into<'r>(
        &self,
        out: &mut String,
        mut replace: impl FnMut(usize) -> Option<&'r str>,
    ) {
        for (t, tok) in self.tokens.iter().enumerate() {
            match replace(t) {
                Some(r) => out.push_str(r),
                None => out.push_str(&self.text[tok.start..tok.end]),
            }
        }
    }
}

/// Appends the lookup form of `word` to `out`: lower-cased, with `’` written as `'`.
/// This is the form used for stopword and WordNet lookups.
#[inline]
pub fn push_lower(out: &mut String, word: &str) {
    if word.is_ascii() {
        out.extend(word.bytes().map(|b| b.to_ascii_lowercase() as char));
    } else {
        for c in word.chars() {
            if c == '\u{2019}' {
                out.push('\'');
            } else {
                out.extend(c.to_lowercase());
            }
        }
    }
}

/// The lookup forms (see [`push_lower`]) of every word of a [`Doc`], in one buffer.
#[derive(Debug, Clone, Default)]
pub struct Lowered {
    buf: String,
    spans: Vec<(u32, u32)>,
}

impl Lowered {
    /// Lower-cases every word of `doc`.
    pub fn new(doc: &Doc<'_>) -> Self {
        let mut buf = String::with_capacity(doc.text.len() + 8);
        let mut spans = Vec::with_capacity(doc.word_count());
        for i in 0..doc.word_count() {
            let start = buf.len();
            push_lower(&mut buf, doc.word(i));
            spans.push((start as u32, buf.len() as u32));
        }
        Lowered { buf, spans }
    }

    /// The lookup form of word `i`. Panics if `i` is out of range.
    #[inline]
    pub fn get(&self, i: usize) -> &str {
        let (s, e) = self.spans[i];
        &self.buf[s as usize..e as usize]
    }

    /// Number of words.
    #[inline]
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether there are no words.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<&str> {
        let d = Doc::new(text);
        (0..d.word_count()).map(|i| d.word(i)).collect()
    }

    fn roundtrip(text: &str) {
        let d = Doc::new(text);
        let mut s = String::new();
        let mut pos = 0;
        for t in &d.tokens {
            assert_eq!(t.start, pos, "tokens must be contiguous in {text:?}");
            assert!(t.end > t.start);
            s.push_str(&text[t.start..t.end]);
            pos = t.end;
        }
        assert_eq!(s, text);
        assert_eq!(d.rebuild(|_| None), text);
        for &w in &d.words {
            assert!(d.tokens[w].is_word);
        }
    }

    #[test]
    fn covers_text_exactly() {
        for text in [
            "",
            " ",
            "a",
            "Hello, world!  How are you?\n",
            "don't stop -- well-known 'quoted' rock’n’roll",
            "東京は日本の首都です。",
            "emoji 👍🏽 and 👨‍👩‍👧 family",
            "e\u{301}te\u{301} cafe\u{301}",
            "שלום עולם, مرحبا بالعالم",
            "...!!!",
            "\u{301}\u{301} leading marks",
            "a-",
            "-a",
            "'a'",
            "1️⃣ keycap",
        ] {
            roundtrip(text);
        }
    }

    #[test]
    fn word_rules() {
        assert_eq!(
            words("Hello, world! Don't stop."),
            ["Hello", "world", "Don't", "stop"]
        );
        assert_eq!(words("well-known 'quoted'"), ["well-known", "quoted"]);
        assert_eq!(words("rock’n’roll - x"), ["rock’n’roll", "x"]);
        assert_eq!(words("cafe\u{301} au lait"), ["cafe\u{301}", "au", "lait"]);
        assert_eq!(words("東京 です"), ["東京", "です"]);
        assert_eq!(words("👍 ok"), ["ok"]);
        assert_eq!(words(""), Vec::<&str>::new());
        assert_eq!(words("?!"), Vec::<&str>::new());
        assert_eq!(words("abc123 4.5"), ["abc123", "4", "5"]);
    }

    #[test]
    fn spaces_and_other_are_separate_tokens() {
        let d = Doc::new("a, b");
        let kinds: Vec<&str> = (0..d.tokens.len()).map(|t| d.token_text(t)).collect();
        assert_eq!(kinds, ["a", ",", " ", "b"]);
        assert!(!d.is_space(1));
        assert!(d.is_space(2));
        assert!(!d.is_space(3));
        assert!(!d.is_space(99));
    }

    #[test]
    fn rebuild_replaces_and_drops() {
        let d = Doc::new("one two three");
        let out = d.rebuild(|t| match t {
            0 => Some("uno"),
            1 | 2 => Some(""),
            _ => None,
        });
        assert_eq!(out, "uno three");
    }

    #[test]
    fn lowered_forms() {
        let d = Doc::new("The CAT’s Été");
        let l = Lowered::new(&d);
        assert_eq!(l.len(), 3);
        assert_eq!(l.get(0), "the");
        assert_eq!(l.get(1), "cat's");
        assert_eq!(l.get(2), "été");
        assert!(Lowered::new(&Doc::new("")).is_empty());
    }
}
