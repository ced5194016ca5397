//! The generic relays plexer's hop is measured beside (issue 15): a process that passes bytes
//! from one unix socket to another and parses nothing, between nginx and the workers' shared
//! socket. nginx's stream module (Debian's `libnginx-mod-stream`) and HAProxy in tcp mode, each
//! with one process and one thread, as plexer serve runs with one.

use std::fs;
use std::io;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::guard::Server;

/// Where Debian puts the stream module.
const STREAM_MODULE: &str = "/usr/lib/nginx/modules/ngx_stream_module.so";

/// A running relay: the socket it listens on, in front of another.
#[derive(Debug)]
pub struct Relay {
    pub server: Server,
    pub socket: PathBuf,
}

/// nginx's stream module: `listen unix:…; proxy_pass unix:…;`.
pub fn nginx_stream(nginx: &Path, dir: &Path, upstream: &Path) -> io::Result<Relay> {
    if !Path::new(STREAM_MODULE).is_file() {
        return Err(io::Error::other(format!(
            "{STREAM_MODULE} is missing: `apt-get install libnginx-mod-stream`"
        )));
    }
    fs::create_dir_all(dir)?;
    let socket = dir.join("relay.sock");
    let user = if nix::unistd::geteuid().is_root() {
        "user root;"
    } else {
        ""
    };
    let d = dir.display();
    let conf = format!(
        "load_module {STREAM_MODULE};\n{user}\ndaemon off;\nworker_processes 1;\n\
         error_log {d}/error.log warn;\npid {d}/nginx.pid;\nevents {{ worker_connections 4096; }}\n\
         stream {{\n    server {{\n        listen unix:{socket};\n        proxy_pass unix:{up};\n    \
         }}\n}}\n",
        socket = socket.display(),
        up = upstream.display(),
    );
    fs::write(dir.join("nginx.conf"), conf)?;
    let mut command = Command::new(nginx);
    command
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(dir.join("nginx.conf"));
    start("nginx stream relay", command, dir, socket)
}

/// HAProxy, `mode tcp`, one thread.
pub fn haproxy(dir: &Path, upstream: &Path) -> io::Result<Relay> {
    let program = ["/usr/sbin/haproxy", "/usr/local/sbin/haproxy"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
        .ok_or_else(|| io::Error::other("haproxy is not installed: `apt-get install haproxy`"))?;
    fs::create_dir_all(dir)?;
    let socket = dir.join("relay.sock");
    let conf = format!(
        "global\n    nbthread 1\n    maxconn 4096\ndefaults\n    mode tcp\n    timeout connect 5s\n    \
         timeout client 60s\n    timeout server 60s\nfrontend relay\n    bind unix@{socket}\n    \
         default_backend workers\nbackend workers\n    server workers unix@{up}\n",
        socket = socket.display(),
        up = upstream.display(),
    );
    fs::write(dir.join("haproxy.cfg"), conf)?;
    let mut command = Command::new(program);
    command.arg("-db").arg("-f").arg(dir.join("haproxy.cfg"));
    start("haproxy", command, dir, socket)
}

fn start(name: &str, mut command: Command, dir: &Path, socket: PathBuf) -> io::Result<Relay> {
    let log = dir.join(format!("{}.log", name.replace(' ', "-")));
    let mut server = Server::spawn(name, &mut command, &log)?;
    server.wait_ready("listening", || UnixStream::connect(&socket).is_ok())?;
    Ok(Relay { server, socket })
}
