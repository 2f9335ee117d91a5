from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "evalhub.jobs"
    label = "jobs"

    def ready(self) -> None:
        # Web and worker processes both publish jobs; the embedded broker needs its folders before the first one.
        from evalhub.celery import ensure_filesystem_broker_folders

        ensure_filesystem_broker_folders()
        self._connect_worker_signals()

    def _connect_worker_signals(self) -> None:
        # Connected in every process but sent only inside a Celery worker: each worker reports what it can run
        # (evalhub/jobs/workers.py). Django is set up before the worker builds its heartbeat, which only signals
        # when it has receivers at that point.
        from celery.signals import heartbeat_sent, worker_ready, worker_shutdown

        from evalhub.jobs import workers

        worker_ready.connect(workers.on_worker_ready, weak=False, dispatch_uid="evalhub.jobs.worker_ready")
        heartbeat_sent.connect(workers.on_heartbeat_sent, weak=False, dispatch_uid="evalhub.jobs.heartbeat_sent")
        worker_shutdown.connect(workers.on_worker_shutdown, weak=False, dispatch_uid="evalhub.jobs.worker_shutdown")
