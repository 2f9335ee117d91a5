from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from evalhub.demo.loader import load_demo


class Command(BaseCommand):
    help = "Load the demo project (users, product-description data, splits, quality reports, a curation queue). " \
           "Safe to run again: it only adds what is missing."

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write("Loading the demo project:")
        load_demo(self.stdout)
