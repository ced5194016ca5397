//! The routing cookie (CONTRACT.md, "Routing, on the wire" and "Who is signed in").
//!
//! Two forms, EXPIRY in Unix seconds and SIGNATURE the base64url (no padding) HMAC-SHA256:
//! - `ACCOUNT.EXPIRY.SIGNATURE`, signed over `plexer-account|ACCOUNT|EXPIRY`;
//! - `ACCOUNT.EXPIRY.USER.SIGNATURE` when the login app named the user: USER the base64url (no
//!   padding) of the user name, signed as sent, over `plexer-account|ACCOUNT|EXPIRY|USER`.
//!
//! The `plexer-account|` prefix keeps a MAC made for this purpose from being valid for any other
//! use of the same key (itsdangerous' "salt"). The expiry is inside the signed payload, so it
//! cannot be extended by the client. The two signed texts cannot stand for each other: no part
//! can hold a `|` (account names have none, EXPIRY is digits, base64url has none), so the count
//! of `|` tells the forms apart. The user is encoded before it is signed, so no user name,
//! however many dots or bars it holds, can add a part to the cookie or a field to the payload.
//!
//! An expiry is bounded from above too: one further ahead than `route.max_age` (plus
//! [`EXPIRY_LEEWAY`]) is refused like a forged cookie. plexer never signs one; a cookie that
//! has one was signed under a longer `max_age`, or by whoever holds a key, and would outlive the
//! rotation plan that counts on `max_age` (remove the old key once `max_age` has passed).
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
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::account::AccountName;
use crate::user::UserName;

type HmacSha256 = Hmac<Sha256>;

/// The signing context: a MAC over anything else with the same key is worthless here.
const CONTEXT: &[u8] = b"plexer-account|";
/// A key shorter than this is refused: HMAC-SHA256 wants 32 bytes of secret.
pub const MIN_KEY_LEN: usize = 32;
/// The signature of a well-formed cookie: 32 bytes as base64url without padding.
const SIGNATURE_LEN: usize = 43;
/// The longest USER part: the longest user name, as base64url without padding. Checked before
/// decoding, so a long part costs nothing.
const USER_PART_MAX: usize = (UserName::MAX_LEN * 4).div_ceil(3);
/// How far past `route.max_age` an expiry may lie: nodes that share the keys may disagree on
/// the time by this much (a cookie signed on a node whose clock runs ahead).
pub const EXPIRY_LEEWAY: Duration = Duration::from_secs(5 * 60);

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

    fn mac(keyed: &HmacSha256, account: &str, expiry: &str, user: Option<&str>) -> HmacSha256 {
        let mut mac = keyed.clone();
        mac.update(CONTEXT);
        mac.update(account.as_bytes());
        mac.update(b"|");
        mac.update(expiry.as_bytes());
        if let Some(user) = user {
            mac.update(b"|");
            mac.update(user.as_bytes());
        }
        mac
    }

    /// A cookie value for `account`, and `user` when the login app named one, that expires at
    /// `expiry` (Unix seconds).
    pub fn sign(&self, account: &AccountName, user: Option<&UserName>, expiry: u64) -> String {
        let expiry = expiry.to_string();
        let user = user.map(|user| URL_SAFE_NO_PAD.encode(user.as_str()));
        let tag = Self::mac(&self.0[0], account.as_str(), &expiry, user.as_deref())
            .finalize()
            .into_bytes();
        let tag = URL_SAFE_NO_PAD.encode(tag);
        match user {
            Some(user) => format!("{account}.{expiry}.{user}.{tag}"),
            None => format!("{account}.{expiry}.{tag}"),
        }
    }

    /// What a cookie value says, if it is well formed, signed by one of our keys, not expired
    /// at `now` (Unix seconds), and not expiring further ahead than `max_age` (`route.max_age`)
    /// and [`EXPIRY_LEEWAY`] from `now`.
    pub fn verify(
        &self,
        value: &str,
        now: u64,
        max_age: Duration,
    ) -> Result<Verified, CookieRejected> {
        let parts = Parts::parse(value)?;
        let user_sent = parts.user.as_ref().map(|(sent, _)| *sent);
        // The signature is checked before the expiry, so that an expired cookie is told apart
        // only when it was ours.
        let signed = self.0.iter().any(|key| {
            Self::mac(key, parts.account.as_str(), parts.expiry, user_sent)
                .verify_slice(&parts.tag)
                .is_ok()
        });
        if !signed {
            return Err(CookieRejected::BadSignature);
        }
        if now >= parts.expires {
            return Err(CookieRejected::Expired);
        }
        let latest = now
            .saturating_add(max_age.as_secs())
            .saturating_add(EXPIRY_LEEWAY.as_secs());
        if parts.expires > latest {
            return Err(CookieRejected::TooFarAhead);
        }
        Ok(Verified {
            account: parts.account,
            user: parts.user.map(|(_, user)| user),
        })
    }
}

/// What a valid cookie says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    pub account: AccountName,
    /// The user the login app named, signed into the four-part form; `None` for three parts.
    pub user: Option<UserName>,
}

/// A cookie value cut into its parts, each of the right form; nothing verified yet.
struct Parts<'a> {
    account: AccountName,
    /// EXPIRY as sent, which is what was signed.
    expiry: &'a str,
    expires: u64,
    /// USER as sent (what was signed) and decoded.
    user: Option<(&'a str, UserName)>,
    tag: Vec<u8>,
}

impl<'a> Parts<'a> {
    fn parse(value: &'a str) -> Result<Self, CookieRejected> {
        let mut split = value.split('.');
        // Five taken, so that a fifth part is seen and refused.
        let mut next = || split.next();
        let parts = [next(), next(), next(), next(), next()];
        let (account, expiry, user, signature) = match parts {
            [Some(account), Some(expiry), Some(signature), None, _] => {
                (account, expiry, None, signature)
            }
            [
                Some(account),
                Some(expiry),
                Some(user),
                Some(signature),
                None,
            ] => (account, expiry, Some(user), signature),
            _ => return Err(CookieRejected::Malformed),
        };
        let account = AccountName::new(account).map_err(|_| CookieRejected::Malformed)?;
        let expires = canonical_number(expiry).ok_or(CookieRejected::Malformed)?;
        let user = match user {
            Some(sent) => Some((sent, decode_user(sent).ok_or(CookieRejected::Malformed)?)),
            None => None,
        };
        if signature.len() != SIGNATURE_LEN {
            return Err(CookieRejected::Malformed);
        }
        let tag = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| CookieRejected::Malformed)?;
        Ok(Self {
            account,
            expiry,
            expires,
            user,
            tag,
        })
    }
}

/// EXPIRY as a number, if it is written the one way plexer writes it: digits, no sign, no
/// leading zero. One spelling per number, so that no two cookie texts carry one signature.
fn canonical_number(text: &str) -> Option<u64> {
    let canonical = !text.is_empty()
        && text.len() <= 20
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    canonical.then(|| text.parse().ok()).flatten()
}

/// The user name a USER part encodes, if it is one: base64url without padding, of UTF-8 text
/// that [`UserName`] accepts.
fn decode_user(sent: &str) -> Option<UserName> {
    if sent.len() > USER_PART_MAX {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(sent).ok()?;
    UserName::new(std::str::from_utf8(&bytes).ok()?).ok()
}

/// Why a cookie was not accepted. Deliberately coarse: what is logged must not help a forger.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CookieRejected {
    #[error("the cookie is not ACCOUNT.EXPIRY.SIGNATURE or ACCOUNT.EXPIRY.USER.SIGNATURE")]
    Malformed,
    #[error("the cookie's signature matches none of the keys")]
    BadSignature,
    #[error("the cookie has expired")]
    Expired,
    #[error("the cookie expires further ahead than route.max_age allows")]
    TooFarAhead,
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
    /// `route.max_age` in these tests; every expiry below is well inside it unless it says not.
    const MAX_AGE: Duration = Duration::from_secs(3600);

    fn keys(text: &str) -> Keys {
        Keys::parse(text, "secret").unwrap()
    }

    fn bob() -> AccountName {
        AccountName::new("bob").unwrap()
    }

    fn user(name: &str) -> UserName {
        UserName::new(name).unwrap()
    }

    /// What a three-part cookie of bob verifies to.
    fn bob_alone() -> Verified {
        Verified {
            account: bob(),
            user: None,
        }
    }

    /// What a four-part cookie of bob for `name` verifies to.
    fn bob_as(name: &str) -> Verified {
        Verified {
            account: bob(),
            user: Some(user(name)),
        }
    }

    /// The base64url (no padding) HMAC-SHA256 of `payload` with `key`, computed here on its own.
    fn hmac(key: &str, payload: &str) -> String {
        let mut mac = HmacSha256::new_from_slice(key.as_bytes()).unwrap();
        mac.update(payload.as_bytes());
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    #[test]
    fn a_signed_cookie_verifies_until_it_expires() {
        let keys = keys(KEY_A);
        let cookie = keys.sign(&bob(), None, 1000);
        assert!(cookie.starts_with("bob.1000."));
        assert_eq!(keys.verify(&cookie, 999, MAX_AGE), Ok(bob_alone()));
        assert_eq!(
            keys.verify(&cookie, 1000, MAX_AGE),
            Err(CookieRejected::Expired)
        );
        let with_user = keys.sign(&bob(), Some(&user("bob")), 1000);
        assert_eq!(keys.verify(&with_user, 999, MAX_AGE), Ok(bob_as("bob")));
        assert_eq!(
            keys.verify(&with_user, 1000, MAX_AGE),
            Err(CookieRejected::Expired)
        );
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_the_contracts_payload() {
        let cookie = keys(KEY_A).sign(&bob(), None, 1000);
        let expected = hmac(KEY_A, "plexer-account|bob|1000");
        assert_eq!(cookie, format!("bob.1000.{expected}"));
    }

    #[test]
    fn the_four_part_form_signs_the_user_as_sent_base64url_without_padding() {
        // "b@x.io" is 6 bytes: base64 "YkB4Lmlv"; "bo" shows no padding is written.
        let cookie = keys(KEY_A).sign(&bob(), Some(&user("b@x.io")), 1000);
        let expected = hmac(KEY_A, "plexer-account|bob|1000|YkB4Lmlv");
        assert_eq!(cookie, format!("bob.1000.YkB4Lmlv.{expected}"));
        let cookie = keys(KEY_A).sign(&bob(), Some(&user("bo")), 1000);
        assert!(cookie.starts_with("bob.1000.Ym8."), "{cookie}");
        // A cookie made by hand to the contract, not by `sign`, verifies.
        let by_hand = format!(
            "bob.1000.Ym8.{}",
            hmac(KEY_A, "plexer-account|bob|1000|Ym8")
        );
        assert_eq!(keys(KEY_A).verify(&by_hand, 1, MAX_AGE), Ok(bob_as("bo")));
    }

    #[test]
    fn odd_user_names_round_trip() {
        let keys = keys(KEY_A);
        for name in [
            "alice",
            "a.b.c",
            "a.b@example.com",
            "Zoë Smith",
            "名前 です",
            "x|y",
            "bob.1000",
            "=;, \"quoted\"",
            "+/+/?",
            &"é".repeat(128),
        ] {
            let cookie = keys.sign(&bob(), Some(&user(name)), 1000);
            assert_eq!(cookie.split('.').count(), 4, "{name}: {cookie}");
            assert!(
                cookie
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)),
                "a cookie value needs no quoting whatever the user: {cookie}"
            );
            assert_eq!(keys.verify(&cookie, 1, MAX_AGE), Ok(bob_as(name)), "{name}");
        }
    }

    #[test]
    fn keys_rotate_the_first_signs_and_all_verify() {
        let old = keys(KEY_A);
        let rotated = keys(&format!("{KEY_B}\n{KEY_A}\n"));
        for (name, verified) in [(None, bob_alone()), (Some(user("bob")), bob_as("bob"))] {
            let old_cookie = old.sign(&bob(), name.as_ref(), 3000);
            assert_eq!(rotated.verify(&old_cookie, 1, MAX_AGE), Ok(verified));
            let new_cookie = rotated.sign(&bob(), name.as_ref(), 3000);
            assert_eq!(
                new_cookie,
                keys(KEY_B).sign(&bob(), name.as_ref(), 3000),
                "the first key signs"
            );
            assert_eq!(
                old.verify(&new_cookie, 1, MAX_AGE),
                Err(CookieRejected::BadSignature),
                "signed with the new key, which the old set lacks"
            );
        }
    }

    #[test]
    fn forged_tampered_and_malformed_cookies_are_refused() {
        let keys = keys(KEY_A);
        let good = keys.sign(&bob(), None, 3000);
        let sig = good.rsplit('.').next().unwrap();
        let other_key = Keys::parse(KEY_B, "other")
            .unwrap()
            .sign(&bob(), None, 3000);
        let cases = [
            (format!("sue.3000.{sig}"), CookieRejected::BadSignature),
            (format!("bob.2999.{sig}"), CookieRejected::BadSignature),
            (other_key, CookieRejected::BadSignature),
            (
                format!("bob.3000.{}", "A".repeat(43)),
                CookieRejected::BadSignature,
            ),
            ("bob".into(), CookieRejected::Malformed),
            ("bob.3000".into(), CookieRejected::Malformed),
            (format!("{good}.x.y"), CookieRejected::Malformed),
            (format!("../etc.3000.{sig}"), CookieRejected::Malformed),
            (format!("Bob.3000.{sig}"), CookieRejected::Malformed),
            (format!("bob.03000.{sig}"), CookieRejected::Malformed),
            (format!("bob.-1.{sig}"), CookieRejected::Malformed),
            (format!("bob.3000.{sig}="), CookieRejected::Malformed),
            (format!("bob.3000.{}", &sig[1..]), CookieRejected::Malformed),
            ("".into(), CookieRejected::Malformed),
        ];
        for (cookie, why) in cases {
            assert_eq!(keys.verify(&cookie, 1, MAX_AGE), Err(why), "{cookie}");
        }
    }

    #[test]
    fn each_part_of_a_four_part_cookie_is_covered_by_its_signature() {
        let keys = keys(KEY_A);
        let good = keys.sign(&bob(), Some(&user("bob")), 3000);
        let [account, expiry, user_part, sig]: [&str; 4] =
            good.split('.').collect::<Vec<_>>().try_into().unwrap();
        let other_key = Keys::parse(KEY_B, "other")
            .unwrap()
            .sign(&bob(), Some(&user("bob")), 3000);
        let alice = URL_SAFE_NO_PAD.encode("alice");
        let cases = [
            (format!("sue.{expiry}.{user_part}.{sig}"), "the account"),
            (format!("{account}.2999.{user_part}.{sig}"), "the expiry"),
            (format!("{account}.{expiry}.{alice}.{sig}"), "the user"),
            (
                format!("{account}.{expiry}.{user_part}.{}", "A".repeat(43)),
                "the signature",
            ),
            (other_key, "the key"),
            // The user dropped: the three-part payload is another text, so the tag fails.
            (format!("{account}.{expiry}.{sig}"), "the user dropped"),
        ];
        for (cookie, changed) in cases {
            assert_eq!(
                keys.verify(&cookie, 1, MAX_AGE),
                Err(CookieRejected::BadSignature),
                "{changed}: {cookie}"
            );
        }
        // A user added to a three-part cookie's signature: another payload too.
        let three = keys.sign(&bob(), None, 3000);
        let sig3 = three.rsplit('.').next().unwrap();
        assert_eq!(
            keys.verify(&format!("bob.3000.{alice}.{sig3}"), 1, MAX_AGE),
            Err(CookieRejected::BadSignature)
        );
    }

    #[test]
    fn a_user_part_that_is_no_user_name_is_malformed_before_any_key_is_tried() {
        let keys = keys(KEY_A);
        // Each USER part signed correctly, so only its form can refuse it.
        let signed = |user_part: &str| {
            let tag = hmac(KEY_A, &format!("plexer-account|bob|3000|{user_part}"));
            format!("bob.3000.{user_part}.{tag}")
        };
        let long = URL_SAFE_NO_PAD.encode("x".repeat(UserName::MAX_LEN + 1));
        for user_part in [
            String::new(),                            // empty
            "Ym9i=".into(),                           // padded
            "Ym9i+".into(),                           // not base64url
            "Ym9".into(),                             // trailing bits set: not canonical
            URL_SAFE_NO_PAD.encode([0xff, 0xfe]),     // not UTF-8
            URL_SAFE_NO_PAD.encode("a\nPLEXER_X: y"), // a control character
            long,                                     // longer than a user name may be
        ] {
            assert_eq!(
                keys.verify(&signed(&user_part), 1, MAX_AGE),
                Err(CookieRejected::Malformed),
                "{user_part:?}"
            );
        }
        let longest = URL_SAFE_NO_PAD.encode("x".repeat(UserName::MAX_LEN));
        assert_eq!(longest.len(), USER_PART_MAX);
        assert_eq!(
            keys.verify(&signed(&longest), 1, MAX_AGE),
            Ok(bob_as(&"x".repeat(UserName::MAX_LEN)))
        );
    }

    #[test]
    fn an_expiry_further_ahead_than_max_age_and_the_leeway_is_refused_in_both_forms() {
        let keys = keys(KEY_A);
        let now = 1_000_000;
        let limit = now + MAX_AGE.as_secs() + EXPIRY_LEEWAY.as_secs();
        assert_eq!(limit, now + 3600 + 300, "max_age plus 5 minutes");
        for (name, verified) in [(None, bob_alone()), (Some(user("bob")), bob_as("bob"))] {
            let at_limit = keys.sign(&bob(), name.as_ref(), limit);
            assert_eq!(keys.verify(&at_limit, now, MAX_AGE), Ok(verified));
            let past_limit = keys.sign(&bob(), name.as_ref(), limit + 1);
            assert_eq!(
                keys.verify(&past_limit, now, MAX_AGE),
                Err(CookieRejected::TooFarAhead)
            );
            // The same cookie is fine a second later, and with a longer max_age.
            assert!(keys.verify(&past_limit, now + 1, MAX_AGE).is_ok());
            assert!(
                keys.verify(&past_limit, now, MAX_AGE + Duration::from_secs(1))
                    .is_ok()
            );
            // The furthest expiry there is does not overflow the check.
            let forever = keys.sign(&bob(), name.as_ref(), u64::MAX);
            assert_eq!(
                keys.verify(&forever, now, MAX_AGE),
                Err(CookieRejected::TooFarAhead)
            );
            assert!(keys.verify(&forever, u64::MAX - 1, Duration::MAX).is_ok());
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
