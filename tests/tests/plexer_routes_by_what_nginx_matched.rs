//! plexer behind a real nginx, routing by `path_prefix`, `host` and `remote_user`: a request
//! reaches the account of the path, the server block or the user nginx itself settled on, so
//! what nginx enforces for one account (a location's rule, a server block, a password) holds
//! for every spelling of a request; a param nginx was told to send twice gets a 400 and reaches
//! no app; and `$remote_user` names an account only behind `auth_basic`.

use plexer_tests::http::{self, HttpResponse};
use plexer_tests::{HelloAnswer, Nginx, PlexerServe, Scratch, ServeSetup, examples};

/// nginx in front of plexer, both in one scratch directory.
struct Front {
    nginx: Nginx,
    plexer: PlexerServe,
    /// Last: fields drop in order, so the servers stop before their directory goes.
    _scratch: Scratch,
}

impl Front {
    /// plexer with the default `hello` accounts (login, bob, sue) and `config_extra`, behind
    /// nginx on the site file `site` (see [`Nginx::start_with_site`]).
    fn start(config_extra: &str, site: &str) -> Self {
        Self::start_with(
            |scratch| {
                let setup = ServeSetup {
                    config_extra,
                    ..ServeSetup::default()
                };
                PlexerServe::start(scratch, setup)
            },
            |_| site.to_owned(),
        )
    }

    fn start_with(
        plexer: impl FnOnce(&Scratch) -> PlexerServe,
        site: impl FnOnce(&Scratch) -> String,
    ) -> Self {
        let scratch = Scratch::new();
        let plexer = plexer(&scratch);
        let nginx = Nginx::start_with_site(&scratch, &plexer.socket, &site(&scratch));
        Self {
            nginx,
            plexer,
            _scratch: scratch,
        }
    }

    fn get(&self, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
        http::get(self.nginx.port, path, headers)
    }

    /// A GET of `target` with `Host: host`, written as is (no other `Host` line).
    fn get_host(&self, target: &str, host: &str) -> HttpResponse {
        http::raw(
            self.nginx.port,
            &format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
        )
    }

    /// Requests plexer routed to `account` so far, served or failed, by its status page.
    fn routed_to(&self, account: &str) -> u64 {
        let status = self.plexer.status_json();
        let accounts = status["accounts"]
            .as_array()
            .expect("accounts in the status");
        let entry = accounts
            .iter()
            .find(|entry| entry["account"] == account)
            .unwrap_or_else(|| panic!("no account {account} in {status}"));
        let count = |key: &str| entry[key].as_u64().expect("a request count");
        count("requests") + count("errors")
    }
}

/// The account whose app answered (hello's `account:` line), or `-` when no app did.
fn account_of(response: &HttpResponse) -> String {
    HelloAnswer::parse(&response.body)
        .fields
        .get("account")
        .cloned()
        .unwrap_or_else(|| "-".into())
}

/// A site file with `servers` after the shipped upstream block.
fn site_with(servers: &str) -> String {
    format!("upstream plexer {{\n    server unix:/run/plexer/plexer.sock;\n}}\n{servers}")
}

/// RFC 4648 base64, with padding, for `Authorization: Basic`.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", base64(format!("{user}:{password}").as_bytes()))
}

/// `route.by: path_prefix` behind nginx: the default server passes nginx's decoded, normalised
/// path (`DOCUMENT_URI`, from fastcgi_params) and keeps `/bob/` closed; `raw.example` passes
/// only the raw `REQUEST_URI`, which plexer decodes itself.
const PATH_SITE: &str = r#"
server {
    listen 80;
    server_name _;
    location /bob/ {
        add_header X-Nginx-Location bob always;
        deny all;
    }
    location / {
        include fastcgi_params;
        fastcgi_pass plexer;
    }
}
server {
    listen 80;
    server_name raw.example;
    location / {
        fastcgi_param REQUEST_METHOD $request_method;
        fastcgi_param QUERY_STRING $query_string;
        fastcgi_param REQUEST_URI $request_uri;
        fastcgi_param REMOTE_ADDR $remote_addr;
        fastcgi_pass plexer;
    }
}
"#;

/// Spellings of bob's part of the site from under sue's: escaped dots, escaped slashes, both.
const INTO_BOB: [&str; 7] = [
    "/sue/%2e%2e/bob/x",
    "/sue/%2E%2e/bob/x",
    "/sue/.%2e/bob/x",
    "/sue/..%2fbob/x",
    "/sue/%2e%2e%2fbob/x",
    "/sue%2f%2e%2e%2fbob/x",
    "/%62ob/x",
];

#[test]
fn path_prefix_routes_by_the_path_nginx_resolved_so_nginx_rules_for_an_account_hold_for_any_spelling()
 {
    let front = Front::start(
        "route: { by: path_prefix }\nlogin: { account: login }\n",
        &site_with(PATH_SITE),
    );
    // nginx decodes and resolves each of these to /bob/x, matches `location /bob/`, and
    // refuses it there: the same path plexer would route by, so no spelling slips past.
    for path in INTO_BOB {
        let response = front.get(path, &[]);
        assert_eq!(response.status, 403, "{path}: {}", response.text());
        assert_eq!(response.header("X-Nginx-Location"), Some("bob"), "{path}");
    }
    // An escaped slash inside one segment is decoded by nginx too: /sue/bob/x is sue's; a
    // backslash is no separator; an escaped `.` segment is resolved away.
    for path in ["/sue%2fbob/x", "/sue/..%5cbob/x", "/sue/%2e/x"] {
        let response = front.get(path, &[]);
        assert_eq!(response.status, 200, "{path}: {}", response.text());
        assert_eq!(account_of(&response), "sue", "{path}");
    }
    // Above the root: nginx's own 400.
    assert_eq!(front.get("/sue/%2e%2e/%2e%2e/bob/x", &[]).status, 400);

    // With only the raw REQUEST_URI, plexer decodes each segment once and routes none of these
    // anywhere but to the login app: a segment that decodes to `.`, `..` or holds a slash
    // could mean another path than the one nginx used.
    for path in INTO_BOB.iter().filter(|path| **path != "/%62ob/x").chain(&[
        "/sue%2fbob/x",
        "/sue/..%5cbob/x",
        "/sue/%2e/x",
        "/sue/../bob/x",
    ]) {
        let response = front.get_host(path, "raw.example");
        assert_eq!(response.status, 200, "{path}: {}", response.text());
        assert_eq!(account_of(&response), "login", "raw {path}");
    }
    assert_eq!(front.routed_to("bob"), 0, "bob's app saw none of them");

    // The same front does route to bob, by an escape that decodes to a plain segment too.
    for path in ["/bob/x", "/%62ob/x"] {
        assert_eq!(
            account_of(&front.get_host(path, "raw.example")),
            "bob",
            "raw {path}"
        );
    }
    assert_eq!(account_of(&front.get_host("/sue/x", "raw.example")), "sue");
}

/// `route.by: host` behind nginx: a server block per account, and a catch-all that passes
/// nginx's `$host` (the request line's host first) as `HTTP_HOST`.
const HOST_SITE: &str = r#"
server {
    listen 80;
    server_name _;
    add_header X-Server-Block catch-all always;
    location / {
        include fastcgi_params;
        fastcgi_param HTTP_HOST $host;
        fastcgi_pass plexer;
    }
}
server {
    listen 80;
    server_name bob.example;
    add_header X-Server-Block bob always;
    location / {
        include fastcgi_params;
        fastcgi_pass plexer;
    }
}
server {
    listen 80;
    server_name sue.example;
    add_header X-Server-Block sue always;
    location / {
        include fastcgi_params;
        fastcgi_pass plexer;
    }
}
"#;

#[test]
fn host_routing_follows_the_server_block_nginx_chose_by_an_absolute_form_request_line() {
    let front = Front::start(
        "route: { by: host }\nlogin: { account: login }\n",
        &site_with(HOST_SITE),
    );
    for (target, host, block) in [
        // nginx picks the server block by the request line's host, whatever Host says.
        ("http://bob.example/x", "sue.example", "bob"),
        ("http://sue.example/x", "bob.example", "sue"),
        ("/x", "bob.example", "bob"),
        ("/x", "sue.example", "sue"),
    ] {
        let response = front.get_host(target, host);
        assert_eq!(response.status, 200, "{target} {host}: {}", response.text());
        assert_eq!(response.header("X-Server-Block"), Some(block));
        assert_eq!(
            account_of(&response),
            block,
            "GET {target} with Host: {host}"
        );
    }
    // A host no block names lands in the catch-all, which routes by `$host`: the request
    // line's carol.example, an account of nobody, not the Host header's bob.
    let response = front.get_host("http://carol.example/x", "bob.example");
    assert_eq!(response.header("X-Server-Block"), Some("catch-all"));
    assert_eq!(account_of(&response), "login");
}

#[test]
fn a_param_nginx_sends_twice_gets_a_400_and_reaches_no_app() {
    // Each `fastcgi_param` after the include sends a second copy when its query arg is set;
    // the last copy is the one an app (and plexer's lookups) would take.
    let site = examples::render(
        "nginx/plexer.conf",
        &[(
            "fastcgi_pass plexer;",
            "fastcgi_param REMOTE_USER $arg_u if_not_empty;\n        \
             fastcgi_param REMOTE_ADDR $arg_a if_not_empty;\n        \
             fastcgi_param HTTP_COOKIE $http_cookie;\n        \
             fastcgi_param HTTP_COOKIE $arg_c if_not_empty;\n        \
             fastcgi_pass plexer;",
        )],
    );
    let front = Front::start(
        "route: { by: remote_user }\nlogin: { account: login }\n",
        &site,
    );
    let response = front.get("/x", &[]);
    assert_eq!(account_of(&response), "login", "{}", response.text());

    let bob = front.plexer.cookie("bob");
    for (query, param) in [
        ("u=bob", "REMOTE_USER"),
        ("a=127.0.0.1", "REMOTE_ADDR"),
        ("c=x", "HTTP_COOKIE"),
    ] {
        for path in [
            format!("/x?{query}"),
            format!("/plexer-status?json&{query}"),
        ] {
            let response = front.get(&path, &[("Cookie", &bob)]);
            assert_eq!(response.status, 400, "{path}: {}", response.text());
            assert_eq!(
                response.text().trim(),
                format!("400 Bad Request: the request carries {param} twice"),
                "{path}"
            );
        }
    }
    assert_eq!(
        front.routed_to("bob"),
        0,
        "the second REMOTE_USER never won"
    );
    assert_eq!(
        front.routed_to("login"),
        1,
        "only the first request reached an app"
    );
}

#[test]
fn without_auth_basic_any_authorization_header_names_a_user_and_so_an_account() {
    // The shipped cookie site, routed by remote_user instead: nothing checks the password.
    let front = Front::start(
        "route: { by: remote_user }\nlogin: { account: login }\n",
        &examples::read("nginx/plexer.conf"),
    );
    let response = front.get("/x", &[("Authorization", &basic("bob", "anything"))]);
    assert_eq!(response.status, 200, "{}", response.text());
    let answer = HelloAnswer::parse(&response.body);
    assert_eq!((answer.get("account"), answer.get("user")), ("bob", "bob"));
}

#[test]
fn behind_auth_basic_a_wrong_password_gets_nginxs_401_and_a_right_one_its_account() {
    let front = Front::start_with(
        |scratch| {
            let config = examples::render(
                "remote_user/plexer.yaml",
                &[
                    (
                        "listen: unix:/run/plexer/plexer.sock",
                        &format!("listen: unix:{}", PlexerServe::socket_in(scratch).display()),
                    ),
                    ("/etc/plexer/accounts.d", "accounts.d"),
                    ("runtime_dir: /run/plexer", "runtime_dir: run"),
                    ("/etc/plexer/secret", "secret"),
                    (
                        "/usr/bin/php-cgi",
                        &plexer_tests::build::hello().display().to_string(),
                    ),
                ],
            );
            let accounts = [("bob", "users: [bob]"), ("sue", "users: [sue]")];
            PlexerServe::start_with_config(scratch, &config, &accounts)
        },
        |scratch| {
            let passwords = scratch.write(
                "plexer.htpasswd",
                "bob:{PLAIN}bob-password\nsue:{PLAIN}sue-password\n",
            );
            examples::render(
                "remote_user/nginx.conf",
                &[(
                    "/etc/nginx/plexer.htpasswd",
                    &passwords.display().to_string(),
                )],
            )
        },
    );
    let forged = [
        vec![],
        vec![("Authorization", basic("bob", "wrong"))],
        vec![("Authorization", basic("bob", ""))],
        vec![("Authorization", basic("bob", "sue-password"))],
        vec![("Authorization", "Basic bob".to_owned())],
    ];
    for headers in &forged {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let response = front.get("/x", &headers);
        assert_eq!(response.status, 401, "{headers:?}: {}", response.text());
        assert!(response.header("WWW-Authenticate").is_some(), "{headers:?}");
    }
    assert_eq!(front.routed_to("bob"), 0, "no forged header reached bob");

    for (user, password) in [("bob", "bob-password"), ("sue", "sue-password")] {
        let response = front.get("/x", &[("Authorization", &basic(user, password))]);
        assert_eq!(response.status, 200, "{user}: {}", response.text());
        let answer = HelloAnswer::parse(&response.body);
        assert_eq!((answer.get("account"), answer.get("user")), (user, user));
    }
}
