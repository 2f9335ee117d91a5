from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from evalhub.demo.loader import load_demo


class Command(BaseCommand):
    help = "Load the demo project (users, product-description data, splits, quality reports, a curation queue). " \
           "Safe to run again: it only adds what is missing."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--data-only", action="store_true",
                            help="only users, the project and its data (no training, generation or reviews)")

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write("Loading the demo project:")
        load_demo(self.stdout, data_only=options["data_only"])
