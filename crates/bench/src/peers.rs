//! The peer crates, each used the way its own documentation and examples use it.
//!
//! - `fastcgi-client` 0.12: `Client::new_keep_alive_tokio(stream)`, then `execute` per request
//!   with the same params (borrowed, none of its defaults) and `io::empty()` stdin. It returns
//!   the whole STDOUT as one `Vec<u8>`.
//! - `tokio-fastcgi` 1.3: `Requests::from_split_socket`, `next()`, then `process` with a
//!   callback that writes the response to `get_stdout()` and returns `Complete(0)`.

use std::io;

use bytes::Bytes;
use fastcgi_client::conn::KeepAlive;
use fastcgi_client::io::TokioCompat;
use fastcgi_client::{Client, Request};
use tokio_fastcgi::{RequestResult, Requests};

use crate::pipe::PipeEnd;
use crate::workload::Workload;

/// fastcgi-client on a kept-alive connection.
pub struct FastcgiClient {
    client: Client<TokioCompat<PipeEnd>, KeepAlive>,
    params: fastcgi_client::Params<'static>,
}

impl std::fmt::Debug for FastcgiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FastcgiClient").finish_non_exhaustive()
    }
}

impl FastcgiClient {
    pub fn new(end: PipeEnd, workload: &Workload) -> Self {
        Self {
            client: Client::new_keep_alive_tokio(end),
            params: workload.fastcgi_client_params(),
        }
    }

    /// One request; returns the STDOUT bytes. `execute` takes its params by value, so each
    /// request clones the map (its strings are borrowed, so that is one allocation).
    pub async fn round_trip(&mut self) -> io::Result<usize> {
        let request = Request::new(self.params.clone(), fastcgi_client::io::empty());
        let response = self
            .client
            .execute(request)
            .await
            .map_err(io::Error::other)?;
        Ok(response.stdout.map_or(0, |stdout| stdout.len()))
    }
}

/// tokio-fastcgi serving every request on `end` with `stdout`, until the web server closes
/// the connection.
pub async fn tokio_fastcgi_serve(end: PipeEnd, stdout: Bytes) -> io::Result<()> {
    let mut requests = Requests::from_split_socket((end.rd, end.wr), 1, 1);
    while let Some(request) = requests.next().await.map_err(io::Error::other)? {
        let body = stdout.clone();
        request
            .process(|request| async move {
                match request.get_stdout().write(&body).await {
                    Ok(_) => RequestResult::Complete(0),
                    Err(_) => RequestResult::Overloaded,
                }
            })
            .await
            .map_err(io::Error::other)?;
    }
    Ok(())
}
