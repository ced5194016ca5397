//! Account names (CONTRACT.md: `[a-z0-9][a-z0-9_-]{0,62}`).
//!
//! A name is checked wherever it enters: an account file's name, a control request, a verified
//! cookie. Only checked names are ever looked up, and they are looked up in a table, never
//! turned into a path: a socket path comes from the account's own configuration.

use std::fmt;

/// A valid account name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccountName(String);

/// A name that is not an account name, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "bad account name {0:?}: use 1 to 63 of a-z, 0-9, '_' and '-', starting with a letter or a \
     digit"
)]
pub struct BadAccountName(pub String);

impl AccountName {
    pub const MAX_LEN: usize = 63;

    pub fn new(name: &str) -> Result<Self, BadAccountName> {
        let bytes = name.as_bytes();
        let first_ok = bytes
            .first()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        let rest_ok = bytes
            .iter()
            .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if first_ok && rest_ok && bytes.len() <= Self::MAX_LEN {
            Ok(Self(name.to_owned()))
        } else {
            Err(BadAccountName(name.chars().take(80).collect()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AccountName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for AccountName {
    type Err = BadAccountName;

    fn from_str(name: &str) -> Result<Self, BadAccountName> {
        Self::new(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_contracts_names_pass() {
        for good in ["bob", "0", "a-b_c", "9lives", &"x".repeat(63)] {
            assert!(AccountName::new(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "Bob",
            "-bob",
            "_bob",
            "bob.x",
            "../etc",
            "bob/x",
            "bob ",
            "é",
            &"x".repeat(64),
        ] {
            assert_eq!(
                AccountName::new(bad),
                Err(BadAccountName(bad.chars().take(80).collect())),
                "{bad}"
            );
        }
    }
}
