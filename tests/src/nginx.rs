//! Debian's nginx in front of plexer, as users deploy it: the shipped site file
//! `examples/nginx/plexer.conf` (`fastcgi_keep_conn on` and an upstream with `keepalive`, so one
//! nginx connection to plexer carries requests of different users one after another), with its
//! `listen` line and socket path replaced. The main config around it stands in for Debian's
//! /etc/nginx/nginx.conf: nginx listens on 127.0.0.1 on a free port, keeps every file and
//! temp directory in the scratch directory, and stops with the guard. A test that needs server
//! blocks of its own (several hosts, a closed location, `auth_basic`) gives the site file's
//! text instead ([`Nginx::start_with_site`]), and one with upstreams of its own (the cluster's
//! nodes) gives it whole ([`Nginx::start_with_own_site`]).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::{Addr, Running, Scratch, examples, tools, wait};

/// The strings of examples/nginx/plexer.conf that a deployment changes.
const SHIPPED_SOCKET: &str = "server unix:/run/plexer/plexer.sock;";
const SHIPPED_LISTEN: &str = "listen 80;";

pub struct Nginx {
    pub port: u16,
    _process: Running,
}

impl Nginx {
    /// nginx passing every request to the FastCGI server at `upstream` (a unix socket).
    pub fn start(scratch: &Scratch, upstream: &Path) -> Self {
        Self::start_with_site(scratch, upstream, &examples::read("nginx/plexer.conf"))
    }

    /// nginx on the site file text `site` instead of the shipped one: the shipped file changed
    /// the way a deployment would, or server blocks of a test's own. Every `listen 80;` and the
    /// socket line `server unix:/run/plexer/plexer.sock;` are replaced as in the shipped one,
    /// and must occur.
    pub fn start_with_site(scratch: &Scratch, upstream: &Path, site: &str) -> Self {
        assert!(
            site.contains(SHIPPED_SOCKET),
            "the site file has no {SHIPPED_SOCKET:?}"
        );
        let site = site.replace(
            SHIPPED_SOCKET,
            &format!("server unix:{};", upstream.display()),
        );
        Self::start_with_own_site(scratch, &site)
    }

    /// nginx on the site file text `site`, whose upstreams are the test's own (TCP nodes, say):
    /// only every `listen 80;` is replaced, and must occur.
    pub fn start_with_own_site(scratch: &Scratch, site: &str) -> Self {
        let dir = scratch.join("nginx");
        for sub in ["body", "fastcgi", "proxy", "uwsgi", "scgi"] {
            std::fs::create_dir_all(dir.join(sub)).expect("create nginx's temp dirs");
        }
        let Addr::Tcp(addr) = Addr::free_tcp_port() else {
            unreachable!()
        };
        let port = addr.port();

        // The site file includes `fastcgi_params` relative to the main config's directory, as
        // it does from /etc/nginx.
        std::fs::copy("/etc/nginx/fastcgi_params", dir.join("fastcgi_params"))
            .expect("copy /etc/nginx/fastcgi_params (package nginx-common)");
        assert!(
            site.contains(SHIPPED_LISTEN),
            "the site file has no {SHIPPED_LISTEN:?}"
        );
        let site = site.replace(SHIPPED_LISTEN, &format!("listen 127.0.0.1:{port};"));
        let site_path = dir.join("plexer-site.conf");
        std::fs::write(&site_path, site).expect("write the site file");

        // As root the workers would run as nobody, who cannot reach the scratch directory.
        let user = if nix::unistd::Uid::effective().is_root() {
            "user root;"
        } else {
            ""
        };
        let d = dir.display();
        let conf = format!(
            r#"{user}
daemon off;
worker_processes 1;
error_log {d}/error.log info;
pid {d}/nginx.pid;
events {{ worker_connections 512; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/body;
    fastcgi_temp_path {d}/fastcgi;
    proxy_temp_path {d}/proxy;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    include {site};
}}
"#,
            site = site_path.display()
        );
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf).expect("write nginx.conf");
        let mut command = Command::new(tools::require("nginx", "nginx-light"));
        command.arg("-p").arg(&dir).arg("-c").arg(&conf_path);
        let mut process = Running::spawn("nginx", &mut command, &scratch.unique("nginx", "log"));
        wait::wait_until(
            "nginx listens",
            || {
                process.assert_running();
                std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            },
            Duration::from_secs(10),
        );
        Self {
            port,
            _process: process,
        }
    }
}
