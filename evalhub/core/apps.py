from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "evalhub.core"
    label = "core"
