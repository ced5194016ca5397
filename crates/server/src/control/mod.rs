//! The control socket: how `plexer accounts` and `plexer status` change and read the running
//! plexer. A unix socket only (the config refuses tcp), mode 0600, and every peer's uid checked
//! with SO_PEERCRED: only root and plexer's own user may talk to it, whatever the mode says.

pub mod client;
pub mod protocol;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use plexer_prefork::listen::{self, SocketAccess};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

use crate::accounts::Manager;
use crate::status;
use protocol::{MAX_REQUEST, Request, Response};

/// How long a client may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The bound control socket; the file goes when this is dropped.
pub struct ControlSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Binds the control socket with mode 0600.
pub fn bind(path: &Path) -> Result<ControlSocket, listen::BindError> {
    let access = SocketAccess {
        owner: None,
        group: None,
        mode: Some(0o600),
    };
    let listener = listen::bind_unix(path, &access)?;
    let io = |error| listen::BindError::Io {
        what: "listen on",
        path: path.to_owned(),
        error,
    };
    listener.set_nonblocking(true).map_err(io)?;
    let listener = UnixListener::from_std(listener).map_err(io)?;
    Ok(ControlSocket {
        listener,
        path: path.to_owned(),
    })
}

/// Answers control requests until the task is dropped.
pub async fn serve(socket: ControlSocket, manager: Arc<Manager>) {
    loop {
        match socket.listener.accept().await {
            Ok((stream, _)) => {
                let manager = Arc::clone(&manager);
                tokio::spawn(async move { answer(stream, &manager).await });
            }
            Err(err) => {
                tracing::warn!(error = %err, "control socket: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// The uids allowed to change the plexer: root and the plexer's own.
fn allowed(uid: u32) -> bool {
    uid == 0 || uid == nix::unistd::geteuid().as_raw()
}

async fn answer(mut stream: UnixStream, manager: &Manager) {
    let response = match stream.peer_cred() {
        Ok(cred) if allowed(cred.uid()) => match read_request(&mut stream).await {
            Ok(request) => {
                // The operation and the account, never the values (env may hold secrets).
                tracing::info!(
                    uid = cred.uid(),
                    op = request.op(),
                    account = request.account(),
                    "control request"
                );
                carry_out(request, manager).await
            }
            Err(why) => Response::refused(why.to_string()),
        },
        Ok(cred) => {
            // Read first, so the peer hears the refusal rather than a broken pipe.
            let _ = read_request(&mut stream).await;
            tracing::warn!(
                refused_uid = cred.uid(),
                pid = cred.pid(),
                "control socket: refused a peer of another user"
            );
            Response::refused(format!(
                "refused: uid {} may not control this plexer (only root and uid {})",
                cred.uid(),
                nix::unistd::geteuid()
            ))
        }
        Err(err) => Response::refused(format!("cannot check the peer's credentials: {err}")),
    };
    let mut line = serde_json::to_vec(&response).expect("responses serialize");
    line.push(b'\n');
    let _ = stream.write_all(&line).await;
    let _ = stream.shutdown().await;
}

/// Why a control request could not be read.
#[derive(Debug, thiserror::Error)]
enum RequestError {
    #[error("no whole request within {READ_TIMEOUT:?}")]
    TooSlow,
    #[error("cannot read the request: {0}")]
    Read(std::io::Error),
    #[error("the request is over {MAX_REQUEST} bytes")]
    TooLong,
    #[error("not a control request: {0}")]
    NotJson(serde_json::Error),
}

async fn read_request(stream: &mut UnixStream) -> Result<Request, RequestError> {
    let mut buf = Vec::new();
    let read = tokio::time::timeout(
        READ_TIMEOUT,
        (&mut *stream)
            .take(MAX_REQUEST as u64 + 1)
            .read_to_end(&mut buf),
    )
    .await;
    match read {
        Err(_) => return Err(RequestError::TooSlow),
        Ok(Err(err)) => return Err(RequestError::Read(err)),
        Ok(Ok(_)) if buf.len() > MAX_REQUEST => return Err(RequestError::TooLong),
        Ok(Ok(_)) => {}
    }
    serde_json::from_slice(&buf).map_err(RequestError::NotJson)
}

/// `plexer status --cluster`: the nodes table, read through this node's connection.
async fn cluster(manager: &Manager) -> Response {
    let Some(table) = manager.table() else {
        return Response::refused(
            "this plexer reads accounts_dir: it is one node alone (registry: in the config \
             makes nodes share a table)",
        );
    };
    let this_node = manager.state().snapshot().config.node_name();
    match table.nodes().await {
        Ok(nodes) => {
            Response::with_data("cluster", crate::cluster::nodes::report(&nodes, &this_node))
        }
        Err(err) => Response::refused(err.to_string()),
    }
}

async fn carry_out(request: Request, manager: &Manager) -> Response {
    let result = match request {
        Request::List => return Response::with_data("accounts", manager.list()),
        Request::Status { full } => {
            let snapshot = manager.state().snapshot();
            let detail = status::Detail::of(crate::router::StatusFormat::Text, full, None);
            let report = status::report_with_state(snapshot, manager.state(), detail).await;
            return Response::with_data("status", report);
        }
        Request::Cluster => return cluster(manager).await,
        Request::Add(add) => manager.add(&add).await.map(|changed| changed.to_string()),
        Request::Remove { name } => manager.remove(&name).await.map(|c| c.to_string()),
        Request::Reload { name: Some(name) } => manager.reload(&name).await.map(|c| c.to_string()),
        Request::Reload { name: None } => match manager.reload_all().await {
            Ok(applied) if applied.refused.is_empty() => Ok(format!(
                "config and accounts reloaded: {}",
                applied.summary()
            )),
            Ok(applied) => {
                let refused: Vec<String> = applied.refused.iter().map(|r| r.to_string()).collect();
                return Response::refused(format!(
                    "config reloaded: {}; refused:\n{}",
                    applied.summary(),
                    refused.join("\n")
                ));
            }
            Err(refused) => Err(refused),
        },
    };
    match result {
        Ok(message) => Response::done(message),
        Err(refused) => Response::refused(refused.to_string()),
    }
}
