//! Responses plexer writes itself, and what it does to an app's response head.
//!
//! Errors (CONTRACT.md): 502 when the app failed or died, 503 with `Retry-After` when no worker
//! freed up within `queue_timeout` or the account is draining, 504 when `request_timeout`
//! passed, 403 when a request has no account and no login is configured.
//!
//! The login flow: the login account's app picks the account with `X-Plexer-User: NAME` (a
//! user in some account's `users`) or `X-Plexer-Account: NAME`, or clears it with
//! `X-Plexer-Logout: 1`. plexer removes those headers, in any case of their names, and sets
//! or clears the signed cookie: by user, the four-part cookie that carries the user (the app
//! then gets `PLEXER_USER` on each request of it); by account, the three-part one. A response that chooses more than once (a header repeated, or
//! both) chooses nothing. The same headers from any other account's app are removed and
//! ignored: only the login app may choose an account.

use bytes::Bytes;
use plexer_fcgi::cgi::ResponseHead;

use crate::account::AccountName;
use crate::config::Config;
use crate::cookie::Keys;
use crate::registry::Registry;
use crate::user::{BadUserName, UserName};

/// A complete CGI response with a plain-text body.
pub(crate) fn plain(status: u16, reason: &str, extra: &[(&str, &str)], body: &str) -> Bytes {
    typed(status, reason, "text/plain; charset=utf-8", extra, body)
}

/// A whole response of `content_type` that plexer makes itself, never cached, its body ending
/// in a newline.
pub(crate) fn typed(
    status: u16,
    reason: &str,
    content_type: &str,
    extra: &[(&str, &str)],
    body: &str,
) -> Bytes {
    let mut head = ResponseHead::new(status);
    head.reason = reason.to_owned();
    head.push("Content-Type", content_type.to_owned());
    head.push("Cache-Control", "no-store");
    for (name, value) in extra {
        head.push(name, value.to_string());
    }
    let mut out = head.encode().to_vec();
    out.extend_from_slice(body.as_bytes());
    if !body.ends_with('\n') {
        out.push(b'\n');
    }
    Bytes::from(out)
}

/// 400: a request plexer will not guess about.
pub(crate) fn bad_request(why: &str) -> Bytes {
    plain(
        400,
        "Bad Request",
        &[],
        &format!("400 Bad Request: {why}\n"),
    )
}

pub(crate) fn bad_gateway(why: &str) -> Bytes {
    plain(502, "Bad Gateway", &[], &format!("502 Bad Gateway: {why}"))
}

pub(crate) fn unavailable(why: &str) -> Bytes {
    plain(
        503,
        "Service Unavailable",
        &[("Retry-After", "5")],
        &format!("503 Service Unavailable: {why}"),
    )
}

pub(crate) fn timeout() -> Bytes {
    plain(
        504,
        "Gateway Timeout",
        &[],
        "504 Gateway Timeout: the application did not answer within request_timeout",
    )
}

/// 408: the web server stopped sending the request (`body_timeout`).
pub(crate) fn request_timeout() -> Bytes {
    plain(
        408,
        "Request Timeout",
        &[("Connection", "close")],
        "408 Request Timeout: the request's body stopped arriving (body_timeout)",
    )
}

/// 431: the request's params leave no room for the ones plexer adds.
pub(crate) fn params_too_large(why: &str) -> Bytes {
    plain(
        431,
        "Request Header Fields Too Large",
        &[],
        &format!("431 Request Header Fields Too Large: {why}\n"),
    )
}

pub(crate) fn forbidden() -> Bytes {
    plain(403, "Forbidden", &[], "403 Forbidden")
}

pub(crate) fn redirect(location: &str) -> Bytes {
    plain(302, "Found", &[("Location", location)], "302 Found")
}

/// Whose response head is being rewritten.
pub(crate) struct HeadContext<'a> {
    pub config: &'a Config,
    pub keys: &'a Keys,
    pub registry: &'a Registry,
    /// True only for the login account's app.
    pub from_login_app: bool,
    /// The request came over HTTPS (`HTTPS=on`): the cookie gets `Secure`.
    pub https: bool,
    pub now: u64,
    pub account: &'a str,
}

/// Removes the `X-Plexer-*` headers from an app's response head and, for the login app only,
/// turns them into the routing cookie. Returns what happened, for the log.
pub(crate) fn rewrite_head(head: &mut ResponseHead, cx: &HeadContext<'_>) -> Option<String> {
    let user = head.remove("X-Plexer-User");
    let account = head.remove("X-Plexer-Account");
    let logout = head.remove("X-Plexer-Logout");
    if user.is_empty() && account.is_empty() && logout.is_empty() {
        return None;
    }
    if !cx.from_login_app {
        return Some(format!(
            "ignored X-Plexer-* headers from account {}: only the login app may choose an account",
            cx.account
        ));
    }
    let cookie_name = &cx.config.route.cookie;
    let secure = if cx.https { "; Secure" } else { "" };
    if logout.iter().any(|v| v.as_ref() == b"1") {
        head.push(
            "Set-Cookie",
            format!("{cookie_name}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax{secure}"),
        );
        return Some("login app logged the client out".into());
    }
    // Two choices (a header repeated, or a user and an account) leave which one counts to a
    // guess, as a trusted param sent twice does in the router: neither counts.
    if user.len() + account.len() > 1 {
        return Some(format!(
            "login app chose {} times ({} X-Plexer-User, {} X-Plexer-Account): no account chosen",
            user.len() + account.len(),
            user.len(),
            account.len()
        ));
    }
    let text = |v: &Bytes| String::from_utf8_lossy(v).trim().to_owned();
    let choice = match user.first().map(text) {
        Some(user) => by_user(cx.registry, &user),
        None => by_account(cx.registry, &account.first().map(text).unwrap_or_default()),
    };
    let (chosen, user) = match choice {
        Ok(chosen) => chosen,
        Err(why) => return Some(format!("{why}: no cookie set")),
    };
    let max_age = cx.config.route.max_age.0.as_secs();
    let value = cx.keys.sign(&chosen, user.as_ref(), cx.now + max_age);
    head.push(
        "Set-Cookie",
        format!("{cookie_name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}"),
    );
    Some(match user {
        Some(user) => format!(
            "login app chose account {chosen} for user {:?}",
            user.as_str()
        ),
        None => format!("login app chose account {chosen}"),
    })
}

/// Why the login app's one choice chose nothing.
#[derive(Debug, thiserror::Error)]
enum NoChoice {
    #[error("login app named user {0:?}, who is in no account")]
    UnknownUser(String),
    #[error("login app named a user the cookie cannot carry: {0}")]
    BadUser(#[from] BadUserName),
    #[error("login app named account {0:?}, which does not exist")]
    UnknownAccount(String),
}

/// `X-Plexer-User`: the account whose `users` list the name, and the name, which the cookie
/// then carries (the four-part form).
fn by_user(registry: &Registry, user: &str) -> Result<(AccountName, Option<UserName>), NoChoice> {
    // Checked before the lookup: a name the cookie cannot carry signs no one in.
    let user = UserName::new(user)?;
    match registry.account_of_user(user.as_str()) {
        Some(account) => Ok((account.name.clone(), Some(user))),
        None => Err(NoChoice::UnknownUser(user.into_string())),
    }
}

/// `X-Plexer-Account`: that account, if it exists; the cookie names no user (three parts).
fn by_account(
    registry: &Registry,
    name: &str,
) -> Result<(AccountName, Option<UserName>), NoChoice> {
    match AccountName::new(name) {
        Ok(name) if registry.get(&name).is_some() => Ok((name, None)),
        _ => Err(NoChoice::UnknownAccount(name.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::PoolKeys;
    use crate::cookie::Verified;

    fn setup() -> (Config, Keys, Registry) {
        let config = Config::parse(
            "listen: unix:/p.sock\naccounts_dir: /a\nruntime_dir: /r\nsecret_file: /s\n\
             login: { account: login }\n",
            Path::new("plexer.yaml"),
        )
        .unwrap();
        let keys = Keys::parse(&"k".repeat(40), "secret").unwrap();
        let template = PoolKeys {
            command: Some(vec!["/bin/true".into()]),
            ..PoolKeys::default()
        };
        let mut registry = Registry::default();
        let long_user = "x".repeat(UserName::MAX_LEN + 1);
        let bob_users = format!("users: [bob, \"b.o b@example.com\", \"Zoë\", {long_user}]");
        for (name, text) in [("bob", bob_users.as_str()), ("login", "{}")] {
            let file = format!("/a/{name}.yaml");
            registry
                .insert(
                    Registry::account(
                        Path::new(&file),
                        text,
                        &crate::registry::AccountRules::with_template(template.clone()),
                    )
                    .unwrap(),
                )
                .unwrap();
        }
        (config, keys, registry)
    }

    fn rewrite(head: &str, from_login_app: bool, https: bool) -> (ResponseHead, Option<String>) {
        let (config, keys, registry) = setup();
        let mut head = ResponseHead::parse(head.as_bytes()).unwrap();
        let cx = HeadContext {
            config: &config,
            keys: &keys,
            registry: &registry,
            from_login_app,
            https,
            now: 1000,
            account: if from_login_app { "login" } else { "bob" },
        };
        let note = rewrite_head(&mut head, &cx);
        (head, note)
    }

    /// The value of the routing cookie `head` sets, if it sets one.
    fn cookie_value(head: &ResponseHead) -> Option<String> {
        let cookie = String::from_utf8(head.get("Set-Cookie")?.to_vec()).unwrap();
        let value = cookie.strip_prefix("plexer_account=")?.split(';').next()?;
        Some(value.to_owned())
    }

    /// What the routing cookie `head` sets says, verified a second after it was set, with the
    /// config's `route.max_age`.
    fn cookie_says(head: &ResponseHead) -> Option<Verified> {
        let (config, keys, _) = setup();
        keys.verify(&cookie_value(head)?, 1001, config.route.max_age.0)
            .ok()
    }

    fn bob_as(user: Option<&str>) -> Verified {
        Verified {
            account: AccountName::new("bob").unwrap(),
            user: user.map(|user| UserName::new(user).unwrap()),
        }
    }

    #[test]
    fn the_login_app_chooses_the_account_by_user_and_plexer_sets_the_cookie_with_the_user() {
        let (head, note) = rewrite("Status: 303\nLocation: /\nX-Plexer-User: bob\n", true, true);
        assert!(head.get("X-Plexer-User").is_none());
        let cookie = String::from_utf8(head.get("Set-Cookie").unwrap().to_vec()).unwrap();
        let value = cookie_value(&head).unwrap();
        assert_eq!(
            value.split('.').count(),
            4,
            "ACCOUNT.EXPIRY.USER.SIGNATURE: {value}"
        );
        assert!(
            value.starts_with("bob.44200.Ym9i."),
            "expires at now + max_age: {value}"
        );
        assert_eq!(cookie_says(&head), Some(bob_as(Some("bob"))));
        assert!(
            cookie.ends_with("; Path=/; Max-Age=43200; HttpOnly; SameSite=Lax; Secure"),
            "{cookie}"
        );
        assert_eq!(
            note.as_deref(),
            Some("login app chose account bob for user \"bob\"")
        );
    }

    #[test]
    fn the_login_app_choosing_by_account_alone_sets_the_three_part_cookie() {
        let (head, note) = rewrite("X-Plexer-Account: bob\n", true, false);
        let value = cookie_value(&head).unwrap();
        assert_eq!(
            value.split('.').count(),
            3,
            "ACCOUNT.EXPIRY.SIGNATURE: {value}"
        );
        assert_eq!(cookie_says(&head), Some(bob_as(None)));
        assert_eq!(note.as_deref(), Some("login app chose account bob"));
    }

    #[test]
    fn user_names_with_dots_at_signs_spaces_and_accents_ride_in_the_cookie() {
        for user in ["b.o b@example.com", "Zoë"] {
            let (head, _) = rewrite(&format!("X-Plexer-User: {user}\n"), true, false);
            let value = cookie_value(&head).unwrap();
            assert_eq!(value.split('.').count(), 4, "{user}: {value}");
            assert_eq!(cookie_says(&head), Some(bob_as(Some(user))), "{user}");
        }
    }

    #[test]
    fn a_user_name_too_long_for_the_cookie_gets_no_cookie_and_the_log_says_why() {
        let long_user = "x".repeat(UserName::MAX_LEN + 1);
        let (head, note) = rewrite(&format!("X-Plexer-User: {long_user}\n"), true, false);
        assert!(no_plexer_headers_left(&head));
        assert!(head.get("Set-Cookie").is_none());
        let note = note.unwrap();
        assert!(
            note.starts_with("login app named a user the cookie cannot carry")
                && note.contains("257 bytes long")
                && note.ends_with("no cookie set"),
            "{note}"
        );
    }

    #[test]
    fn other_apps_cannot_choose_an_account() {
        let (head, note) = rewrite(
            "X-Plexer-Account: login\nX-Plexer-User: bob\n",
            false,
            false,
        );
        assert!(head.get("X-Plexer-Account").is_none() && head.get("X-Plexer-User").is_none());
        assert!(head.get("Set-Cookie").is_none());
        assert!(
            note.unwrap()
                .starts_with("ignored X-Plexer-* headers from account bob")
        );
    }

    #[test]
    fn unknown_users_and_accounts_get_no_cookie_and_logout_clears_it() {
        let (head, note) = rewrite("X-Plexer-User: mallory\n", true, false);
        assert!(head.get("Set-Cookie").is_none());
        assert!(note.unwrap().contains("in no account"));
        let (head, _) = rewrite("X-Plexer-Account: ../etc\n", true, false);
        assert!(head.get("Set-Cookie").is_none());
        let (head, _) = rewrite("X-Plexer-Logout: 1\n", true, false);
        assert_eq!(
            head.get("Set-Cookie"),
            Some(&b"plexer_account=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax"[..])
        );
    }

    /// Every `X-Plexer-*` header name, in any case, is gone from `head`.
    fn no_plexer_headers_left(head: &ResponseHead) -> bool {
        ["X-Plexer-User", "X-Plexer-Account", "X-Plexer-Logout"]
            .iter()
            .all(|name| head.get(name).is_none())
    }

    /// The account of the routing cookie `head` sets, if it sets one.
    fn cookie_account(head: &ResponseHead) -> Option<String> {
        Some(cookie_says(head)?.account.as_str().to_owned())
    }

    #[test]
    fn the_login_app_is_heard_whatever_the_case_of_the_header_names() {
        for head in [
            "x-plexer-account: bob\n",
            "X-PLEXER-ACCOUNT: bob\n",
            "x-Plexer-User: bob\n",
            "X-PLEXER-USER: bob\n",
        ] {
            let (rewritten, note) = rewrite(head, true, false);
            assert!(no_plexer_headers_left(&rewritten), "{head}");
            assert_eq!(cookie_account(&rewritten).as_deref(), Some("bob"), "{head}");
            assert!(
                note.as_deref()
                    .is_some_and(|note| note.starts_with("login app chose account bob")),
                "{head}: {note:?}"
            );
        }
        for head in ["x-plexer-logout: 1\n", "X-PLEXER-LOGOUT: 1\n"] {
            let (rewritten, _) = rewrite(head, true, false);
            assert!(no_plexer_headers_left(&rewritten), "{head}");
            let cookie = rewritten.get("Set-Cookie").unwrap();
            assert!(
                cookie.starts_with(b"plexer_account=; Path=/; Max-Age=0"),
                "{head}"
            );
        }
    }

    #[test]
    fn a_tenant_app_is_ignored_whatever_the_case_or_count_of_the_header_names() {
        for head in [
            "x-plexer-account: login\n",
            "X-PLEXER-ACCOUNT: login\n",
            "X-Plexer-Account: login\nX-Plexer-Account: bob\n",
            "x-plexer-user: bob\nX-PLEXER-USER: bob\n",
            "x-plexer-logout: 1\n",
            "X-PLEXER-LOGOUT: 1\nX-Plexer-Logout: 1\n",
        ] {
            let (rewritten, note) = rewrite(head, false, false);
            assert!(no_plexer_headers_left(&rewritten), "{head}");
            assert!(rewritten.get("Set-Cookie").is_none(), "{head}");
            assert!(
                note.unwrap()
                    .starts_with("ignored X-Plexer-* headers from account bob"),
                "{head}"
            );
        }
    }

    #[test]
    fn the_login_app_choosing_more_than_once_chooses_nothing() {
        for head in [
            "X-Plexer-Account: bob\nX-Plexer-Account: login\n",
            "X-Plexer-Account: bob\nx-plexer-account: bob\n",
            "X-Plexer-User: bob\nX-PLEXER-USER: bob\n",
            "X-Plexer-User: bob\nX-Plexer-Account: login\n",
        ] {
            let (rewritten, note) = rewrite(head, true, false);
            assert!(no_plexer_headers_left(&rewritten), "{head}");
            assert!(rewritten.get("Set-Cookie").is_none(), "{head}");
            let note = note.unwrap();
            assert!(note.ends_with("no account chosen"), "{head}: {note}");
        }
        // Logging out wins over any choice beside it: the safe way to be wrong.
        let (rewritten, _) = rewrite("X-Plexer-Logout: 1\nX-Plexer-Account: bob\n", true, false);
        assert!(cookie_account(&rewritten).is_none());
        assert!(
            rewritten
                .get("Set-Cookie")
                .unwrap()
                .starts_with(b"plexer_account=;")
        );
    }

    #[test]
    fn plexers_own_responses_are_cgi() {
        let response = unavailable("queue_timeout passed");
        let text = String::from_utf8(response.to_vec()).unwrap();
        assert!(text.starts_with("Status: 503 Service Unavailable\r\n"));
        assert!(text.contains("Retry-After: 5\r\n"));
        assert!(text.ends_with("\r\n\r\n503 Service Unavailable: queue_timeout passed\n"));
    }
}
