"""A WSGI app under flup's prefork FastCGI server (the server Django's `runfcgi` used), for the
fork-safety audit's tests: it opens what OPEN names, either at import, before flup forks its
children (the seeds' bug), or in each child after the fork (the fix).

Environment:
  OPEN           comma-separated: pg (PostgreSQL, libpq's PGHOST/PGPORT), redis_tcp
                 (REDIS_PORT), redis_unix (REDIS_SOCKET), sqlite (SQLITE_PATH), peer_tcp
                 (PEER_PORT: any TCP server)
  WHEN           import (default) or after_fork
  LISTENER       when set, a listening TCP socket opened at import
  SYSLOG_SOCKET  when set, logging's SysLogHandler to this unix datagram socket, at import
The listener and the syslog socket are shared on purpose: sharing them is safe.
Answers every request with the pid of the child that served it.
"""

import logging
import logging.handlers
import os
import socket
import sqlite3

from flup.server.fcgi_fork import WSGIServer

HELD = []


def open_all():
    for what in filter(None, os.environ.get("OPEN", "").split(",")):
        if what == "pg":
            import psycopg2

            conn = psycopg2.connect(dbname="postgres", user="postgres")
            conn.cursor().execute("select 1")
            HELD.append(conn)
        elif what in ("redis_tcp", "redis_unix"):
            import redis

            if what == "redis_tcp":
                client = redis.Redis(host="127.0.0.1", port=int(os.environ["REDIS_PORT"]))
            else:
                client = redis.Redis(unix_socket_path=os.environ["REDIS_SOCKET"])
            client.ping()
            HELD.append(client)
        elif what == "sqlite":
            conn = sqlite3.connect(os.environ["SQLITE_PATH"])
            conn.execute("create table if not exists t (x)")
            conn.commit()
            HELD.append(conn)
        elif what == "peer_tcp":
            HELD.append(socket.create_connection(("127.0.0.1", int(os.environ["PEER_PORT"]))))
        else:
            raise SystemExit("unknown OPEN item %r" % what)


def open_shared_on_purpose():
    if os.environ.get("LISTENER"):
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        HELD.append(listener)
    if os.environ.get("SYSLOG_SOCKET"):
        handler = logging.handlers.SysLogHandler(address=os.environ["SYSLOG_SOCKET"])
        log = logging.getLogger("app")
        log.addHandler(handler)
        log.warning("app starting")
        HELD.append(handler)


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [("served by %d\n" % os.getpid()).encode()]


open_shared_on_purpose()
if os.environ.get("WHEN", "import") == "import":
    open_all()
else:
    os.register_at_fork(after_in_child=open_all)

if __name__ == "__main__":
    WSGIServer(app, minSpare=2, maxSpare=2, maxChildren=2).run()
