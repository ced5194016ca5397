#!/usr/bin/env python3
"""Creates the example's databases, users and secret key in a data directory:

    NOTES_PASSWORD=... python setup_example.py /var/lib/notes

- users.sqlite3, the login account's database, with the users alice (of acme) and grace (of
  globex), both with the password in NOTES_PASSWORD;
- acme.sqlite3 and globex.sqlite3, each tenant's notes;
- secret_key, Django's SECRET_KEY for every account (kept if it exists).

The names match accounts.d/ (DATABASE_NAME and users:). Each database is made by
`manage.py migrate` run with that database's DATABASE_NAME, and each user by `manage.py
add_user`: the same commands an operator runs to add a tenant or a user later. Run it with the
Python of the site's virtualenv. Running it again keeps the data and resets the passwords.
"""

import os
import secrets
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
USERS_DATABASE = "users.sqlite3"
# tenant -> (its database, the users who sign in to it); the same as accounts.d/.
TENANTS = {
    "acme": ("acme.sqlite3", ["alice"]),
    "globex": ("globex.sqlite3", ["grace"]),
}


def manage(data_dir, database, *args):
    env = dict(os.environ, NOTES_DATA_DIR=str(data_dir), DATABASE_NAME=database)
    result = subprocess.run(
        [sys.executable, str(HERE / "manage.py"), *args],
        env=env,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        sys.exit(
            f"setup_example: manage.py {' '.join(args)} with DATABASE_NAME={database} failed:\n"
            f"{result.stdout}{result.stderr}"
        )


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

    manage(data_dir, USERS_DATABASE, "migrate", "--no-input", "-v", "0")
    print(f"login: {data_dir / USERS_DATABASE}")
    for tenant, (database, users) in TENANTS.items():
        manage(data_dir, database, "migrate", "--no-input", "-v", "0")
        for user in users:
            manage(data_dir, USERS_DATABASE, "add_user", user)
        print(f"{tenant}: {data_dir / database}, users: {', '.join(users)}")


if __name__ == "__main__":
    main(sys.argv)
