"""`manage.py add_user NAME`: adds a user who may sign in, to the users database (run it with
the login account's DATABASE_NAME). Which tenant the user belongs to is plexer's business: add
NAME to that tenant's `users:` in its account file."""

import os

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Add a user to the users database, or set the password of one that exists."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument(
            "--password-env",
            default="NOTES_PASSWORD",
            help="the environment variable that holds the password (default NOTES_PASSWORD), "
            "so that it never shows in the process list",
        )

    def handle(self, username, password_env, **options):
        password = os.environ.get(password_env)
        if not password:
            raise CommandError(f"{password_env} is empty: put the user's password there")
        users = get_user_model()
        user, created = users.objects.get_or_create(username=username)
        user.set_password(password)
        user.save()
        verb = "added" if created else "updated"
        self.stdout.write(f"{verb} user {username}")
