//! A request as a logged-in user's browser makes it through `plexer serve`: a FastCGI GET
//! carrying a routing cookie signed with the plexer's secret, answered by `hello`, whose
//! `account: NAME` line says which account served it. The live-accounts benchmarks time
//! how long until a new account serves, so every request is bounded and a miss is cheap.

use std::io;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fastcgi_client::{Client, Params, Request};
use plexer_server::account::AccountName;
use plexer_server::cookie::Keys;

/// The longest one request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a cookie made here stays valid: longer than any benchmark runs.
const COOKIE_LIFETIME: Duration = Duration::from_secs(3600);

/// The `Cookie` header that routes to `account`, signed with `keys`.
pub fn cookie(keys: &Keys, account: &str) -> String {
    let expiry = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        + COOKIE_LIFETIME;
    let name = AccountName::new(account)
        .unwrap_or_else(|err| panic!("{account:?} is not an account name: {err}"));
    format!(
        "plexer_account={}",
        keys.sign(&name, None, expiry.as_secs())
    )
}

/// One GET through the plexer listening on `socket`, with `cookie`, within
/// [`REQUEST_TIMEOUT`]: the account hello says served it, or `-` when the answer is not
/// hello's (plexer's own error page for an account it does not know, say).
pub async fn served_by(socket: &Path, cookie: &str) -> io::Result<String> {
    tokio::time::timeout(REQUEST_TIMEOUT, get(socket, cookie))
        .await
        .map_err(|_| io::Error::other(format!("no answer within {REQUEST_TIMEOUT:?}")))?
}

async fn get(socket: &Path, cookie: &str) -> io::Result<String> {
    let stream = tokio::net::UnixStream::connect(socket).await?;
    let mut params = Params::default()
        .request_method("GET")
        .request_uri("/bench")
        .script_name("/bench")
        .server_name("localhost")
        .remote_addr("127.0.0.1");
    params.insert("HTTP_COOKIE".into(), cookie.to_owned().into());
    let response = Client::new_keep_alive_tokio(stream)
        .execute(Request::new(params, fastcgi_client::io::empty()))
        .await
        .map_err(io::Error::other)?;
    let stdout = String::from_utf8_lossy(&response.stdout.unwrap_or_default()).into_owned();
    Ok(stdout
        .lines()
        .find_map(|l| l.strip_prefix("account: "))
        .unwrap_or("-")
        .to_owned())
}
