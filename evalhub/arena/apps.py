from django.apps import AppConfig


class ArenaConfig(AppConfig):
    name = "evalhub.arena"
    label = "arena"
