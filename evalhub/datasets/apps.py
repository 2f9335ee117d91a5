from django.apps import AppConfig


class DatasetsConfig(AppConfig):
    name = "evalhub.datasets"
    label = "datasets"
