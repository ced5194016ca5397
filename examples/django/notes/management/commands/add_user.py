"""`manage.py add_user NAME [--tenant TENANT]`: adds a user who may sign in, to the users
database (run it with the login account's DATABASE_NAME).

Which tenant the user belongs to is told twice, for the two ways plexer can learn it: in the
tenant's account file (`users:`), where plexer looks up the `X-Plexer-User` the login app
answers (plexer.yaml), and here, as the user's Django group named after the tenant, which the
authorizer reads (authorizer.yaml, route.by: authorizer)."""

import os

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Add a user to the users database, or set the password of one that exists."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument(
            "--tenant",
            help="the account the user belongs to: their Django group, which the authorizer "
            "reads",
        )
        parser.add_argument(
            "--password-env",
            default="NOTES_PASSWORD",
            help="the environment variable that holds the password (default NOTES_PASSWORD), "
            "so that it never shows in the process list",
        )

    def handle(self, username, password_env, tenant=None, **options):
        password = os.environ.get(password_env)
        if not password:
            raise CommandError(f"{password_env} is empty: put the user's password there")
        users = get_user_model()
        user, created = users.objects.get_or_create(username=username)
        user.set_password(password)
        user.save()
        if tenant:
            user.groups.set([Group.objects.get_or_create(name=tenant)[0]])
        verb = "added" if created else "updated"
        self.stdout.write(f"{verb} user {username}")
