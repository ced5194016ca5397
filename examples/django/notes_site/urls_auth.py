"""The auth account's URLs (NOTES_ROLE auth, authorizer.yaml): Django's ordinary sign-in and
sign-out views, on Django's own sessions. Every other request it gets is in the AUTHORIZER role,
which notes.authorizer answers before any URL is looked at."""

from django.contrib.auth import views as auth_views
from django.urls import path

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(template_name="notes/login.html")),
    path("logout/", auth_views.LogoutView.as_view()),
]
