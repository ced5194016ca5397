"""A tenant's notes. Each tenant's notes live in that tenant's own database (DATABASE_NAME):
the table has no tenant column, because no other tenant's rows are ever in the file."""

from django.db import models

MAX_NOTE_LENGTH = 500


class Note(models.Model):
    text = models.CharField(max_length=MAX_NOTE_LENGTH)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created", "-id"]

    def __str__(self):
        return self.text
