//! What `plexer accounts` and `plexer status` say to the control socket, and what they hear
//! back: one JSON object per connection each way, so the protocol is readable with `socat`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One control request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Every account, with its state.
    List,
    /// A new account: its file is written, then it is routable.
    Add(AddAccount),
    /// An account's file is removed, its requests in flight finish, its workers stop.
    Remove { name: String },
    /// One account from its file again (a new generation of workers), or with no name the
    /// config and every account, as SIGHUP does.
    Reload { name: Option<String> },
    /// The status page's data.
    Status { full: bool },
    /// Every node of the shared registry, as `plexer_nodes` has them.
    Cluster,
}

impl Request {
    /// The operation's name, for the log.
    pub fn op(&self) -> &'static str {
        match self {
            Self::List => "list",
            Self::Add(_) => "add",
            Self::Remove { .. } => "remove",
            Self::Reload { .. } => "reload",
            Self::Status { .. } => "status",
            Self::Cluster => "cluster",
        }
    }

    /// The account it names, if any, for the log.
    pub fn account(&self) -> Option<&str> {
        match self {
            Self::Add(add) => Some(&add.name),
            Self::Remove { name } => Some(name),
            Self::Reload { name } => name.as_deref(),
            Self::List | Self::Status { .. } | Self::Cluster => None,
        }
    }
}

pub use crate::accounts::AddAccount;

/// The answer: `ok` with a message for a person, and data for `list` and `status`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl Response {
    pub fn done(message: impl Into<String>) -> Self {
        Self {
            ok: true,
            message: message.into(),
            data: None,
        }
    }

    pub fn refused(message: impl Into<String>) -> Self {
        Self {
            ok: false,
            message: message.into(),
            data: None,
        }
    }

    pub fn with_data(message: impl Into<String>, data: Value) -> Self {
        Self {
            ok: true,
            message: message.into(),
            data: Some(data),
        }
    }
}

/// The most a request may be: an account file is small.
pub const MAX_REQUEST: usize = 256 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_read_as_tagged_json() {
        let request: Request = serde_json::from_str(r#"{"op":"remove","name":"bob"}"#).unwrap();
        assert_eq!(request, Request::Remove { name: "bob".into() });
        assert!(serde_json::from_str::<Request>(r#"{"op":"explode"}"#).is_err());
    }
}
