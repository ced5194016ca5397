"""A tenant account's URLs: its notes, adding one, and signing out."""

from django.urls import path

from notes import views

urlpatterns = [
    path("", views.note_list),
    path("notes/", views.add_note),
    path("logout/", views.logout),
]
