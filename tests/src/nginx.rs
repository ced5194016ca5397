//! Debian's nginx in front of plexer, as users deploy it: `fastcgi_keep_conn on` and an
//! upstream with `keepalive`, so one nginx connection to plexer carries requests of different
//! users one after another. It listens on 127.0.0.1 on a free port, with every file and temp
//! directory in the scratch directory, and stops with the guard.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::{Addr, Running, Scratch, tools, wait};

pub struct Nginx {
    pub port: u16,
    _process: Running,
}

impl Nginx {
    /// nginx passing every request to the FastCGI server at `upstream` (a unix socket).
    pub fn start(scratch: &Scratch, upstream: &Path) -> Self {
        let dir = scratch.join("nginx");
        for sub in ["body", "fastcgi", "proxy", "uwsgi", "scgi"] {
            std::fs::create_dir_all(dir.join(sub)).expect("create nginx's temp dirs");
        }
        let Addr::Tcp(addr) = Addr::free_tcp_port() else {
            unreachable!()
        };
        let port = addr.port();
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
    client_max_body_size 200m;
    upstream plexer {{
        server unix:{upstream};
        keepalive 8;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            include /etc/nginx/fastcgi_params;
            fastcgi_pass plexer;
            fastcgi_keep_conn on;
            fastcgi_read_timeout 30s;
        }}
    }}
}}
"#,
            upstream = upstream.display()
        );
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf).expect("write nginx.conf");
        let mut command =
            Command::new(tools::find("nginx").expect("nginx is installed (make test installs it)"));
        command.arg("-p").arg(&dir).arg("-c").arg(&conf_path);
        let process = Running::spawn("nginx", &mut command, &scratch.unique("nginx", "log"));
        wait::wait_until(
            "nginx listens",
            || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
            Duration::from_secs(10),
        );
        Self {
            port,
            _process: process,
        }
    }
}
