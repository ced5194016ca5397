#!/usr/bin/env python3
"""Creates the example's databases, users and secret key in a data directory:

    NOTES_PASSWORD=... .venv/bin/python setup_example.py /var/lib/notes

- secret_key, Django's SECRET_KEY for every account (kept if it exists);
- users.sqlite3, the login account's database, with the users alice (of acme) and grace (of
  globex), both with the password in NOTES_PASSWORD;
- acme.sqlite3 and globex.sqlite3, each tenant's notes.

The names match accounts.d/ (DATABASE_NAME and users:). The databases are made by Django's
`migrate` and the users by this example's `add_user`: the commands an operator runs to add a
tenant or a user later (README.md, "Add a tenant"). Here they run in one process, with one
database alias per file, since every Django start-up costs a good part of a second. Running it
again keeps the data and resets the passwords.
"""

import io
import os
import secrets
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

USERS_DATABASE = "users.sqlite3"
# tenant -> (its database, the users who sign in to it); the same as accounts.d/.
TENANTS = {
    "acme": ("acme.sqlite3", ["alice"]),
    "globex": ("globex.sqlite3", ["grace"]),
}


def main(argv):
    if len(argv) != 2:
        sys.exit(f"usage: NOTES_PASSWORD=... {argv[0]} DATA_DIR")
    if not os.environ.get("NOTES_PASSWORD"):
        sys.exit("setup_example: NOTES_PASSWORD is empty: put the example users' password there")
    data_dir = Path(argv[1]).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    key_file = data_dir / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(50) + "\n")
        key_file.chmod(0o600)

    # The settings as every account's worker reads them, for the login account ("default"),
    # plus an alias per tenant database, added before Django opens any connection.
    os.environ.update(
        DJANGO_SETTINGS_MODULE="notes_site.settings",
        NOTES_DATA_DIR=str(data_dir),
        DATABASE_NAME=USERS_DATABASE,
    )
    import django
    from django.conf import settings
    from django.core.management import call_command

    default = settings.DATABASES["default"]
    for tenant, (database, _) in TENANTS.items():
        settings.DATABASES[tenant] = dict(default, NAME=data_dir / database)
    django.setup()

    call_command("migrate", database="default", interactive=False, verbosity=0)
    print(f"login: {data_dir / USERS_DATABASE}")
    for tenant, (database, users) in TENANTS.items():
        call_command("migrate", database=tenant, interactive=False, verbosity=0)
        for user in users:
            call_command("add_user", user, tenant=tenant, stdout=io.StringIO())
        print(f"{tenant}: {data_dir / database}, users: {', '.join(users)}")


if __name__ == "__main__":
    main(sys.argv)
