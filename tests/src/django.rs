//! The Django example (examples/django) as a test runs it: the virtualenv `make deps` creates,
//! the example's databases and users made by its own `setup_example.py` in the scratch
//! directory, and `plexer serve` on the example's own plexer.yaml and account files, with only
//! the socket path and the install paths replaced.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::http::HttpResponse;
use crate::{Browser, PlexerServe, Scratch, examples, run};

/// The password `setup_example.py` gives the example's users (alice of acme, grace of globex).
pub const PASSWORD: &str = "correct horse battery staple";

/// What a test holds while the Django site runs.
pub struct DjangoSite {
    pub plexer: PlexerServe,
    /// NOTES_DATA_DIR: the SQLite databases, one per account.
    pub data_dir: PathBuf,
}

/// The Python of the virtualenv with the example's requirements: `$PLEXER_VENV/bin/python`, or
/// `.venv/bin/python` at the repository's root, where `make deps` makes it. Panics saying how to
/// make it when it is missing or lacks Django or flup.
pub fn venv_python() -> PathBuf {
    let venv = std::env::var_os("PLEXER_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| examples::repo_root().join(".venv"));
    let python = venv.join("bin/python");
    let ready = python.is_file()
        && Command::new(&python)
            .args(["-c", "import django, flup.server.fcgi_single"])
            .status()
            .is_ok_and(|status| status.success());
    assert!(
        ready,
        "{} with Django and flup is missing: `make deps` makes it (python3 -m venv .venv, then \
         .venv/bin/pip install -r examples/django/requirements.txt)",
        python.display()
    );
    python
}

impl DjangoSite {
    /// Creates the example's databases and users under the scratch directory, then starts
    /// plexer on the example's config with the accounts login, acme and globex.
    pub fn start(scratch: &Scratch) -> Self {
        Self::start_on(
            scratch,
            "plexer.yaml",
            "accounts.d",
            &["login", "acme", "globex"],
        )
    }

    /// The same site with the authorizer choosing the tenant (authorizer.yaml): the accounts
    /// auth, acme and globex, and Django's own sessions.
    pub fn start_with_authorizer(scratch: &Scratch) -> Self {
        Self::start_on(
            scratch,
            "authorizer.yaml",
            "authorizer.d",
            &["auth", "acme", "globex"],
        )
    }

    fn start_on(scratch: &Scratch, config_file: &str, accounts_dir: &str, names: &[&str]) -> Self {
        let python = venv_python();
        let data_dir = scratch.join("notes-data");
        let mut setup = Command::new(&python);
        setup
            .arg(examples::path("django/setup_example.py"))
            .arg(&data_dir)
            .env("NOTES_PASSWORD", PASSWORD);
        // Three migrations and two password hashes: seconds, not milliseconds.
        run(&mut setup, b"", Duration::from_secs(120)).assert_success();

        let project = examples::path("django");
        let config = examples::render(
            &format!("django/{config_file}"),
            &[
                (
                    "unix:/run/plexer/plexer.sock",
                    &format!("unix:{}", PlexerServe::socket_in(scratch).display()),
                ),
                ("/srv/notes/.venv/bin/python", &display(&python)),
                ("/srv/notes", &display(&project)),
                ("/var/lib/notes", &display(&data_dir)),
                // The test's accounts go where ServeFiles writes them.
                (
                    &format!("accounts_dir: {accounts_dir}"),
                    "accounts_dir: accounts.d",
                ),
            ],
        );
        let accounts: Vec<(&str, String)> = names
            .iter()
            .map(|name| {
                let file = format!("django/{accounts_dir}/{name}.yaml");
                (*name, examples::read(&file))
            })
            .collect();
        let accounts: Vec<(&str, &str)> = accounts
            .iter()
            .map(|(name, text)| (*name, text.as_str()))
            .collect();
        let plexer = PlexerServe::start_with_config(scratch, &config, &accounts);
        Self { plexer, data_dir }
    }

    /// The texts of the notes in `database` (a file name under the data directory), read with
    /// Debian's sqlite3, independently of Django.
    pub fn notes_in(&self, database: &str) -> Vec<String> {
        let file = self.data_dir.join(database);
        assert!(file.is_file(), "{} is missing", file.display());
        let mut command = Command::new(crate::tools::require("sqlite3", "sqlite3"));
        command
            .arg("-readonly")
            .arg(&file)
            .arg("SELECT text FROM notes_note ORDER BY id");
        let finished = run(&mut command, b"", Duration::from_secs(10));
        finished.assert_success();
        finished.stdout_text().lines().map(str::to_owned).collect()
    }
}

/// The CSRF token of the first form on a page (Django's `{% csrf_token %}`).
pub fn csrf_token(page: &HttpResponse) -> String {
    let text = page.text();
    let marker = "name=\"csrfmiddlewaretoken\" value=\"";
    let start = text
        .find(marker)
        .unwrap_or_else(|| panic!("no CSRF token in the page:\n{text}"))
        + marker.len();
    let end = start + text[start..].find('"').expect("the token's closing quote");
    text[start..end].to_owned()
}

/// The tenant whose notes a page lists.
pub fn account_shown(page: &HttpResponse) -> String {
    let text = page.text();
    let start = text
        .find("<span id=\"account\">")
        .unwrap_or_else(|| panic!("not a notes page ({}):\n{text}", page.status))
        + "<span id=\"account\">".len();
    let end = start + text[start..].find('<').expect("the span's end");
    text[start..end].to_owned()
}

/// Opens the sign-in page (any path without a routing cookie shows it) and signs in.
pub fn sign_in(browser: &mut Browser, username: &str, password: &str) -> HttpResponse {
    let page = browser.get("/anywhere");
    assert_eq!(page.status, 200, "{}", page.text());
    assert!(page.text().contains("<h1>Sign in</h1>"), "{}", page.text());
    let token = csrf_token(&page);
    browser.post_form(
        "/login/",
        &[
            ("csrfmiddlewaretoken", &token),
            ("username", username),
            ("password", password),
        ],
    )
}

/// Signs `username` in with the example's password, and checks that it worked as a sign-in
/// must: a redirect, the app's `X-Plexer-User` taken out by plexer, and plexer's routing cookie
/// for `tenant` in the browser. The redirect is returned for more checks.
pub fn sign_in_to_tenant(browser: &mut Browser, username: &str, tenant: &str) -> HttpResponse {
    let signed_in = sign_in(browser, username, PASSWORD);
    assert_eq!(signed_in.status, 302, "{}", signed_in.text());
    assert_eq!(signed_in.header("X-Plexer-User"), None, "plexer removes it");
    let cookie = browser
        .cookie("plexer_account")
        .expect("plexer's routing cookie");
    assert!(cookie.starts_with(&format!("{tenant}.")), "{cookie}");
    signed_in
}

fn display(path: &Path) -> String {
    path.display().to_string()
}
