//! Durations as operators write them: `500ms`, `30s`, `10m`, `12h`, `1d`, or a bare number of
//! seconds (php-fpm's `10s`, nginx's `30s`).

use std::fmt;
use std::time::Duration;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer};

/// A duration that is not one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpanError {
    #[error("bad duration {0:?}: write a number and a unit, like 500ms, 30s, 10m, 12h or 1d")]
    Unreadable(String),
    #[error("duration {0:?} is over the 365d that any timeout here may be")]
    TooLong(String),
}

/// A duration read from the config.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Span(pub Duration);

impl Span {
    /// Longer than any timeout needs; it keeps `Instant + timeout` far from overflowing.
    pub const MAX: Duration = Duration::from_secs(365 * 86_400);

    pub fn parse(text: &str) -> Result<Self, SpanError> {
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let bad = || SpanError::Unreadable(text.to_owned());
        let number: u64 = number.parse().map_err(|_| bad())?;
        let millis = match unit {
            "ms" => Some(number),
            "" | "s" => number.checked_mul(1000),
            "m" => number.checked_mul(60_000),
            "h" => number.checked_mul(3_600_000),
            "d" => number.checked_mul(86_400_000),
            _ => return Err(bad()),
        };
        let millis = millis.ok_or_else(bad)?;
        if u128::from(millis) > Self::MAX.as_millis() {
            return Err(SpanError::TooLong(text.to_owned()));
        }
        Ok(Span(Duration::from_millis(millis)))
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SpanVisitor)
    }
}

/// A number of seconds or a text with its unit; anything else (`1.5`, `-1`, `true`) is named
/// in the error with what a duration looks like.
struct SpanVisitor;

impl Visitor<'_> for SpanVisitor {
    type Value = Span;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration: a number and a unit, like 500ms, 30s, 10m, 12h or 1d")
    }

    fn visit_u64<E: de::Error>(self, seconds: u64) -> Result<Span, E> {
        Span::parse(&seconds.to_string()).map_err(E::custom)
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Span, E> {
        Span::parse(text).map_err(E::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_as_operators_write_them() {
        for (text, ms) in [
            ("500ms", 500),
            ("30s", 30_000),
            ("30", 30_000),
            ("10m", 600_000),
            ("12h", 43_200_000),
            ("1d", 86_400_000),
        ] {
            assert_eq!(
                Span::parse(text),
                Ok(Span(Duration::from_millis(ms))),
                "{text}"
            );
        }
        for bad in ["", "s", "10 y", "1.5s", "-1s", "99999999999999999999d"] {
            assert!(
                matches!(Span::parse(bad), Err(SpanError::Unreadable(_))),
                "{bad}"
            );
        }
        assert_eq!(Span::parse("365d"), Ok(Span(Span::MAX)));
        let too_long = Span::parse("999999999d").unwrap_err();
        assert_eq!(
            too_long.to_string(),
            "duration \"999999999d\" is over the 365d that any timeout here may be"
        );
        assert_eq!(
            Span::parse("1.5s").unwrap_err().to_string(),
            "bad duration \"1.5s\": write a number and a unit, like 500ms, 30s, 10m, 12h or 1d"
        );
    }

    #[test]
    fn a_config_value_of_another_type_says_what_a_duration_is() {
        let read = |yaml: &str| serde_yaml::from_str::<Span>(yaml).map_err(|e| e.to_string());
        assert_eq!(read("30"), Ok(Span(Duration::from_secs(30))));
        assert_eq!(read("10m"), Ok(Span(Duration::from_secs(600))));
        for bad in ["1.5", "-1", "true"] {
            let err = read(bad).unwrap_err();
            assert!(
                err.contains("a number and a unit, like 500ms"),
                "{bad}: {err}"
            );
        }
    }
}
