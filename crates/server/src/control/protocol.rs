//! What `plexer accounts` and `plexer status` say to the control socket, and what they hear
//! back: one JSON object per connection each way, so the protocol is readable with `socat`.

use std::collections::BTreeMap;

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
        }
    }

    /// The account it names, if any, for the log.
    pub fn account(&self) -> Option<&str> {
        match self {
            Self::Add(add) => Some(&add.name),
            Self::Remove { name } => Some(name),
            Self::Reload { name } => name.as_deref(),
            Self::List | Self::Status { .. } => None,
        }
    }
}

/// `plexer accounts add NAME [--socket ADDR] [--env K=V]… [--user NAME]… [--set KEY=VALUE]…`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddAccount {
    pub name: String,
    #[serde(default)]
    pub socket: Option<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub users: Vec<String>,
    /// Pool keys as `KEY: VALUE` YAML, in the order given.
    #[serde(default)]
    pub set: Vec<(String, String)>,
}

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

impl AddAccount {
    /// The account file this request writes. Values are written as JSON strings (valid YAML),
    /// so no value can add a key; `--set` values are YAML and must be one line.
    pub fn file_text(&self) -> Result<String, String> {
        let mut text = String::new();
        if !self.users.is_empty() {
            text.push_str(&format!("users: {}\n", json(&self.users)));
        }
        if let Some(socket) = &self.socket {
            text.push_str(&format!("socket: {}\n", json(socket)));
        }
        if !self.env.is_empty() {
            text.push_str(&format!("env: {}\n", json(&self.env)));
        }
        let mut seen = Vec::new();
        for (key, value) in &self.set {
            let flag = match key.as_str() {
                "users" => Some("--user NAME"),
                "socket" => Some("--socket ADDR"),
                "env" => Some("--env K=V"),
                _ => None,
            };
            if let Some(flag) = flag {
                return Err(format!("--set {key}=…: give {key} with {flag}"));
            }
            if key.is_empty() || !key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
                return Err(format!(
                    "--set {key:?}: a key is a pool key like max_children"
                ));
            }
            // YAML also breaks lines at NEL, LS and PS: any of them would start a new key.
            if value.contains(|c: char| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')) {
                return Err(format!("--set {key}: the value must be one line"));
            }
            if seen.contains(&key) {
                return Err(format!("--set {key} is given twice"));
            }
            seen.push(key);
            text.push_str(&format!("{key}: {value}\n"));
        }
        Ok(text)
    }
}

/// A value as JSON, which YAML reads as the same value.
fn json<T: Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).expect("strings, lists and maps of strings serialize")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_add_request_becomes_a_file_whose_values_cannot_add_keys() {
        let add = AddAccount {
            name: "bob".into(),
            users: vec!["bob".into(), "x\nsocket: unix:/evil".into()],
            env: BTreeMap::from([("DB".into(), "bob\"\n".into())]),
            set: vec![("max_children".into(), "8".into())],
            ..AddAccount::default()
        };
        let text = add.file_text().unwrap();
        assert_eq!(
            text,
            "users: [\"bob\",\"x\\nsocket: unix:/evil\"]\nenv: {\"DB\":\"bob\\\"\\n\"}\n\
             max_children: 8\n"
        );
        let parsed: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        assert_eq!(parsed["users"][1], "x\nsocket: unix:/evil");
        assert_eq!(parsed["env"]["DB"], "bob\"\n");
        assert!(parsed.get("socket").is_none());
    }

    #[test]
    fn set_refuses_what_would_change_other_keys() {
        for (key, value, expected) in [
            ("users", "[x]", "give users with --user NAME"),
            ("max_children", "2\nsocket: x", "must be one line"),
            ("max_children", "2\u{2028}socket: x", "must be one line"),
            ("max_children", "2\u{85}socket: x", "must be one line"),
            ("Max", "2", "a key is a pool key"),
        ] {
            let add = AddAccount {
                name: "bob".into(),
                set: vec![(key.into(), value.into())],
                ..AddAccount::default()
            };
            let err = add.file_text().unwrap_err();
            assert!(err.contains(expected), "{err}");
        }
    }

    #[test]
    fn requests_read_as_tagged_json() {
        let request: Request = serde_json::from_str(r#"{"op":"remove","name":"bob"}"#).unwrap();
        assert_eq!(request, Request::Remove { name: "bob".into() });
        assert!(serde_json::from_str::<Request>(r#"{"op":"explode"}"#).is_err());
    }
}
