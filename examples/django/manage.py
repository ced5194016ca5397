#!/usr/bin/env python3
"""Django's command line for the notes site: `migrate`, and this example's `setup_example`
and `add_user` (notes/management/commands/)."""

import os
import sys


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "notes_site.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
