//! How many words an augmenter touches: a count `n`, a fraction `p`, or EDA's `alpha`.

use crate::error::{Error, Result};

/// The EDA default strength.
pub const DEFAULT_ALPHA: f64 = 0.1;

/// How many words to change in a text of `len` words.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Amount {
    /// Exactly this many (capped by what the text allows).
    Count(usize),
    /// `floor(p · len)`, at least 1 when `p > 0`; 0 when `p = 0`.
    Fraction(f64),
    /// EDA's rule: `max(1, floor(alpha · len))`.
    Alpha(f64),
}

impl Amount {
    /// Resolves the `n` / `p` / `alpha` keys of a config: at most one may be set; none means
    /// `alpha = 0.1`. `p` and `alpha` must be in `[0, 1]`. `section` names the config section
    /// in error messages.
    pub fn from_keys(
        section: &str,
        n: Option<usize>,
        p: Option<f64>,
        alpha: Option<f64>,
    ) -> Result<Amount> {
        let set: Vec<&str> = [
            ("n", n.is_some()),
            ("p", p.is_some()),
            ("alpha", alpha.is_some()),
        ]
        .iter()
        .filter(|k| k.1)
        .map(|k| k.0)
        .collect();
        if set.len() > 1 {
            return Err(Error::user(format!(
                "{section}: `{}` and `{}` cannot both be set",
                set[0], set[1]
            ))
            .with_hint("`n` is a count of words, `p` a fraction of words, `alpha` EDA's fraction (at least one word); set one of them"));
        }
        if let Some(p) = p {
            check_unit(section, "p", p)?;
            return Ok(Amount::Fraction(p));
        }
        if let Some(n) = n {
            return Ok(Amount::Count(n));
        }
        let alpha = alpha.unwrap_or(DEFAULT_ALPHA);
        check_unit(section, "alpha", alpha)?;
        Ok(Amount::Alpha(alpha))
    }

    /// The number of words to change in a text of `len` words.
    #[inline]
    pub fn target(&self, len: usize) -> usize {
        match *self {
            Amount::Count(n) => n,
            Amount::Fraction(p) => {
                let n = (p * len as f64).floor() as usize;
                if p > 0.0 && len > 0 {
                    n.max(1)
                } else {
                    n
                }
            }
            Amount::Alpha(a) => ((a * len as f64).floor() as usize).max(1),
        }
    }
}

/// Checks that `value` of key `key` is a finite number in `[0, 1]`.
pub fn check_unit(section: &str, key: &str, value: f64) -> Result<()> {
    if value.is_finite() && (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(Error::user(format!(
            "{section}: `{key}` must be between 0 and 1, got {value}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(Amount::Alpha(0.1).target(20), 2);
        assert_eq!(Amount::Alpha(0.1).target(5), 1);
        assert_eq!(Amount::Alpha(0.1).target(0), 1);
        assert_eq!(Amount::Fraction(0.0).target(20), 0);
        assert_eq!(Amount::Fraction(1.0).target(20), 20);
        assert_eq!(Amount::Fraction(0.01).target(20), 1);
        assert_eq!(Amount::Fraction(0.5).target(0), 0);
        assert_eq!(Amount::Count(3).target(1), 3);
    }

    #[test]
    fn keys() {
        assert_eq!(
            Amount::from_keys("s", None, None, None).unwrap(),
            Amount::Alpha(0.1)
        );
        assert_eq!(
            Amount::from_keys("s", Some(2), None, None).unwrap(),
            Amount::Count(2)
        );
        let e = Amount::from_keys("synonym", Some(2), Some(0.5), None).unwrap_err();
        assert!(e.to_string().contains("`n` and `p`"), "{e}");
        assert_eq!(e.exit_code(), 1);
        let e = Amount::from_keys("synonym", None, Some(1.5), None).unwrap_err();
        assert!(e.to_string().contains("`p`"), "{e}");
        assert!(Amount::from_keys("s", None, None, Some(f64::NAN)).is_err());
        assert!(Amount::from_keys("s", None, Some(0.2), Some(0.1)).is_err());
    }
}
