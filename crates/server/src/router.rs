//! Which account a request goes to (CONTRACT.md, "Routing, on the wire"). Pure: params and
//! config in, a [`Decision`] out, so every rule is tested without a socket.
//!
//! The order is fixed and matters:
//! 1. Every param named `PLEXER_*` or `HTTP_X_PLEXER_*` is dropped, whatever its case: nginx
//!    turns each client header into an `HTTP_*` param, so a client could otherwise claim an
//!    account or a user. plexer then sets `PLEXER_ACCOUNT` (and `PLEXER_USER` when known: from
//!    `REMOTE_USER`, or from a four-part routing cookie) itself, after routing.
//! 2. `status_path` and `ping_path` are answered by plexer itself (the status page only for
//!    `status_allow` clients), even when every worker is busy.
//! 3. The account comes from the configured key (`route.by`) and must be in the registry:
//!    there is no default account, and no path is ever built from client text.
//! 4. Without one: the login account, or the configured redirect, or 403.

use std::borrow::Cow;
use std::net::IpAddr;

use plexer_fcgi::Params;

use crate::account::AccountName;
use crate::config::{Config, RouteBy};
use crate::cookie::{Keys, find_cookie};
use crate::host::host_without_port;
use crate::registry::Registry;
use crate::user::UserName;

/// Where a request goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// `ping_path`: plexer answers `pong`.
    Ping,
    /// `status_path`, for an allowed client.
    /// `query` is the rest of the query string (the dashboard's page, sort, filter and
    /// account), read by the status page itself.
    Status {
        format: StatusFormat,
        full: bool,
        query: String,
    },
    /// `status_path`, for anyone else.
    StatusForbidden,
    /// The account's workers; `user` when the route knows it.
    Account {
        account: AccountName,
        user: Option<String>,
    },
    /// No account: the login app, which may choose one for the client.
    Login { account: AccountName },
    /// No account and no login app: a 302 to `login.redirect`.
    Redirect(String),
    /// No account, no login app, no redirect.
    Forbidden,
    /// A param the route trusts came twice: which one wins would be a guess, so neither does.
    Duplicated(&'static str),
    /// `route.by: authorizer`: its app decides; see [`after_authorizer`].
    AskAuthorizer,
    /// The authorizer named an account that does not exist: a 403, and the log names it.
    NoSuchAccount(String),
}

/// The params routing and the status page trust, each of which a request must carry at most
/// once. (nginx before 1.23 passes two `Cookie:` header lines as two `HTTP_COOKIE` params.)
const SINGLE_PARAMS: [&str; 3] = ["HTTP_COOKIE", "REMOTE_ADDR", "REMOTE_USER"];

/// The first of [`SINGLE_PARAMS`] that `params` holds more than once, in one pass.
fn duplicated(params: &Params) -> Option<&'static str> {
    let mut seen = [false; SINGLE_PARAMS.len()];
    for (name, _) in params.iter() {
        let Some(i) = SINGLE_PARAMS.iter().position(|s| s.as_bytes() == name) else {
            continue;
        };
        if std::mem::replace(&mut seen[i], true) {
            return Some(SINGLE_PARAMS[i]);
        }
    }
    None
}

/// The status page's formats (php-fpm's `?json`, `?openmetrics`, `?html`; text by default).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusFormat {
    Text,
    Json,
    OpenMetrics,
    Html,
}

/// Drops every param a client could use to claim an account: `PLEXER_*` and `HTTP_X_PLEXER_*`,
/// compared without case. Returns how many were dropped, for the log.
pub(crate) fn strip_claims(params: &mut Params) -> usize {
    let before = params.len();
    let claims = |name: &[u8]| {
        [&b"PLEXER_"[..], b"HTTP_X_PLEXER_"].iter().any(|prefix| {
            name.get(..prefix.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
        })
    };
    params.retain(|name, _| !claims(name));
    before - params.len()
}

/// The path of the request, decoded, without its query string; `None` when it can match
/// nothing. `DOCUMENT_URI` is preferred: the web server's decoded, normalised path, taken as it
/// is (decoding it again would read `%2562` as `b`). A raw `REQUEST_URI` is decoded segment by
/// segment, and refused when a segment could mean another path than the one the web server
/// used: `.` or `..` (`%2e%2e` too), an escaped `/`, a `%` that escapes nothing.
fn request_path(params: &Params) -> Option<Cow<'_, str>> {
    if let Some(document) = params.get("DOCUMENT_URI") {
        // Decoded: a `?` in it was `%3F` in the path, not a query.
        return std::str::from_utf8(document).ok().map(Cow::Borrowed);
    }
    let raw = params
        .get_str("REQUEST_URI")
        .or_else(|| params.get_str("SCRIPT_NAME"))
        .unwrap_or("/");
    let path = raw.split('?').next().unwrap_or("/");
    if !path.contains('%') {
        let dotted = path
            .split('/')
            .any(|segment| segment == "." || segment == "..");
        return (!dotted).then_some(Cow::Borrowed(path));
    }
    let segments: Option<Vec<String>> = path.split('/').map(decode_segment).collect();
    Some(Cow::Owned(segments?.join("/")))
}

/// The host the web server matched the request by: `SERVER_NAME` when it names a host (nginx
/// sends the server block's first name; a catch-all block's `_` or `*.example.com` names
/// none), else `HTTP_HOST`. In that order because nginx chose its server block by the
/// absolute-form request line (`GET http://bob.example.com/`) whatever `Host:` said.
fn request_host(params: &Params) -> Option<&str> {
    let concrete = |name: &&str| !name.is_empty() && *name != "_" && !name.contains('*');
    params
        .get_str("SERVER_NAME")
        .filter(concrete)
        .or_else(|| params.get_str("HTTP_HOST"))
}

/// A raw path segment, percent-decoded; `None` when it could name something else than the
/// web server saw: an escaped slash or backslash, a `.` or `..` segment, a `%` that escapes
/// nothing, bytes that are not UTF-8.
fn decode_segment(segment: &str) -> Option<String> {
    let mut decoded = Vec::with_capacity(segment.len());
    let mut bytes = segment.bytes();
    while let Some(byte) = bytes.next() {
        if byte != b'%' {
            decoded.push(byte);
            continue;
        }
        let hex = [bytes.next()?, bytes.next()?];
        // from_str_radix alone would take "+a" as a number.
        if !hex.iter().all(u8::is_ascii_hexdigit) {
            return None;
        }
        decoded.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
    }
    let decoded = String::from_utf8(decoded).ok()?;
    let ambiguous = decoded.contains(['/', '\\']) || decoded == "." || decoded == "..";
    (!ambiguous).then_some(decoded)
}

/// Decides where a request goes. `params` must have been through [`strip_claims`].
pub(crate) fn route(
    config: &Config,
    keys: &Keys,
    registry: &Registry,
    params: &Params,
    now: u64,
) -> Decision {
    if let Some(name) = duplicated(params) {
        return Decision::Duplicated(name);
    }
    let path = request_path(params);
    let path = path.as_deref();
    if path == Some(config.ping_path.as_str()) {
        return Decision::Ping;
    }
    if path == Some(config.status_path.as_str()) {
        // With a socket of its own, the status page is not served here: no param a client
        // or a tenant sends opens it.
        return match config.status_listen {
            Some(_) => Decision::StatusForbidden,
            None => status_decision(config, params),
        };
    }
    let known = |name: &str| {
        AccountName::new(name)
            .ok()
            .filter(|name| registry.get(name).is_some())
    };
    let found = match config.route.by {
        RouteBy::Authorizer => return Decision::AskAuthorizer,
        RouteBy::Cookie => by_cookie(config, keys, registry, params, now),
        RouteBy::RemoteUser => by_remote_user(registry, params),
        RouteBy::Host => request_host(params)
            .and_then(|host| {
                let label = host_without_port(host).split('.').next()?;
                known(&label.to_ascii_lowercase())
            })
            .map(|account| (account, None)),
        RouteBy::PathPrefix => path
            .and_then(|path| path.strip_prefix('/'))
            .and_then(|rest| rest.split('/').next())
            .and_then(known)
            .map(|account| (account, None)),
    };
    match found {
        Some((account, user)) => Decision::Account { account, user },
        None => no_account(config, registry),
    }
}

/// Where a request that names no account goes: the login app, the redirect, or a 403.
fn no_account(config: &Config, registry: &Registry) -> Decision {
    let login = config.login.account.as_deref().and_then(|name| {
        AccountName::new(name)
            .ok()
            .filter(|name| registry.get(name).is_some())
    });
    if let Some(login) = login {
        return Decision::Login { account: login };
    }
    match &config.login.redirect {
        Some(url) => Decision::Redirect(url.clone()),
        None => Decision::Forbidden,
    }
}

/// Where the authorizer's 200 sends a request: the account it names, with the user it names
/// (trusted as the authorizer is: it need not be in the account's `users`); where a request
/// without a valid cookie goes when it names none; a 403 when it names one that is not there.
pub(crate) fn after_authorizer(
    config: &Config,
    registry: &Registry,
    allowed: &crate::authorizer::Allowed,
) -> Decision {
    let Some(named) = &allowed.account else {
        return no_account(config, registry);
    };
    match AccountName::new(named) {
        Ok(account) if registry.get(&account).is_some() => Decision::Account {
            account,
            user: allowed.user.clone(),
        },
        _ => Decision::NoSuchAccount(named.clone()),
    }
}

/// A request on the `status_listen` socket, where whoever connects may see the status page:
/// the page at `status_path`, `pong` at `ping_path`, and a 403 for anything else, which
/// never reaches an account.
pub(crate) fn route_status_socket(config: &Config, params: &Params) -> Decision {
    if let Some(name) = duplicated(params) {
        return Decision::Duplicated(name);
    }
    let path = request_path(params);
    match path.as_deref() {
        Some(path) if path == config.ping_path => Decision::Ping,
        Some(path) if path == config.status_path => status_page(params),
        _ => Decision::Forbidden,
    }
}

/// The status page for an address in `status_allow`, in the format its query asks for.
fn status_decision(config: &Config, params: &Params) -> Decision {
    let allowed = params
        .get_str("REMOTE_ADDR")
        .and_then(|addr| addr.parse::<IpAddr>().ok())
        .is_some_and(|addr| config.status_allow.contains(&addr));
    match allowed {
        true => status_page(params),
        false => Decision::StatusForbidden,
    }
}

/// The status page, in the format its query asks for.
fn status_page(params: &Params) -> Decision {
    let query = params
        .get_str("QUERY_STRING")
        .or_else(|| {
            params
                .get_str("REQUEST_URI")?
                .split_once('?')
                .map(|(_, q)| q)
        })
        .unwrap_or_default();
    let has = |word: &str| {
        query
            .split('&')
            .any(|part| part == word || part.starts_with(&format!("{word}=")))
    };
    let format = if has("json") {
        StatusFormat::Json
    } else if has("openmetrics") {
        StatusFormat::OpenMetrics
    } else if has("html") {
        StatusFormat::Html
    } else {
        StatusFormat::Text
    };
    Decision::Status {
        format,
        full: has("full"),
        query: query.to_owned(),
    }
}

/// The account of a routing cookie signed with a current key, if it still exists, and the user
/// the cookie names, if it has the four-part form. The user is what the login app said when
/// it signed the client in; it is not looked up in `users` again (CONTRACT.md: the app gets
/// `PLEXER_USER` on every request of that cookie).
fn by_cookie(
    config: &Config,
    keys: &Keys,
    registry: &Registry,
    params: &Params,
    now: u64,
) -> Option<(AccountName, Option<String>)> {
    // Lossy: another cookie's bytes that are not UTF-8 must not hide ours.
    let header = params.get("HTTP_COOKIE").map(String::from_utf8_lossy)?;
    let value = find_cookie(&header, &config.route.cookie)?;
    let verified = keys.verify(value, now, config.route.max_age.0).ok()?;
    registry.get(&verified.account)?;
    Some((verified.account, verified.user.map(UserName::into_string)))
}

/// The account that lists the user the web server authenticated.
fn by_remote_user(registry: &Registry, params: &Params) -> Option<(AccountName, Option<String>)> {
    let user = params
        .get_str("REMOTE_USER")
        .filter(|user| !user.is_empty())?;
    let account = registry.account_of_user(user)?.name.clone();
    Some((account, Some(user.to_owned())))
}

#[cfg(test)]
mod tests;
