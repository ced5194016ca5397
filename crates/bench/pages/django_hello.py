#!/usr/bin/env python3
"""The Django page of plexer-bench-pages (issue 15): a hello view, one worker of it.

Django's WSGI app under flup's single-threaded FastCGI server on descriptor 0, as
examples/django/fcgi_worker.py runs the notes site: plexer serve, plexer spawn and spawn-fcgi
all start a worker with descriptor 0 a listening socket. The settings are those of the notes
site (examples/django/notes_site/settings.py: its middleware, DEBUG off, no database touched by
this view), made in this one file so that the benchmark needs no database and no setup.

GET ?check answers with Django's version and this worker's pid, for the benchmark's header.
"""

import os
import sys

import django
from django.conf import settings
from django.http import HttpResponse
from django.urls import re_path

settings.configure(
    DEBUG=False,
    SECRET_KEY="plexer-bench-pages, not a secret",
    ALLOWED_HOSTS=["localhost", "127.0.0.1"],
    ROOT_URLCONF=__name__,
    INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth"],
    MIDDLEWARE=[
        "django.middleware.security.SecurityMiddleware",
        "django.middleware.common.CommonMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.middleware.clickjacking.XFrameOptionsMiddleware",
    ],
    USE_TZ=True,
    LOGGING={
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {"stderr": {"class": "logging.StreamHandler"}},
        "loggers": {"django": {"handlers": ["stderr"], "level": "WARNING"}},
    },
)


def hello(request):
    if "check" in request.GET:
        return HttpResponse(
            f"django: {django.get_version()}\npid: {os.getpid()}\n", content_type="text/plain"
        )
    return HttpResponse("Hello, world!\n", content_type="text/plain")


# Every path is the hello view: nginx's fastcgi_params send no PATH_INFO.
urlpatterns = [re_path(r"", hello)]


def main():
    from django.core.wsgi import get_wsgi_application
    from flup.server.fcgi_single import WSGIServer

    application = get_wsgi_application()
    # bindAddress=None: serve on descriptor 0. flup's own error page off, as in the example.
    WSGIServer(application, bindAddress=None, debug=False).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
