//! The routing cookie (CONTRACT.md, "Routing, on the wire").
//!
//! `ACCOUNT.EXPIRY.SIGNATURE`: EXPIRY in Unix seconds, SIGNATURE the base64url (no padding)
//! HMAC-SHA256 over `plexer-account|ACCOUNT|EXPIRY`. The `plexer-account|` prefix keeps a MAC
//! made for this purpose from being valid for any other use of the same key (itsdangerous'
//! "salt"). The expiry is inside the signed payload, so it cannot be extended by the client.
//!
//! Keys rotate: the first key of the secret file signs, every key verifies, so a new key can be
//! put first while cookies signed with the old one stay valid until they expire. Signatures are
//! compared in constant time by the MAC itself (`verify_slice`), never with `==`.
//!
//! A cookie is untrusted input (Onyx's unsigned tenant cookie let a client pick another
//! tenant's schema, onyx#13934): anything but a well-formed, unexpired cookie signed by one of
//! our keys is refused here, before any account is looked up.

use std::fmt;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::account::AccountName;

type HmacSha256 = Hmac<Sha256>;

/// The signing context: a MAC over anything else with the same key is worthless here.
const CONTEXT: &[u8] = b"plexer-account|";
/// A key shorter than this is refused: HMAC-SHA256 wants 32 bytes of secret.
pub const MIN_KEY_LEN: usize = 32;
/// The signature of a well-formed cookie: 32 bytes as base64url without padding.
const SIGNATURE_LEN: usize = 43;

/// The keys of the secret file: the first signs, all verify. Held keyed, so that a request's
/// check does not set up HMAC from the key again.
#[derive(Clone)]
pub struct Keys(Vec<HmacSha256>);

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keys({} keys, redacted)", self.0.len())
    }
}

/// A secret file that cannot serve.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    #[error("cannot read the secret file {path}: {error}")]
    Read { path: String, error: std::io::Error },
    #[error(
        "the secret file {path} holds no key: write one random line of at least {MIN_KEY_LEN} \
         characters, e.g. `head -c 48 /dev/urandom | base64`"
    )]
    Empty { path: String },
    #[error(
        "line {line} of the secret file {path} is a key of {len} characters: a key needs at \
         least {MIN_KEY_LEN}; make one with `head -c 48 /dev/urandom | base64`"
    )]
    TooShort {
        path: String,
        line: usize,
        len: usize,
    },
    #[error(
        "the secret file {path} can be {how} by every user of this machine (mode {mode:04o}), \
         who could then sign a cookie for any account: run `chmod 600 {path}` (or 640, with \
         plexer's group)"
    )]
    Exposed {
        path: String,
        mode: u32,
        how: &'static str,
    },
}

impl Keys {
    /// Reads one key per line; blank lines and `#` comments are skipped.
    /// Refused, like ssh refuses a private key, when every user may read or write it.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        use std::os::unix::fs::PermissionsExt;
        let shown = path.display().to_string();
        let read_failed = |error| KeyError::Read {
            path: shown.clone(),
            error,
        };
        let mode = std::fs::metadata(path)
            .map_err(read_failed)?
            .permissions()
            .mode()
            & 0o7777;
        let how = match (mode & 0o004 != 0, mode & 0o002 != 0) {
            (_, true) => Some("written"),
            (true, false) => Some("read"),
            (false, false) => None,
        };
        if let Some(how) = how {
            return Err(KeyError::Exposed {
                path: shown,
                mode,
                how,
            });
        }
        let text = std::fs::read_to_string(path).map_err(read_failed)?;
        Self::parse(&text, &shown)
    }

    /// Parses the secret file's text; `path` names it in errors.
    pub fn parse(text: &str, path: &str) -> Result<Self, KeyError> {
        let mut keys = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let key = line.trim();
            if key.is_empty() || key.starts_with('#') {
                continue;
            }
            if key.len() < MIN_KEY_LEN {
                return Err(KeyError::TooShort {
                    path: path.to_owned(),
                    line: index + 1,
                    len: key.len(),
                });
            }
            keys.push(HmacSha256::new_from_slice(key.as_bytes()).expect("HMAC takes any key"));
        }
        if keys.is_empty() {
            return Err(KeyError::Empty {
                path: path.to_owned(),
            });
        }
        Ok(Self(keys))
    }

    fn mac(keyed: &HmacSha256, account: &str, expiry: &str) -> HmacSha256 {
        let mut mac = keyed.clone();
        mac.update(CONTEXT);
        mac.update(account.as_bytes());
        mac.update(b"|");
        mac.update(expiry.as_bytes());
        mac
    }

    /// A cookie value for `account` that expires at `expiry` (Unix seconds).
    pub fn sign(&self, account: &AccountName, expiry: u64) -> String {
        let expiry = expiry.to_string();
        let tag = Self::mac(&self.0[0], account.as_str(), &expiry)
            .finalize()
            .into_bytes();
        format!("{account}.{expiry}.{}", URL_SAFE_NO_PAD.encode(tag))
    }

    /// The account a cookie value names, if it is well formed, signed by one of our keys and not
    /// expired at `now` (Unix seconds).
    pub fn verify(&self, value: &str, now: u64) -> Result<AccountName, CookieRejected> {
        let mut parts = value.split('.');
        let (Some(account), Some(expiry), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(CookieRejected::Malformed);
        };
        let account = AccountName::new(account).map_err(|_| CookieRejected::Malformed)?;
        let canonical_number = !expiry.is_empty()
            && expiry.len() <= 20
            && expiry.bytes().all(|b| b.is_ascii_digit())
            && (expiry == "0" || !expiry.starts_with('0'));
        let expires: u64 = match expiry.parse() {
            Ok(expires) if canonical_number => expires,
            _ => return Err(CookieRejected::Malformed),
        };
        if signature.len() != SIGNATURE_LEN {
            return Err(CookieRejected::Malformed);
        }
        let tag = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| CookieRejected::Malformed)?;
        // The signature is checked before the expiry, so that an expired cookie is told apart
        // only when it was ours.
        let signed = self.0.iter().any(|key| {
            Self::mac(key, account.as_str(), expiry)
                .verify_slice(&tag)
                .is_ok()
        });
        if !signed {
            return Err(CookieRejected::BadSignature);
        }
        if now >= expires {
            return Err(CookieRejected::Expired);
        }
        Ok(account)
    }
}

/// Why a cookie was not accepted. Deliberately coarse: what is logged must not help a forger.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CookieRejected {
    #[error("the cookie is not ACCOUNT.EXPIRY.SIGNATURE")]
    Malformed,
    #[error("the cookie's signature matches none of the keys")]
    BadSignature,
    #[error("the cookie has expired")]
    Expired,
}

/// The value of cookie `name` in an HTTP `Cookie` header (`HTTP_COOKIE`), if it occurs exactly
/// once: a duplicated routing cookie is ambiguous, and ambiguity is refused rather than
/// resolved (first-wins and last-wins servers disagree, hhvm#1938).
pub fn find_cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    let mut found = None;
    for pair in header.split(';') {
        let Some((key, value)) = pair.split_once('=') else {
            continue;
        };
        if key.trim() == name {
            if found.is_some() {
                return None;
            }
            found = Some(value.trim().trim_matches('"'));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_file_every_user_can_read_or_write_is_refused_with_the_chmod_to_run() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, format!("{}\n", "k".repeat(40))).unwrap();
        for (mode, how) in [(0o644, "read"), (0o602, "written"), (0o666, "written")] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let Err(err) = Keys::load(&path) else {
                panic!("mode {mode:o} is refused");
            };
            let err = err.to_string();
            assert!(
                err.contains(&format!("can be {how} by every user")),
                "{err}"
            );
            assert!(
                err.contains(&format!("`chmod 600 {}`", path.display())),
                "{err}"
            );
        }
        for mode in [0o600, 0o640, 0o400] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            assert!(Keys::load(&path).is_ok(), "{mode:o}");
        }
    }

    const KEY_A: &str = "0123456789abcdef0123456789abcdef-key-a";
    const KEY_B: &str = "fedcba9876543210fedcba9876543210-key-b";

    fn keys(text: &str) -> Keys {
        Keys::parse(text, "secret").unwrap()
    }

    fn bob() -> AccountName {
        AccountName::new("bob").unwrap()
    }

    #[test]
    fn a_signed_cookie_verifies_until_it_expires() {
        let keys = keys(KEY_A);
        let cookie = keys.sign(&bob(), 1000);
        assert!(cookie.starts_with("bob.1000."));
        assert_eq!(keys.verify(&cookie, 999), Ok(bob()));
        assert_eq!(keys.verify(&cookie, 1000), Err(CookieRejected::Expired));
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_the_contracts_payload() {
        // Recomputed independently: HMAC-SHA256(key, "plexer-account|bob|1000").
        let cookie = keys(KEY_A).sign(&bob(), 1000);
        let mut mac = HmacSha256::new_from_slice(KEY_A.as_bytes()).unwrap();
        mac.update(b"plexer-account|bob|1000");
        let expected = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        assert_eq!(cookie, format!("bob.1000.{expected}"));
    }

    #[test]
    fn keys_rotate_the_first_signs_and_all_verify() {
        let old = keys(KEY_A);
        let rotated = keys(&format!("{KEY_B}\n{KEY_A}\n"));
        let old_cookie = old.sign(&bob(), 5000);
        assert_eq!(rotated.verify(&old_cookie, 1), Ok(bob()));
        let new_cookie = rotated.sign(&bob(), 5000);
        assert_eq!(
            old.verify(&new_cookie, 1),
            Err(CookieRejected::BadSignature),
            "signed with the new key, which the old set lacks"
        );
    }

    #[test]
    fn forged_tampered_and_malformed_cookies_are_refused() {
        let keys = keys(KEY_A);
        let good = keys.sign(&bob(), 5000);
        let sig = good.rsplit('.').next().unwrap();
        let other_key = Keys::parse(KEY_B, "other").unwrap().sign(&bob(), 5000);
        let cases = [
            (format!("sue.5000.{sig}"), CookieRejected::BadSignature),
            (format!("bob.9999.{sig}"), CookieRejected::BadSignature),
            (other_key, CookieRejected::BadSignature),
            (
                format!("bob.5000.{}", "A".repeat(43)),
                CookieRejected::BadSignature,
            ),
            ("bob".into(), CookieRejected::Malformed),
            ("bob.5000".into(), CookieRejected::Malformed),
            (format!("{good}.x"), CookieRejected::Malformed),
            (format!("../etc.5000.{sig}"), CookieRejected::Malformed),
            (format!("Bob.5000.{sig}"), CookieRejected::Malformed),
            (format!("bob.05000.{sig}"), CookieRejected::Malformed),
            (format!("bob.-1.{sig}"), CookieRejected::Malformed),
            (format!("bob.5000.{sig}="), CookieRejected::Malformed),
            (format!("bob.5000.{}", &sig[1..]), CookieRejected::Malformed),
            ("".into(), CookieRejected::Malformed),
        ];
        for (cookie, why) in cases {
            assert_eq!(keys.verify(&cookie, 1), Err(why), "{cookie}");
        }
    }

    #[test]
    fn secret_files_that_cannot_serve_are_named() {
        assert!(matches!(
            Keys::parse("# only a comment\n\n", "/etc/plexer/secret"),
            Err(KeyError::Empty { .. })
        ));
        let err = Keys::parse(&format!("{KEY_A}\nshort\n"), "/etc/plexer/secret").unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 2 of the secret file /etc/plexer/secret is a key of 5 characters: a key needs \
             at least 32; make one with `head -c 48 /dev/urandom | base64`"
        );
        assert_eq!(format!("{:?}", keys(KEY_A)), "Keys(1 keys, redacted)");
    }

    #[test]
    fn the_routing_cookie_must_occur_exactly_once() {
        assert_eq!(
            find_cookie("a=1; plexer_account=x.1.s; b=2", "plexer_account"),
            Some("x.1.s")
        );
        assert_eq!(
            find_cookie("plexer_account=\"q\"", "plexer_account"),
            Some("q")
        );
        assert_eq!(find_cookie("xplexer_account=1", "plexer_account"), None);
        assert_eq!(
            find_cookie("plexer_account=a; plexer_account=b", "plexer_account"),
            None,
            "two routing cookies are ambiguous"
        );
    }
}
