"""The auth account's answer to plexer in FastCGI's AUTHORIZER role (route.by: authorizer).

plexer (like lighttpd's "mode" => "authorizer" and Apache's mod_authnz_fcgi) sends the
request's params, with FCGI_ROLE=AUTHORIZER, before it routes the request; the answer decides:

- the auth app's own pages (/login/, /logout/): 200 with Variable-PLEXER_ACCOUNT naming this
  account, so that they are served here;
- a user signed in with Django's session: 200 with Variable-PLEXER_ACCOUNT naming their tenant
  (their Django group, set by `manage.py add_user --tenant`) and Variable-PLEXER_USER their name;
- anyone else: a 302 to the sign-in page, which plexer sends to the browser as it is.

No plexer cookie is involved: Django's own session cookie is all the browser carries.
"""

from urllib.parse import quote

from django.conf import settings
from django.http import HttpResponse, HttpResponseRedirect

OWN_PAGES = ("/login/", "/logout/")


class AuthorizerMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.META.get("FCGI_ROLE") != "AUTHORIZER":
            return self.get_response(request)
        # An authorizer gets no PATH_INFO (FastCGI §6.3): the path is the request's URI.
        path = request.META.get("REQUEST_URI", "/").split("?", 1)[0]
        if path.startswith(OWN_PAGES):
            return allow(settings.NOTES_AUTH_ACCOUNT)
        user = request.user
        tenant = user.groups.values_list("name", flat=True).first() if user.is_authenticated else None
        if tenant is None:
            return HttpResponseRedirect(f"{settings.LOGIN_URL}?next={quote(path)}")
        return allow(tenant, user.get_username())


def allow(account, user=None):
    response = HttpResponse(status=200)
    response["Variable-PLEXER_ACCOUNT"] = account
    if user is not None:
        response["Variable-PLEXER_USER"] = user
    return response
