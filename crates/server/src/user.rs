//! User names as plexer carries them: signed into the routing cookie and passed to the app as
//! `PLEXER_USER` (CONTRACT.md, "Who is signed in").
//!
//! A user name is whatever the login app calls its user (`alice`, `a.b@example.com`,
//! `Zoë Smith`), so any text is allowed but three things: an empty name (it would name no
//! one), a control character (the name becomes a param that apps log, and a newline in a log
//! line forges another), and more than [`UserName::MAX_LEN`] bytes (the name rides in a cookie,
//! and browsers drop a cookie over 4096 bytes, name and attributes included). Dots, `@`, `|`
//! and spaces are fine: the cookie carries the name base64url-encoded, so no user name can add
//! a part to the cookie or a field to the signed text.

use std::fmt;

/// A user name the routing cookie may carry.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UserName(String);

/// A name that is not a user name, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BadUserName {
    #[error("the user name is empty")]
    Empty,
    #[error(
        "the user name is {len} bytes long; the routing cookie carries at most {max}: name the \
         user by something shorter, such as its id",
        max = UserName::MAX_LEN
    )]
    TooLong { len: usize },
    #[error("the user name {0:?} holds a control character (a newline, a tab, …): remove it")]
    Control(String),
}

impl UserName {
    /// 256 bytes: longer than any e-mail address (254), and, base64url-encoded (342
    /// characters) beside the longest account name, far inside a browser's 4096-byte cookie.
    pub const MAX_LEN: usize = 256;

    pub fn new(name: &str) -> Result<Self, BadUserName> {
        if name.is_empty() {
            return Err(BadUserName::Empty);
        }
        if name.len() > Self::MAX_LEN {
            return Err(BadUserName::TooLong { len: name.len() });
        }
        if name.chars().any(char::is_control) {
            return Err(BadUserName::Control(name.to_owned()));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for UserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_text_is_a_user_name_but_empty_overlong_or_with_control_characters() {
        for good in [
            "alice",
            "a.b@example.com",
            "Zoë Smith",
            "ad|min.x",
            "名前",
            &"x".repeat(256),
            &"é".repeat(128),
        ] {
            assert_eq!(UserName::new(good).unwrap().as_str(), good);
        }
        assert_eq!(UserName::new(""), Err(BadUserName::Empty));
        assert_eq!(
            UserName::new(&"x".repeat(257)),
            Err(BadUserName::TooLong { len: 257 })
        );
        assert_eq!(
            UserName::new(&"é".repeat(129)),
            Err(BadUserName::TooLong { len: 258 }),
            "the bound is in bytes, not characters"
        );
        for bad in ["a\nb", "a\rb", "\0", "tab\there", "del\u{7f}"] {
            assert_eq!(
                UserName::new(bad),
                Err(BadUserName::Control(bad.to_owned())),
                "{bad:?}"
            );
        }
    }
}
