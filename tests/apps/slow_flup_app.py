"""A WSGI app under flup's FastCGI server on descriptor 0, as plexer starts its workers, for the
slowlog's tests: a request for /stuck?seconds=N spends N seconds in stuck_in_a_known_function,
the name the tests look for in the stack py-spy dumps while the request runs.
"""

import time
from urllib.parse import parse_qs

from flup.server.fcgi_single import WSGIServer


def stuck_in_a_known_function(seconds):
    time.sleep(seconds)


def app(environ, start_response):
    query = parse_qs(environ.get("QUERY_STRING", ""))
    seconds = float(query.get("seconds", ["0"])[0])
    if seconds > 0:
        stuck_in_a_known_function(seconds)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"done\n"]


if __name__ == "__main__":
    WSGIServer(app, bindAddress=None, debug=False).run()
