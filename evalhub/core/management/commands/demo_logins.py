from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from evalhub.demo.loader import login_lines


class Command(BaseCommand):
    help = "Print the demo site's address and its logins."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--url", default="", help="the address the site is served at, e.g. http://127.0.0.1:8000/")

    def handle(self, *args: Any, **options: Any) -> None:
        for line in login_lines(options["url"] or None):
            self.stdout.write(line)
