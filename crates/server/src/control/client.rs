//! The client side of the control socket, for `plexer accounts` and `plexer status`: one
//! request, one answer, blocking.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use super::protocol::{Request, Response};

/// A reload of many accounts waits for their new workers; give it time.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(120);

/// Why a control request got no answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    #[error(
        "cannot connect to the control socket {} (is `plexer serve` running with this config, \
         and are you root or its user?)",
        path.display()
    )]
    Connect {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("the control socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("the control socket gave no answer that reads: {0}")]
    Answer(serde_json::Error),
}

/// Sends `request` and waits for the answer.
pub fn call(path: &Path, request: &Request) -> Result<Response, ClientError> {
    let mut stream = UnixStream::connect(path).map_err(|source| ClientError::Connect {
        path: path.to_owned(),
        source,
    })?;
    stream.set_read_timeout(Some(ANSWER_TIMEOUT))?;
    let body = serde_json::to_vec(request).expect("requests serialize");
    // A refusing plexer may answer before it read everything: its answer says more than the
    // broken pipe.
    if stream.write_all(&body).is_ok() {
        let _ = stream.shutdown(std::net::Shutdown::Write);
    }
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    serde_json::from_slice(&answer).map_err(ClientError::Answer)
}
