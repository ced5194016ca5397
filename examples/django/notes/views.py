"""The views of both roles.

The login account authenticates against Django's users (django.contrib.auth, in the users
database) and answers `X-Plexer-User: NAME`: plexer looks NAME up in the accounts' `users:`,
removes the header, and sets its signed routing cookie, so that the user's next request lands on
their tenant's workers. A tenant's view never sees another tenant's database; which tenant it
is comes from the PLEXER_ACCOUNT param that plexer adds.
"""

from django.conf import settings
from django.contrib.auth import authenticate
from django.http import HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_POST, require_http_methods

from .models import MAX_NOTE_LENGTH, Note


@require_http_methods(["GET", "HEAD", "POST"])
def login(request):
    if request.method != "POST":
        return render(request, "notes/login.html")
    username = request.POST.get("username", "")
    user = authenticate(request, username=username, password=request.POST.get("password", ""))
    if user is None or not user.is_active:
        return render(
            request,
            "notes/login.html",
            {"error": "Wrong username or password.", "username": username},
            status=403,
        )
    response = HttpResponseRedirect("/")
    response["X-Plexer-User"] = user.get_username()
    return response


@require_GET
def note_list(request):
    return render(
        request,
        "notes/notes.html",
        {
            "account": request.META.get("PLEXER_ACCOUNT", "-"),
            "notes": Note.objects.all(),
            "max_length": MAX_NOTE_LENGTH,
        },
    )


@require_POST
def add_note(request):
    text = request.POST.get("text", "").strip()
    if not text or len(text) > MAX_NOTE_LENGTH:
        return render(
            request,
            "notes/notes.html",
            {
                "account": request.META.get("PLEXER_ACCOUNT", "-"),
                "notes": Note.objects.all(),
                "max_length": MAX_NOTE_LENGTH,
                "error": f"A note is 1 to {MAX_NOTE_LENGTH} characters.",
            },
            status=400,
        )
    Note.objects.create(text=text)
    return HttpResponseRedirect("/")


@require_POST
def logout(request):
    # plexer honours `X-Plexer-Logout: 1` from the login app only (it ignores X-Plexer-*
    # headers from every other account), so a tenant clears the routing cookie itself. That
    # gives it no power it should not have: without the cookie, the next request lands on the
    # sign-in page.
    response = HttpResponseRedirect("/")
    response.delete_cookie(settings.PLEXER_COOKIE, path="/", samesite="Lax")
    return response
