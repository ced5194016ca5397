#!/usr/bin/env python3
"""One worker of the notes site: Django's WSGI app under flup's FastCGI server, serving on
descriptor 0.

plexer (like spawn-fcgi and php-fpm) starts each worker with descriptor 0 a listening socket,
FastCGI's FCGI_LISTENSOCK_FILENO. flup's WSGIServer with bindAddress=None serves there. The
single-threaded server answers one request at a time, as plexer's pools expect of a worker
(it counts busy and idle workers, and recycles them after max_requests).

This is the seed's case done right (seeds/000: flup's prefork server imported the app, then
forked, and a database connection opened at import was shared by every child). Here every
worker is a process of its own, started by fork and exec, and Django opens its database
connection lazily, in the worker, at its first request.
"""

import os
import socket
import stat
import sys
from pathlib import Path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "notes_site.settings")

from django.conf import settings  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402
from flup.server.fcgi_base import FCGI_AUTHORIZER, FCGI_RESPONDER  # noqa: E402
from flup.server.fcgi_single import WSGIServer  # noqa: E402


def fd0_is_a_listening_socket():
    if not stat.S_ISSOCK(os.fstat(0).st_mode):
        return False
    with socket.socket(fileno=os.dup(0)) as sock:
        return sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1


def main():
    # Otherwise flup would fall back to CGI and answer one request from its environment.
    if not fd0_is_a_listening_socket():
        sys.exit(
            "fcgi_worker: descriptor 0 is not a listening socket: run it under plexer serve "
            "(pool.command in plexer.yaml), plexer spawn or spawn-fcgi, which put one there"
        )
    application = get_wsgi_application()
    # SQLite would create a missing file at the first query and then fail on the missing
    # tables; say instead which database to create, before taking any request.
    database = Path(settings.DATABASES["default"]["NAME"])
    if not database.is_file():
        sys.exit(
            f"fcgi_worker: the database {database} does not exist: create it with "
            f"`DATABASE_NAME={database.name} manage.py migrate` (examples/django/README.md)"
        )
    # flup prints a traceback page to the client on an error unless debug is off; Django's
    # own 500 page and its logging (stderr) are what a production site wants.
    # Both roles: the auth account (authorizer.yaml) answers plexer's AUTHORIZER requests with
    # the same app, which tells them apart by the FCGI_ROLE param plexer sends
    # (notes/authorizer.py).
    server = WSGIServer(
        application,
        bindAddress=None,
        debug=False,
        roles=(FCGI_RESPONDER, FCGI_AUTHORIZER),
    )
    # SIGTERM, SIGINT or SIGHUP stop the loop once the request in hand is answered: plexer's
    # graceful stop and recycling rely on that.
    server.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
