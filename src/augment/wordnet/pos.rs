//! Parts of speech: WordNet's four, sets of them, and a guess from the previous word.

/// A part of speech, as in WordNet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pos {
    /// Noun.
    Noun,
    /// Verb.
    Verb,
    /// Adjective (including satellite adjectives).
    Adj,
    /// Adverb.
    Adv,
}

impl Pos {
    /// All four parts of speech, in table order.
    pub const ALL: [Pos; 4] = [Pos::Noun, Pos::Verb, Pos::Adj, Pos::Adv];

    pub(super) fn index(self) -> usize {
        self as usize
    }

    pub(super) fn from_wordnet_char(c: char) -> Option<Pos> {
        match c {
            'n' => Some(Pos::Noun),
            'v' => Some(Pos::Verb),
            'a' | 's' => Some(Pos::Adj),
            'r' => Some(Pos::Adv),
            _ => None,
        }
    }
}

/// A set of parts of speech.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PosSet(pub(super) u8);

impl PosSet {
    /// Nouns only.
    pub const NOUN: PosSet = PosSet(1);
    /// Verbs only.
    pub const VERB: PosSet = PosSet(2);
    /// Adjectives only.
    pub const ADJ: PosSet = PosSet(4);
    /// Adverbs only.
    pub const ADV: PosSet = PosSet(8);
    /// Every part of speech.
    pub const ALL: PosSet = PosSet(15);

    /// The set holding only `pos`.
    pub const fn of(pos: Pos) -> PosSet {
        PosSet(1 << pos as u8)
    }

    /// The union of two sets.
    pub const fn union(self, other: PosSet) -> PosSet {
        PosSet(self.0 | other.0)
    }

    /// Whether `pos` is in the set.
    pub const fn contains(self, pos: Pos) -> bool {
        self.0 & (1 << pos as u8) != 0
    }
}

impl From<Pos> for PosSet {
    fn from(pos: Pos) -> Self {
        PosSet::of(pos)
    }
}

/// Guesses the part of speech of `word` from the word before it. Both must be lookup forms
/// (lower-case). Returns `None` when there is no clue (meaning: any part of speech).
///
/// * after a determiner, possessive or quantifier (`the`, `my`, `some`, ...): noun or adjective;
/// * a word ending in `-ly`: adverb;
/// * after `to`, a modal or `do`: verb.
///
/// A guess only narrows the choice: [`SynonymTable::synonyms_in`] falls back to every part of
/// speech when the guessed ones have no synonyms.
pub fn guess_pos(prev_word: Option<&str>, word: &str) -> Option<PosSet> {
    let prev = prev_word.unwrap_or("");
    if matches!(
        prev,
        "the"
            | "a"
            | "an"
            | "this"
            | "that"
            | "these"
            | "those"
            | "my"
            | "your"
            | "his"
            | "her"
            | "its"
            | "our"
            | "their"
            | "some"
            | "any"
            | "every"
            | "each"
            | "no"
            | "many"
            | "few"
            | "several"
            | "both"
            | "another"
            | "such"
            | "much"
            | "whose"
    ) || prev.ends_with("'s")
    {
        return Some(PosSet::NOUN.union(PosSet::ADJ));
    }
    if word.len() > 4 && word.ends_with("ly") {
        return Some(PosSet::ADV);
    }
    if matches!(
        prev,
        "to" | "can"
            | "could"
            | "will"
            | "would"
            | "shall"
            | "should"
            | "may"
            | "might"
            | "must"
            | "cannot"
            | "can't"
            | "won't"
            | "wouldn't"
            | "shouldn't"
            | "couldn't"
            | "do"
            | "does"
            | "did"
            | "don't"
            | "doesn't"
            | "didn't"
    ) {
        return Some(PosSet::VERB);
    }
    None
}
