//! The unix socket a web server connects to, bound the way spawn-fcgi and php-fpm bind it: a
//! socket file that still answers is another server's and is refused; a stale one (its server
//! died) is replaced; anything else at the path is refused, never deleted (a mistyped path
//! could name the configuration). Owner, group and mode are set before the socket listens, so
//! nothing connects under the umask's mode (spawn-fcgi's `-U -G -M`, php-fpm's
//! `listen.owner/group/mode`; web servers that cannot connect because of them are a classic,
//! h2o#1089 and friends).

use std::io::ErrorKind;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use nix::sys::socket::{
    AddressFamily, Backlog, SockFlag, SockType, UnixAddr, bind, listen, socket,
};
use nix::unistd::{Gid, Uid};

use crate::spawn::{SpawnError, resolve_group, resolve_user};

/// The mode a socket gets when none is given, php-fpm's `listen.mode` default.
pub const DEFAULT_MODE: u32 = 0o660;

/// Why the socket could not be bound.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BindError {
    #[error(
        "{} is in use by a running server (a connection to it succeeded): stop it or listen \
         elsewhere",
        .0.display()
    )]
    InUse(PathBuf),
    // `error` rather than `source`: the message says it, and a chain would say it twice.
    #[error("cannot {what} {}: {error}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        error: std::io::Error,
    },
    #[error(
        "{} exists and is not a socket; binding there would delete it: check the path, or \
         move what is there out of the way",
        .0.display()
    )]
    NotASocket(PathBuf),
    #[error("socket owner: {0}")]
    Owner(SpawnError),
}

/// Who owns the socket file and who may use it.
#[derive(Clone, Debug, Default)]
pub struct SocketAccess<'a> {
    pub owner: Option<&'a str>,
    pub group: Option<&'a str>,
    /// [`DEFAULT_MODE`] when `None`.
    pub mode: Option<u32>,
}

/// `"0660"` (or `0o660`) as a mode.
pub fn parse_mode(text: &str) -> Option<u32> {
    u32::from_str_radix(text.trim_start_matches("0o"), 8)
        .ok()
        .filter(|mode| *mode <= 0o7777)
}

/// Binds `path` (a blocking listener, as a FastCGI worker expects on fd 0) with `access`.
pub fn bind_unix(path: &Path, access: &SocketAccess<'_>) -> Result<UnixListener, BindError> {
    // Looked up before anything is touched: a misspelt name leaves no socket file behind.
    let owner = access
        .owner
        .map(resolve_user)
        .transpose()
        .map_err(BindError::Owner)?;
    let group = access
        .group
        .map(resolve_group)
        .transpose()
        .map_err(BindError::Owner)?;
    remove_stale_socket(path)?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(failed("create the directory of", path))?;
    }
    let socket = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(failed("create a socket for", path))?;
    let address = UnixAddr::new(path).map_err(failed("bind", path))?;
    bind(socket.as_raw_fd(), &address).map_err(failed("bind", path))?;
    // Bound but not yet listening: connections are refused until owner and mode are right.
    let ready = set_access(path, owner, group, access.mode.unwrap_or(DEFAULT_MODE))
        .and_then(|()| listen(&socket, Backlog::MAXALLOWABLE).map_err(failed("listen on", path)));
    if let Err(err) = ready {
        // The file is ours: a socket nobody will ever listen on is not left behind.
        let _ = std::fs::remove_file(path);
        return Err(err);
    }
    Ok(UnixListener::from(socket))
}

/// Clears the way for the new socket: a socket file nobody listens on any more (its server
/// died) is removed; a live one, or anything that is not a socket, is refused.
fn remove_stale_socket(path: &Path) -> Result<(), BindError> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {}
        Ok(_) => return Err(BindError::NotASocket(path.to_owned())),
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(failed("look at", path)(e)),
    }
    match UnixStream::connect(path) {
        Ok(_) => Err(BindError::InUse(path.to_owned())),
        // Refused: nothing listens there any more.
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
            std::fs::remove_file(path).map_err(failed("remove the stale socket", path))
        }
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        // Not allowed to connect, say: a server may well be there, and its socket is not ours.
        Err(e) => Err(failed("check whether a server still listens on", path)(e)),
    }
}

/// Sets owner and mode on the socket file `bind` just made, acting on that file itself: it is
/// opened without following a symbolic link and checked to be a socket, and changed through
/// the open descriptor, so a link swapped in at the path is never followed to another file.
fn set_access(
    path: &Path,
    owner: Option<Uid>,
    group: Option<Gid>,
    mode: u32,
) -> Result<(), BindError> {
    use nix::fcntl::{AtFlags, OFlag, open};
    use nix::sys::stat::{Mode, SFlag, fstat};
    let flags = OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let file = open(path, flags, Mode::empty()).map_err(failed("open the socket file", path))?;
    let stat = fstat(&file).map_err(failed("look at", path))?;
    if SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT != SFlag::S_IFSOCK {
        return Err(BindError::NotASocket(path.to_owned()));
    }
    if owner.is_some() || group.is_some() {
        nix::unistd::fchownat(&file, "", owner, group, AtFlags::AT_EMPTY_PATH)
            .map_err(failed("change the owner of", path))?;
    }
    // chmod has no "this descriptor" form for an O_PATH descriptor: its /proc link names the
    // very inode opened (what glibc's fchmodat(AT_SYMLINK_NOFOLLOW) does too).
    let opened = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
    std::fs::set_permissions(&opened, std::fs::Permissions::from_mode(mode))
        .map_err(failed("set the mode of", path))
}

/// For `map_err`: `what` failed on `path`.
fn failed<'a, E: Into<std::io::Error>>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(E) -> BindError + 'a {
    move |error| BindError::Io {
        what,
        path: path.to_owned(),
        error: error.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn access_is_never_set_through_a_symbolic_link_at_the_socket_path() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("config.yaml");
        std::fs::write(&target, "listen: x").unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
        let link = dir.path().join("app.sock");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let set = set_access(&link, None, None, 0o666);
        assert!(
            set.is_err(),
            "a link at the socket path is refused: {set:?}"
        );
        let mode = std::fs::metadata(&target).unwrap().mode() & 0o7777;
        assert_eq!(mode, 0o600, "the file the link names keeps its mode");
    }

    #[test]
    fn stale_sockets_are_replaced_live_ones_refused_and_access_applied() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/app.sock");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        drop(UnixListener::bind(&path).unwrap()); // stale
        let access = SocketAccess {
            owner: Some("0"),
            group: Some("0"),
            mode: Some(0o640),
        };
        let live = bind_unix(&path, &access).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.mode() & 0o7777, 0o640);
        assert!(matches!(
            bind_unix(&path, &access),
            Err(BindError::InUse(_))
        ));
        drop(live);
        // A fresh path: other tests of this binary fork, and a child between fork and exec
        // holds a copy of every descriptor, so a just-closed listener may still answer.
        let nobody = SocketAccess {
            owner: Some("no-such-user-here"),
            ..SocketAccess::default()
        };
        let err = bind_unix(&dir.path().join("other.sock"), &nobody)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("user \"no-such-user-here\" does not exist"),
            "{err}"
        );
    }

    #[test]
    fn a_misspelt_owner_leaves_no_socket_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.sock");
        let nobody = SocketAccess {
            group: Some("no-such-group-here"),
            ..SocketAccess::default()
        };
        let err = bind_unix(&path, &nobody).unwrap_err().to_string();
        assert!(err.contains("no-such-group-here"), "{err}");
        assert!(
            std::fs::symlink_metadata(&path).is_err(),
            "{path:?} was left"
        );
    }

    #[test]
    fn a_path_that_is_not_a_socket_is_refused_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("plexer.toml");
        std::fs::write(&config, "listen = \"plexer.toml\"\n").unwrap();
        let link = dir.path().join("link.sock");
        std::os::unix::fs::symlink(&config, &link).unwrap();

        for path in [&config, &link] {
            let err = bind_unix(path, &SocketAccess::default()).unwrap_err();
            assert!(matches!(err, BindError::NotASocket(_)), "{err}");
            assert!(
                err.to_string()
                    .contains(&format!("{} exists and is not a socket", path.display())),
                "{err}"
            );
        }
        assert_eq!(
            std::fs::read_to_string(&config).unwrap(),
            "listen = \"plexer.toml\"\n"
        );
        assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
    }

    #[test]
    fn modes_parse_as_octal() {
        assert_eq!(parse_mode("0660"), Some(0o660));
        assert_eq!(parse_mode("0o600"), Some(0o600));
        assert_eq!(parse_mode("rw"), None);
        assert_eq!(parse_mode("77777"), None);
    }
}
