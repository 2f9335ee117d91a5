from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "evalhub.jobs"
    label = "jobs"

    def ready(self) -> None:
        # Web and worker processes both publish jobs; the embedded broker needs its folders before the first one.
        from evalhub.celery import ensure_filesystem_broker_folders

        ensure_filesystem_broker_folders()
