//! `plexer accounts add`'s request: the account file it writes, built so that no value can
//! add a key.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::SpecError;

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

impl AddAccount {
    /// The account file this request writes. Values are written as JSON strings (valid YAML),
    /// so no value can add a key; `--set` values are YAML and must be one line.
    pub fn file_text(&self) -> Result<String, SpecError> {
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
                return Err(SpecError::OwnFlag {
                    key: key.clone(),
                    flag,
                });
            }
            if key.is_empty() || !key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
                return Err(SpecError::NotAKey { key: key.clone() });
            }
            // YAML also breaks lines at NEL, LS and PS: any of them would start a new key.
            if value.contains(|c: char| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')) {
                return Err(SpecError::NotOneLine { key: key.clone() });
            }
            if seen.contains(&key) {
                return Err(SpecError::Twice { key: key.clone() });
            }
            seen.push(key);
            text.push_str(&format!("{key}: {value}\n"));
        }
        // An empty file is refused (it is what an edit looks like half-way); this is the
        // account with every default.
        if text.is_empty() {
            text.push_str("{}\n");
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
    fn an_add_with_no_options_writes_an_account_with_every_default() {
        let add = AddAccount {
            name: "login".into(),
            ..AddAccount::default()
        };
        let text = add.file_text().unwrap();
        assert_eq!(text, "{}\n");
        let parsed = crate::config::AccountFile::parse(&text, std::path::Path::new("login.yaml"));
        assert!(parsed.is_ok(), "{parsed:?}");
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
            let err = add.file_text().unwrap_err().to_string();
            assert!(err.contains(expected), "{err}");
        }
    }
}
