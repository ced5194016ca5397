//! Debian's nginx as the front of the front benchmark: one worker process, listening on
//! 127.0.0.1 on a free port, every file under a temporary directory, passing every request to
//! one FastCGI unix socket, with or without upstream keepalive.
//!
//! With keepalive, nginx keeps up to 8 idle connections to the FastCGI server per worker
//! (`upstream { keepalive 8; }`, `fastcgi_keep_conn on`), as deployments behind php-fpm usually
//! do; without, it opens a connection per request and the server closes it after the answer.
//! Clients keep their HTTP/1.1 connections to nginx open either way, for as many requests as
//! they like (`keepalive_requests`), so that reconnects do not blur the figures.

use std::fs;
use std::io;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::guard::Server;

/// Idle upstream connections nginx keeps, with keepalive on.
pub const KEEPALIVE: usize = 8;

/// A running nginx; stopped on drop.
#[derive(Debug)]
pub struct Nginx {
    pub server: Server,
    pub port: u16,
}

/// The nginx a benchmark runs: `given` (its `--nginx`), else [`find`]'s, else why there is none
/// and how to install it.
pub fn given_or_found(given: Option<PathBuf>) -> Result<PathBuf, &'static str> {
    given.or_else(find).ok_or(
        "nginx is not installed (none on the PATH or in /usr/sbin): `apt-get install nginx-light`",
    )
}

/// The nginx binary: on the PATH, else in /usr/sbin.
pub fn find() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join("nginx"))
        .find(|p| p.is_file())
}

impl Nginx {
    /// Starts nginx under `dir` (created) in front of the FastCGI server on `upstream`;
    /// `script` is the `SCRIPT_FILENAME` it sends (PHP needs one; hello ignores it).
    pub fn start(
        program: &Path,
        dir: &Path,
        upstream: &Path,
        script: &Path,
        keepalive: bool,
    ) -> io::Result<Self> {
        for sub in ["body", "fastcgi", "proxy", "uwsgi", "scgi"] {
            fs::create_dir_all(dir.join(sub))?;
        }
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
            .local_addr()?
            .port();
        let conf = dir.join("nginx.conf");
        fs::write(&conf, config(dir, port, upstream, script, keepalive))?;
        let mut command = Command::new(program);
        command.arg("-p").arg(dir).arg("-c").arg(&conf);
        let mut server = Server::spawn("nginx", &mut command, &dir.join("nginx.out"))?;
        server.wait_ready("listening", || {
            TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok()
        })?;
        Ok(Self { server, port })
    }
}

fn config(dir: &Path, port: u16, upstream: &Path, script: &Path, keepalive: bool) -> String {
    // As root the workers would run as nobody, who cannot reach the temporary directory.
    let user = if nix::unistd::geteuid().is_root() {
        "user root;"
    } else {
        ""
    };
    let (pool, keep_conn) = if keepalive {
        (
            format!("keepalive {KEEPALIVE};\n        keepalive_requests 1000000;"),
            "on",
        )
    } else {
        (String::new(), "off")
    };
    let d = dir.display();
    format!(
        r#"{user}
daemon off;
worker_processes 1;
error_log {d}/error.log warn;
pid {d}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    fastcgi_temp_path {d}/fastcgi;
    proxy_temp_path {d}/proxy;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    keepalive_requests 1000000;
    # The bodies benchmark sends 1 GiB; nginx's default refuses more than 1 MiB.
    client_max_body_size 0;
    upstream backend {{
        server unix:{upstream};
        {pool}
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            include /etc/nginx/fastcgi_params;
            fastcgi_param SCRIPT_FILENAME {script};
            fastcgi_pass backend;
            fastcgi_keep_conn {keep_conn};
            fastcgi_read_timeout 30s;
        }}
    }}
}}
"#,
        upstream = upstream.display(),
        script = script.display(),
    )
}
