//! Debian's lighttpd in front of plexer, as users deploy it: the shipped snippet
//! `examples/lighttpd/plexer.conf` (mod_fastcgi, `fastcgi.server` on plexer's socket with
//! `check-local` disabled), with its socket path replaced. The main config around it stands in
//! for Debian's /etc/lighttpd/lighttpd.conf: lighttpd runs in the foreground (`-D`) on
//! 127.0.0.1 on a free port, keeps its document root, logs and upload temp files in the scratch
//! directory, and stops with the guard.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::{Addr, Running, Scratch, examples, tools, wait};

/// The socket line of examples/lighttpd/plexer.conf, which a deployment changes.
const SHIPPED_SOCKET: &str = r#""socket" => "/run/plexer/plexer.sock","#;

pub struct Lighttpd {
    pub port: u16,
    /// `server.upload-dirs`: where lighttpd buffers request bodies before it passes them on.
    pub upload_dir: PathBuf,
    _process: Running,
}

impl Lighttpd {
    /// lighttpd passing every request to the FastCGI server at `upstream` (a unix socket).
    pub fn start(scratch: &Scratch, upstream: &Path) -> Self {
        let dir = scratch.join("lighttpd");
        let docroot = dir.join("htdocs");
        let upload_dir = dir.join("uploads");
        for sub in [&docroot, &upload_dir] {
            std::fs::create_dir_all(sub).expect("create lighttpd's directories");
        }
        let Addr::Tcp(addr) = Addr::free_tcp_port() else {
            unreachable!()
        };
        let port = addr.port();

        let snippet = examples::render(
            "lighttpd/plexer.conf",
            &[(
                SHIPPED_SOCKET,
                &format!(r#""socket" => "{}","#, upstream.display()),
            )],
        );
        let snippet_path = dir.join("15-plexer.conf");
        std::fs::write(&snippet_path, snippet).expect("write the lighttpd snippet");

        // lighttpd keeps running as root when no server.username is set, which is what a test
        // needs to reach the scratch directory.
        let d = dir.display();
        let conf = format!(
            r#"server.document-root = "{docroot}"
server.bind = "127.0.0.1"
server.port = {port}
server.errorlog = "{d}/error.log"
server.upload-dirs = ( "{uploads}" )
include "{snippet}"
"#,
            docroot = docroot.display(),
            uploads = upload_dir.display(),
            snippet = snippet_path.display()
        );
        let conf_path = dir.join("lighttpd.conf");
        std::fs::write(&conf_path, conf).expect("write lighttpd.conf");

        let mut command = Command::new(tools::require("lighttpd", "lighttpd"));
        command.arg("-D").arg("-f").arg(&conf_path);
        let mut process =
            Running::spawn("lighttpd", &mut command, &scratch.unique("lighttpd", "log"));
        wait::wait_until(
            "lighttpd listens",
            || {
                process.assert_running();
                std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            },
            Duration::from_secs(10),
        );
        Self {
            port,
            upload_dir,
            _process: process,
        }
    }
}
