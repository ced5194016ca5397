"""Settings of the notes site, read from the environment that plexer gives each account.

One code base serves every account; the account file's `env:` (merged over the config's
`pool.env:`) says what differs:

- DATABASE_NAME: the account's SQLite database, a file name under NOTES_DATA_DIR (or an
  absolute path). A tenant's notes, or for the login account the users database.
- NOTES_ROLE: "login" for the login account (the sign-in page), "tenant" (the default) for
  every other account (its notes), "auth" for the account that signs users in with Django's
  own sessions and answers plexer in FastCGI's AUTHORIZER role (authorizer.yaml).
- NOTES_DATA_DIR: the directory of the databases, and of the secret key that
  `manage.py setup_example` writes.
- DJANGO_ALLOWED_HOSTS: the host names the site answers to, comma-separated.
- DJANGO_SECRET_KEY: optional; NOTES_DATA_DIR/secret_key otherwise.
- PLEXER_COOKIE: the name of plexer's routing cookie (its route.cookie), which a tenant's
  sign-out clears; plexer_account by default.

plexer starts workers with a clean environment (pool `clear_env`, on by default, as php-fpm
does), so nothing else leaks in.
"""

import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured


def _env(name, default=None):
    value = os.environ.get(name, default)
    if value is None or value == "":
        raise ImproperlyConfigured(
            f"{name} is not set: plexer sets it from the account file's env: "
            f"(see examples/django/README.md); set it in the environment to run manage.py"
        )
    return value


def _data_dir():
    return Path(_env("NOTES_DATA_DIR"))


def _database_path():
    name = Path(_env("DATABASE_NAME"))
    return name if name.is_absolute() else _data_dir() / name


def _secret_key():
    if os.environ.get("DJANGO_SECRET_KEY"):
        return os.environ["DJANGO_SECRET_KEY"]
    key_file = _data_dir() / "secret_key"
    try:
        return key_file.read_text().strip()
    except FileNotFoundError:
        raise ImproperlyConfigured(
            f"{key_file} is missing: run `manage.py setup_example` (it writes one), "
            f"or set DJANGO_SECRET_KEY"
        ) from None


NOTES_ROLE = os.environ.get("NOTES_ROLE", "tenant")
if NOTES_ROLE not in ("login", "tenant", "auth"):
    raise ImproperlyConfigured(f"NOTES_ROLE is {NOTES_ROLE!r}: use login, tenant or auth")

PLEXER_COOKIE = os.environ.get("PLEXER_COOKIE", "plexer_account")

SECRET_KEY = _secret_key()
DEBUG = False
ALLOWED_HOSTS = [h.strip() for h in _env("DJANGO_ALLOWED_HOSTS", "localhost").split(",")]

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "notes",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
if NOTES_ROLE == "auth":
    # Django's own sign-in: sessions in the users database, and the authorizer that reads them
    # (notes/authorizer.py), which must come after both.
    MIDDLEWARE[1:1] = [
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "notes.authorizer.AuthorizerMiddleware",
    ]
    LOGIN_URL = "/login/"
    LOGIN_REDIRECT_URL = "/"
    LOGOUT_REDIRECT_URL = "/login/"
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_HTTPONLY = True
# The account named in Variable-PLEXER_ACCOUNT for the auth app's own pages (/login/, /logout/).
NOTES_AUTH_ACCOUNT = os.environ.get("NOTES_AUTH_ACCOUNT", "auth")

# The login account serves the sign-in page at every path; a tenant serves its notes.
ROOT_URLCONF = f"notes_site.urls_{NOTES_ROLE}"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    }
]

# Several worker processes of one account share its SQLite file. WAL lets readers go on while
# one writes, IMMEDIATE transactions take the write lock up front instead of failing with
# "database is locked" halfway, and the timeout waits that long for a lock. With WAL, SQLite's
# docs call synchronous=NORMAL a good choice: no fsync per commit; a power loss may undo the
# last commits but does not corrupt the file.
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": _database_path(),
        "OPTIONS": {
            "transaction_mode": "IMMEDIATE",
            "timeout": 5,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
    }
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en-us"

# With DEBUG off, Django mails errors to ADMINS and prints nothing. Print warnings and errors to
# stderr instead, which plexer writes to its log with the account and the worker's pid.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {"django": {"handlers": ["stderr"], "level": "WARNING"}},
}
