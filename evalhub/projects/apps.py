from django.apps import AppConfig


class ProjectsConfig(AppConfig):
    name = "evalhub.projects"
    label = "projects"
