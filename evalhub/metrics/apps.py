from django.apps import AppConfig


class MetricsConfig(AppConfig):
    name = "evalhub.metrics"
    label = "metrics"
