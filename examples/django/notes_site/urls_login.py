"""The login account's URLs: every request without a valid routing cookie lands here, whatever
its path, so every path shows the sign-in page; the form posts to /login/."""

from django.urls import path, re_path

from notes import views

urlpatterns = [
    path("login/", views.login),
    re_path(r"", views.login),
]
