"""Celery application. Queues: `default` (CPU work) and `gpu` (training, generation, BERTScore)."""

from __future__ import annotations

import os

from celery import Celery
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "evalhub.settings")

app = Celery("evalhub")
app.config_from_object("django.conf:settings", namespace="CELERY")


def ensure_filesystem_broker_folders() -> None:
    """kombu's filesystem transport fails on the first message if its folders are missing (a fresh ./var)."""
    from pathlib import Path

    from django.conf import settings

    if str(settings.CELERY_BROKER_URL).startswith("filesystem://"):
        for key in ("data_folder_in", "data_folder_out", "processed_folder"):
            folder = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get(key)
            if folder:
                Path(folder).mkdir(parents=True, exist_ok=True)



app.conf.task_queues = (Queue("default"), Queue("gpu"))
app.autodiscover_tasks()
