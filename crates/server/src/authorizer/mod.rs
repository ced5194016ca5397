//! `route.by: authorizer`: FastCGI's own middleware (spec §6.3, seeds 000 and 004). Before a
//! request is routed, its params go with role AUTHORIZER to the app of `authorizer.account`,
//! which answers as CGI: `Status: 200` with `Variable-PLEXER_ACCOUNT: NAME` routes the request
//! to that account, `Variable-PLEXER_USER` becomes `PLEXER_USER`, and other `Variable-NAME`
//! headers reach the account's app as params; any other status goes to the client as written
//! (a 302 to a login page, a 401 with its challenge).
//!
//! This module holds the decisions, as values and without I/O: which params the authorizer
//! gets ([`authorizer_params`]), what its answer means ([`read_answer`]), and the cache of
//! decisions ([`cache`]). The exchange itself is `request::authorize`'s.

pub(crate) mod cache;

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use plexer_fcgi::Params;
use plexer_fcgi::cgi::ResponseHead;

/// The params an authorizer never gets (§6.3): it authorizes the request, not a script.
const NOT_FOR_AUTHORIZER: [&str; 4] = [
    "CONTENT_LENGTH",
    "SCRIPT_NAME",
    "PATH_INFO",
    "PATH_TRANSLATED",
];

/// The most an authorizer's answer may be, head and body: a login page or a redirect, never a
/// download.
pub(crate) const MAX_ANSWER: usize = 256 * 1024;

/// The request's params as the authorizer gets them, with `FCGI_ROLE=AUTHORIZER`, which
/// lighttpd and Apache's mod_authnz_fcgi send too: an app serving both roles on one socket
/// (flup's WSGI server does not tell its app the role) tells them apart by it.
pub(crate) fn authorizer_params(params: &Params) -> Params {
    let mut sent = params.clone();
    sent.retain(|name, _| !NOT_FOR_AUTHORIZER.iter().any(|n| n.as_bytes() == name));
    sent.set("FCGI_ROLE", "AUTHORIZER");
    sent
}

/// What a 200 from the authorizer allows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Allowed {
    /// `Variable-PLEXER_ACCOUNT`, as written: the router checks it names an account.
    pub account: Option<String>,
    /// `Variable-PLEXER_USER`.
    pub user: Option<String>,
    /// Every other `Variable-NAME` the app gets as param `NAME`.
    pub params: Vec<(String, String)>,
    /// Variables refused (`HTTP_*`, other `PLEXER_*`, names that are not letters, digits and
    /// `_`, values that are not text), for the log.
    pub dropped: Vec<String>,
}

/// What the authorizer's answer decides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// `Status: 200`: the request goes on, where `Allowed` says.
    Allow(Arc<Allowed>),
    /// Any other status: this answer (head and body) goes to the client as written, without
    /// its `Variable-*` headers.
    Deny(Bytes),
}

/// Reads an authorizer's answer: its CGI head (already parsed) and its body.
pub(crate) fn read_answer(mut head: ResponseHead, body: Bytes) -> Verdict {
    let variables = take_variables(&mut head);
    // A CGI head without `Status:` (and without `Location:`) is a 200.
    if !matches!(head.status, 0 | 200) {
        let mut answer = BytesMut::from(&head.encode()[..]);
        answer.extend_from_slice(&body);
        return Verdict::Deny(answer.freeze());
    }
    let mut allowed = Allowed {
        account: None,
        user: None,
        params: Vec::new(),
        dropped: Vec::new(),
    };
    for (name, value) in variables {
        let Ok(value) = String::from_utf8(value.to_vec()) else {
            allowed.dropped.push(name);
            continue;
        };
        match name.as_str() {
            "PLEXER_ACCOUNT" => allowed.account = Some(value),
            "PLEXER_USER" => allowed.user = Some(value),
            _ if passes_on(&name) => allowed.params.push((name, value)),
            _ => allowed.dropped.push(name),
        }
    }
    Verdict::Allow(Arc::new(allowed))
}

/// Removes every `Variable-NAME` header, in any case, and returns (NAME in capitals, value).
fn take_variables(head: &mut ResponseHead) -> Vec<(String, Bytes)> {
    let mut variables = Vec::new();
    head.headers.retain(|(name, value)| {
        let is_variable = name.len() > "Variable-".len()
            && name.as_bytes()[.."Variable-".len()].eq_ignore_ascii_case(b"Variable-");
        if is_variable {
            // Header names have no case; the variables are environment names, in capitals.
            let variable = name["Variable-".len()..].to_ascii_uppercase();
            variables.push((variable, value.clone()));
        }
        !is_variable
    });
    variables
}

/// Whether a variable may reach the app as a param: letters, digits and `_`, and never one
/// that would pose as a header the client sent (`HTTP_*`) or as plexer's own (`PLEXER_*`),
/// which the app trusts.
fn passes_on(name: &str) -> bool {
    !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !name.starts_with("HTTP_")
        && !name.starts_with("PLEXER_")
}

#[cfg(test)]
mod tests {
    use super::*;
    use plexer_fcgi::Limits;
    use plexer_fcgi::cgi::HeadParser;

    fn answer(text: &str) -> Verdict {
        let mut parser = HeadParser::new(&Limits::default());
        let (head, body) = parser
            .push(Bytes::copy_from_slice(text.as_bytes()))
            .unwrap()
            .expect("a whole head");
        read_answer(head, body)
    }

    #[test]
    fn a_200_routes_by_its_variables_and_passes_the_others_on() {
        let verdict = answer(
            "Status: 200\r\nVariable-PLEXER_ACCOUNT: acme\r\nvariable-plexer_user: alice@acme.example\r\n\
             Variable-TENANT_PLAN: gold\r\nVariable-HTTP_COOKIE: forged\r\n\
             Variable-PLEXER_SECRET: x\r\nVariable-BAD-NAME: x\r\n\r\n",
        );
        let Verdict::Allow(allowed) = verdict else {
            panic!("{verdict:?}");
        };
        assert_eq!(allowed.account.as_deref(), Some("acme"));
        assert_eq!(allowed.user.as_deref(), Some("alice@acme.example"));
        assert_eq!(allowed.params, [("TENANT_PLAN".into(), "gold".into())]);
        assert_eq!(
            allowed.dropped,
            ["HTTP_COOKIE", "PLEXER_SECRET", "BAD-NAME"],
            "dropped, and named for the log"
        );
    }

    #[test]
    fn a_200_without_status_or_account_allows_with_no_account() {
        let Verdict::Allow(allowed) = answer("Content-Type: text/plain\r\n\r\n") else {
            panic!("no Status: is a 200");
        };
        assert_eq!(allowed.account, None);
    }

    #[test]
    fn any_other_status_goes_to_the_client_as_written_without_its_variables() {
        let Verdict::Deny(bytes) = answer(
            "Status: 302 Found\r\nLocation: /login/?next=/notes/\r\n\
             Variable-PLEXER_ACCOUNT: acme\r\n\r\nsee /login/",
        ) else {
            panic!("a 302 denies");
        };
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        assert!(text.starts_with("Status: 302 Found\r\n"), "{text}");
        assert!(
            text.contains("Location: /login/?next=/notes/\r\n"),
            "{text}"
        );
        assert!(text.ends_with("\r\n\r\nsee /login/"), "{text}");
        assert!(!text.contains("Variable-"), "{text}");
        let Verdict::Deny(bytes) =
            answer("Status: 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"notes\"\r\n\r\n")
        else {
            panic!("a 401 denies");
        };
        assert!(
            String::from_utf8_lossy(&bytes).contains("WWW-Authenticate: Basic realm=\"notes\"")
        );
    }

    #[test]
    fn the_authorizer_gets_no_body_params() {
        let params: Params = [
            ("REQUEST_URI", "/x"),
            ("CONTENT_LENGTH", "5"),
            ("SCRIPT_NAME", "/x"),
            ("PATH_INFO", ""),
            ("PATH_TRANSLATED", "/srv/x"),
            ("HTTP_COOKIE", "sessionid=abc"),
        ]
        .into_iter()
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect();
        let sent = authorizer_params(&params);
        let names: Vec<&[u8]> = sent.iter().map(|(n, _)| n).collect();
        assert_eq!(names, [&b"REQUEST_URI"[..], b"HTTP_COOKIE", b"FCGI_ROLE"]);
        assert_eq!(sent.get_str("FCGI_ROLE"), Some("AUTHORIZER"));
    }
}
