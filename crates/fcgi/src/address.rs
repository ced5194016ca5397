//! Where a FastCGI peer listens, written the way the contract and spawn-fcgi users write it:
//! `unix:/path/to.sock`, `tcp:127.0.0.1:9000`, or a bare path (unix).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// A FastCGI socket address.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Address {
    Unix(PathBuf),
    /// `HOST:PORT`, resolved when used.
    Tcp(String),
}

/// An address that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "bad socket address {0:?}: write unix:/path/to.sock, tcp:HOST:PORT (e.g. tcp:127.0.0.1:9000) \
     or an absolute path"
)]
pub struct BadAddress(pub String);

impl FromStr for Address {
    type Err = BadAddress;

    fn from_str(text: &str) -> Result<Self, BadAddress> {
        let bad = || BadAddress(text.to_owned());
        if let Some(path) = text.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(bad());
            }
            return Ok(Self::Unix(path.into()));
        }
        if let Some(hostport) = text.strip_prefix("tcp:") {
            let (host, port) = hostport.rsplit_once(':').ok_or_else(bad)?;
            if host.is_empty() || port.parse::<u16>().is_err() {
                return Err(bad());
            }
            return Ok(Self::Tcp(hostport.to_owned()));
        }
        if text.starts_with('/') || text.starts_with("./") {
            return Ok(Self::Unix(text.into()));
        }
        Err(bad())
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unix(path) => write!(f, "unix:{}", path.display()),
            Self::Tcp(hostport) => write!(f, "tcp:{hostport}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_forms_and_names_bad_ones() {
        assert_eq!(
            "unix:/run/a.sock".parse(),
            Ok(Address::Unix("/run/a.sock".into()))
        );
        assert_eq!(
            "/run/a.sock".parse(),
            Ok(Address::Unix("/run/a.sock".into()))
        );
        assert_eq!(
            "tcp:127.0.0.1:9000".parse(),
            Ok(Address::Tcp("127.0.0.1:9000".into()))
        );
        assert_eq!(
            "tcp:[::1]:9000".parse(),
            Ok(Address::Tcp("[::1]:9000".into()))
        );
        for bad in [
            "",
            "unix:",
            "tcp:nohost",
            "tcp::9000",
            "tcp:h:99999",
            "relative.sock",
        ] {
            assert_eq!(bad.parse::<Address>(), Err(BadAddress(bad.into())), "{bad}");
        }
        assert_eq!(Address::Unix("/x".into()).to_string(), "unix:/x");
    }
}
