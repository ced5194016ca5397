//! The one place that knows the YAML library.
//!
//! serde_yaml was named by the project's owner, and its upstream is archived (research/rust.md
//! §3), so it is kept behind this one function: swapping it for serde_norway or serde-saphyr
//! is this file and a test run.

use std::path::Path;

use serde::de::DeserializeOwned;

use super::ConfigError;

/// Parses `text`, read from `file`, into `T`; errors name the file, the line and the column.
pub(crate) fn parse<T: DeserializeOwned>(text: &str, file: &Path) -> Result<T, ConfigError> {
    serde_yaml::from_str(text).map_err(|err| {
        let (line, column) = err.location().map_or((0, 0), |at| (at.line(), at.column()));
        // serde_yaml appends " at line L column C"; the location is reported on its own.
        let message = err.to_string();
        let message = match message.rfind(" at line ") {
            Some(at) => message[..at].to_owned(),
            None => message,
        };
        ConfigError::Parse {
            file: file.to_owned(),
            line,
            column,
            message,
        }
    })
}
