//! Whether an account's workers could connect to plexer's `listen:` socket themselves. Whoever
//! connects there speaks FastCGI as the web server does and sets every param: `REMOTE_USER`
//! (the route with `route.by: remote_user`), the host and the path (`host`, `path_prefix`), and
//! `REMOTE_ADDR` (what `status_allow` trusts). A tenant whose workers run as the web server's
//! user, or as plexer's, or whose group the socket's mode lets in, can do all of that.
//!
//! The decision is a value ([`reach`]) from the socket's owner, group and mode and the workers'
//! user and groups; reading those from the system is left to the callers.

use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::unistd::{Gid, Uid};
use plexer_fcgi::Address;
use plexer_prefork::spawn::Identity;

use crate::config::{Config, RouteBy};

/// Who may connect to the listen socket, as far as the file's permissions say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListenAccess {
    /// Any local user: a TCP address, or a socket with no file (abstract).
    Anyone,
    /// A unix socket file: connecting needs write permission on it.
    File { uid: u32, gid: u32, mode: u32 },
}

/// The user and groups a pool's workers run as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Who {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

/// Why a pool's workers could connect to the listen socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reach {
    /// They run as root, which connects anywhere.
    Root,
    /// `listen:` is a TCP address (or an abstract socket): every local user connects.
    Anyone,
    /// Their user owns the socket file.
    Owner,
    /// The socket's group is one of theirs, and its mode lets the group write.
    Group(u32),
    /// The socket's mode lets every user write.
    Others,
}

impl fmt::Display for Reach {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reach::Root => f.write_str("its workers run as root, which connects to any socket"),
            Reach::Anyone => {
                f.write_str("listen: is a TCP address, which every local user connects to")
            }
            Reach::Owner => f.write_str("its workers' user owns the listen socket"),
            Reach::Group(gid) => write!(
                f,
                "its workers are in group {gid}, which the listen socket's mode lets connect"
            ),
            Reach::Others => {
                f.write_str("the listen socket's mode lets every user connect (listen_mode ..6)")
            }
        }
    }
}

/// Whether `who` could connect to a socket with `access`, and why.
pub(crate) fn reach(access: ListenAccess, who: &Who) -> Option<Reach> {
    if who.uid == 0 {
        return Some(Reach::Root);
    }
    let ListenAccess::File { uid, gid, mode } = access else {
        return Some(Reach::Anyone);
    };
    // The kernel checks one class only: the owner's bits for the owner, the group's for a
    // member, the others' for the rest.
    if who.uid == uid {
        return (mode & 0o200 != 0).then_some(Reach::Owner);
    }
    if who.gid == gid || who.groups.contains(&gid) {
        return (mode & 0o020 != 0).then_some(Reach::Group(gid));
    }
    (mode & 0o002 != 0).then_some(Reach::Others)
}

impl Who {
    /// The workers' identity: the pool's `user:`, or plexer's own.
    pub(crate) fn of_pool(identity: Option<&Identity>) -> Self {
        match identity {
            Some(id) => Who {
                uid: id.uid.as_raw(),
                gid: id.gid.as_raw(),
                groups: id.groups.iter().map(|g| g.as_raw()).collect(),
            },
            None => Who {
                uid: Uid::effective().as_raw(),
                gid: Gid::effective().as_raw(),
                groups: nix::unistd::getgroups()
                    .unwrap_or_default()
                    .iter()
                    .map(|g| g.as_raw())
                    .collect(),
            },
        }
    }
}

impl ListenAccess {
    /// What the socket file at `path` allows; a file that cannot be read is taken as open to
    /// anyone, so that a doubt warns rather than hides.
    pub(crate) fn of_socket_file(path: &Path) -> Self {
        match std::fs::symlink_metadata(path) {
            Ok(meta) => ListenAccess::File {
                uid: meta.uid(),
                gid: meta.gid(),
                mode: meta.mode() & 0o7777,
            },
            Err(_) => ListenAccess::Anyone,
        }
    }

    /// What the config asks of the socket, before it is bound (`plexer serve --check`): its
    /// owner and group, plexer's own where not given, and its mode.
    pub(crate) fn from_config(config: &Config) -> Self {
        if let Address::Tcp(_) = config.listen {
            return ListenAccess::Anyone;
        }
        let uid = config
            .listen_owner
            .as_deref()
            .and_then(|owner| plexer_prefork::spawn::resolve_user(owner).ok())
            .unwrap_or_else(Uid::effective);
        let gid = config
            .listen_group
            .as_deref()
            .and_then(|group| plexer_prefork::spawn::resolve_group(group).ok())
            .unwrap_or_else(Gid::effective);
        let mode = config
            .listen_mode
            .as_deref()
            .and_then(crate::config::parse_mode)
            .unwrap_or(plexer_prefork::listen::DEFAULT_MODE);
        ListenAccess::File {
            uid: uid.as_raw(),
            gid: gid.as_raw(),
            mode,
        }
    }
}

/// What plexer does about an account whose workers could connect to `listen:`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Say so (at start, in `--check`, on the status page), and serve.
    Warn(String),
    /// Refuse the account: the route trusts a param its workers could set.
    Refuse(String),
}

/// How an account whose workers reach the listen socket (`reach`) is met under `config`.
/// Root pools were allowed explicitly (`user: root`, `--allow-root`) and are only warned about.
pub(crate) fn verdict(reach: Reach, config: &Config) -> Verdict {
    let trusted = match config.route.by {
        RouteBy::RemoteUser => Some("REMOTE_USER"),
        RouteBy::Host => Some("the host"),
        RouteBy::PathPrefix => Some("the path"),
        // The cookie is signed; the authorizer checks a session it issued.
        RouteBy::Cookie | RouteBy::Authorizer => None,
    };
    let fix = "give each account its own user (user: \"{account}\") and let only the web \
               server connect (listen_group: the web server's group, listen_mode: \"0660\")";
    let status = match config.status_listen {
        Some(_) => String::new(),
        None => "; it can also open the status page by sending REMOTE_ADDR (status_listen \
                 serves it on a socket of its own)"
            .into(),
    };
    match (trusted, reach, config.allow_shared_user) {
        (Some(param), reach, false) if reach != Reach::Root => Verdict::Refuse(format!(
            "{reach}, so its app could send any {param} and reach another account \
             (route.by: {}): {fix}, or write allow_shared_user: true",
            route_name(config.route.by)
        )),
        (_, reach, _) => Verdict::Warn(format!(
            "{reach}: its app could connect to plexer as the web server does{status}; {fix}"
        )),
    }
}

fn route_name(by: RouteBy) -> &'static str {
    match by {
        RouteBy::Cookie => "cookie",
        RouteBy::RemoteUser => "remote_user",
        RouteBy::Host => "host",
        RouteBy::PathPrefix => "path_prefix",
        RouteBy::Authorizer => "authorizer",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(uid: u32, gid: u32, groups: &[u32]) -> Who {
        Who {
            uid,
            gid,
            groups: groups.to_vec(),
        }
    }

    const SOCKET: ListenAccess = ListenAccess::File {
        uid: 100, // plexer
        gid: 33,  // www-data
        mode: 0o660,
    };

    #[test]
    fn a_pool_reaches_the_socket_by_owner_group_or_others_bits_as_the_kernel_checks() {
        assert_eq!(reach(SOCKET, &who(0, 0, &[])), Some(Reach::Root));
        assert_eq!(reach(SOCKET, &who(100, 100, &[])), Some(Reach::Owner));
        assert_eq!(reach(SOCKET, &who(33, 33, &[])), Some(Reach::Group(33)));
        assert_eq!(
            reach(SOCKET, &who(1001, 1001, &[33])),
            Some(Reach::Group(33)),
            "a supplementary group counts"
        );
        assert_eq!(reach(SOCKET, &who(1001, 1001, &[])), None, "its own user");
        let with_mode = |mode| ListenAccess::File {
            uid: 100,
            gid: 33,
            mode,
        };
        assert_eq!(
            reach(with_mode(0o666), &who(1001, 1001, &[])),
            Some(Reach::Others)
        );
        assert_eq!(reach(with_mode(0o600), &who(33, 33, &[])), None);
        // The owner's bits alone count for the owner, whatever the group's say.
        assert_eq!(reach(with_mode(0o060), &who(100, 33, &[])), None);
        assert_eq!(
            reach(ListenAccess::Anyone, &who(1001, 1001, &[])),
            Some(Reach::Anyone)
        );
    }

    fn config(extra: &str) -> Config {
        let text = format!(
            "listen: unix:/run/p.sock\naccounts_dir: /a\nruntime_dir: /r\nsecret_file: /s\n{extra}"
        );
        Config::parse(&text, Path::new("plexer.yaml")).unwrap()
    }

    #[test]
    fn a_route_that_trusts_a_param_refuses_a_pool_that_reaches_listen_unless_allowed() {
        for by in ["remote_user", "host", "path_prefix"] {
            let strict = config(&format!("route: {{ by: {by} }}"));
            for reach in [Reach::Anyone, Reach::Owner, Reach::Group(33), Reach::Others] {
                let verdict = verdict(reach, &strict);
                let Verdict::Refuse(why) = &verdict else {
                    panic!("{by}, {reach:?}: {verdict:?}");
                };
                assert!(why.contains("user: \"{account}\""), "names the fix: {why}");
                assert!(
                    why.contains("allow_shared_user"),
                    "names the way out: {why}"
                );
            }
            // Root was allowed explicitly (user: root, --allow-root): warned about only.
            assert!(matches!(verdict(Reach::Root, &strict), Verdict::Warn(_)));
            let allowed = config(&format!("route: {{ by: {by} }}\nallow_shared_user: true"));
            assert!(matches!(verdict(Reach::Others, &allowed), Verdict::Warn(_)));
        }
    }

    #[test]
    fn with_the_cookie_a_pool_that_reaches_listen_is_warned_about_and_told_of_the_status_page() {
        let cookie = config("");
        let Verdict::Warn(why) = verdict(Reach::Group(33), &cookie) else {
            panic!("the cookie cannot be forged: a warning");
        };
        assert!(why.contains("status_listen"), "{why}");
        let own_status = config("status_listen: unix:/run/status.sock");
        let Verdict::Warn(why) = verdict(Reach::Group(33), &own_status) else {
            panic!("a warning");
        };
        assert!(!why.contains("status page"), "{why}");
    }
}
