//! One GET over a unix socket with the `fastcgi-client` crate: the client the supervisor
//! benchmark uses for plexer's workers and for php-fpm alike, so that neither side is timed
//! with a client of its own.

use std::io;
use std::path::Path;

use fastcgi_client::{Client, Params, Request};
use tokio::net::UnixStream;

/// Connects to `socket`, sends `GET uri` and returns the STDOUT of the answer.
///
/// `script` is the PHP file php-fpm runs (`SCRIPT_FILENAME`); hello ignores it. The connection
/// is kept alive, as plexer keeps it: fastcgi-client writes a second empty STDIN record, and on
/// a connection the application closes right after its answer that write could fail with
/// EPIPE. It is closed when this returns.
pub async fn get(socket: &Path, uri: &str, script: &Path) -> io::Result<Vec<u8>> {
    let stream = UnixStream::connect(socket).await?;
    let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
    let script = script.to_string_lossy();
    let params = Params::default()
        .request_method("GET")
        .request_uri(uri)
        .query_string(query)
        .script_name(path)
        .script_filename(script.as_ref())
        .server_name("localhost")
        .remote_addr("127.0.0.1");
    let request = Request::new(params, fastcgi_client::io::empty());
    let response = Client::new_keep_alive_tokio(stream)
        .execute(request)
        .await
        .map_err(io::Error::other)?;
    let stdout = response.stdout.unwrap_or_default();
    // Both hello and the PHP script answer with a `pid: N` line; anything else is an error
    // page (php-fpm's "File not found.", a 500) and must not count as served.
    if !stdout.windows(5).any(|w| w == b"pid: ") {
        return Err(io::Error::other(format!(
            "the answer is not the expected page: {:?}",
            String::from_utf8_lossy(&stdout[..stdout.len().min(300)])
        )));
    }
    Ok(stdout)
}
