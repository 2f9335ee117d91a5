from django.apps import AppConfig


class TuningConfig(AppConfig):
    name = "evalhub.tuning"
    label = "tuning"
