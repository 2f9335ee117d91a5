"""Workers report what they can run: rows written by the Celery signal handlers, and which nodes count as live.

The handlers are called directly with stand-ins for Celery's senders; no worker is started.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from django.db import DatabaseError
from django.utils import timezone

from evalhub.jobs import capabilities, workers
from evalhub.jobs.models import WorkerNode

pytestmark = pytest.mark.django_db

H100 = {"name": "NVIDIA H100 80GB HBM3", "memory_bytes": 85_031_714_816, "bf16": True}
GPU_CAPS: dict[str, Any] = {
    "cuda": True,
    "cuda_devices": [H100],
    "bitsandbytes": True,
    "torch_version": "2.5.1+cu124",
    "python_version": "3.11.9",
}


@pytest.fixture(autouse=True)
def _fresh_process_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # The throttle and registrations are per process; every test is a fresh worker process.
    monkeypatch.setattr(workers, "_last_write", {})
    monkeypatch.setattr(workers, "_registered", {})
    monkeypatch.setattr(capabilities, "worker_capabilities_isolated", lambda: dict(GPU_CAPS))
    yield


def consumer(hostname: str, *queues: str) -> SimpleNamespace:
    """What `worker_ready` sends: the Consumer, whose task consumer lists the queues it consumes."""
    return SimpleNamespace(
        hostname=hostname, task_consumer=SimpleNamespace(queues=[SimpleNamespace(name=q) for q in queues])
    )


def heart(hostname: str) -> SimpleNamespace:
    """What `heartbeat_sent` sends: the Heart, whose event dispatcher carries the node name."""
    return SimpleNamespace(eventer=SimpleNamespace(hostname=hostname))


def node(hostname: str = "celery@gpu-1", *, age: timedelta = timedelta(0), **fields: Any) -> WorkerNode:
    seen = timezone.now() - age
    values: dict[str, Any] = {**GPU_CAPS, "queues": ["gpu"], "started_at": seen, "last_seen": seen, **fields}
    return WorkerNode.objects.create(hostname=hostname, **values)


def test_worker_ready_records_queues_and_the_machines_cuda() -> None:
    workers.on_worker_ready(sender=consumer("celery@gpu-1", "gpu", "default"))
    row = WorkerNode.objects.get()
    assert row.hostname == "celery@gpu-1"
    assert row.queues == ["default", "gpu"]
    assert row.cuda and row.bitsandbytes and row.cuda_devices == [H100]
    assert row.torch_version == "2.5.1+cu124" and row.python_version == "3.11.9"
    assert row.stopped_at is None and row.last_seen == row.started_at


def test_restarted_worker_updates_its_row_and_is_live_again(monkeypatch: pytest.MonkeyPatch) -> None:
    workers.on_worker_ready(sender=consumer("celery@gpu-1", "gpu"))
    workers.on_worker_shutdown(sender=SimpleNamespace(hostname="celery@gpu-1"))
    assert workers.gpu_workers_with_cuda() == []

    # Same host, now without its GPU (driver gone): the new report replaces the old one.
    monkeypatch.setattr(
        capabilities, "worker_capabilities_isolated", lambda: {**GPU_CAPS, "cuda": False, "cuda_devices": []}
    )
    workers.on_worker_ready(sender=consumer("celery@gpu-1", "gpu"))
    row = WorkerNode.objects.get()
    assert row.stopped_at is None and not row.cuda and row.cuda_devices == []
    assert [n.hostname for n in workers.live_workers(queue="gpu")] == ["celery@gpu-1"]


def test_heartbeats_write_at_most_once_a_minute() -> None:
    workers.on_worker_ready(sender=consumer("celery@gpu-1", "gpu"))
    registered = WorkerNode.objects.get().last_seen

    workers.on_heartbeat_sent(sender=heart("celery@gpu-1"))  # 2 s later in a real worker
    assert WorkerNode.objects.get().last_seen == registered

    workers._last_write["celery@gpu-1"] -= workers.SEEN_EVERY_S + 1  # a minute has passed
    workers.on_heartbeat_sent(sender=heart("celery@gpu-1"))
    assert WorkerNode.objects.get().last_seen > registered
    assert workers.worker_seen("celery@gpu-1") is False  # and the next beat is throttled again


def test_heartbeat_writes_the_row_again_when_it_went_missing() -> None:
    # E.g. the database was unreachable when the worker started, or someone deleted the row in the admin.
    workers.on_worker_ready(sender=consumer("celery@gpu-1", "gpu"))
    WorkerNode.objects.all().delete()
    workers._last_write["celery@gpu-1"] -= workers.SEEN_EVERY_S + 1
    workers.on_heartbeat_sent(sender=heart("celery@gpu-1"))
    row = WorkerNode.objects.get()
    assert row.queues == ["gpu"] and row.cuda


def test_shutdown_marks_the_worker_stopped_at_once() -> None:
    workers.on_worker_ready(sender=consumer("celery@gpu-1", "gpu"))
    assert len(workers.gpu_workers_with_cuda()) == 1
    workers.on_worker_shutdown(sender=SimpleNamespace(hostname="celery@gpu-1"))
    assert WorkerNode.objects.get().stopped_at is not None
    assert workers.gpu_workers_with_cuda() == []


def test_handlers_never_raise_into_the_worker(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise DatabaseError("server closed the connection unexpectedly")

    monkeypatch.setattr(WorkerNode.objects, "update_or_create", broken)
    workers.on_worker_ready(sender=consumer("celery@gpu-1", "gpu"))
    workers.on_worker_ready(sender=None)  # a sender without the attributes we expect
    workers.on_heartbeat_sent(sender=object())
    workers.on_worker_shutdown(sender=None)
    assert not WorkerNode.objects.exists()
    assert "carrying on" in caplog.text


def test_only_fresh_gpu_queue_nodes_with_cuda_and_bitsandbytes_count() -> None:
    node("celery@fresh")
    node("celery@stale", age=timedelta(minutes=11))
    node("celery@cpu", cuda=False, cuda_devices=[])
    node("celery@no-bnb", bitsandbytes=False)
    node("celery@default-only", queues=["default"])
    node("celery@stopped", stopped_at=timezone.now())
    assert [n.hostname for n in workers.gpu_workers_with_cuda()] == ["celery@fresh"]
    assert [n.hostname for n in workers.gpu_workers_with_cuda(timedelta(minutes=12))] == [
        "celery@fresh",
        "celery@stale",
    ]


def test_isolated_probe_reports_what_this_process_sees(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.undo()  # the real probe: a child interpreter
    assert capabilities.worker_capabilities_isolated() == capabilities.worker_capabilities()


def test_failed_probe_reports_no_cuda_instead_of_failing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.undo()

    def hung(*args: Any, **kwargs: Any) -> Any:
        raise subprocess.TimeoutExpired(cmd="python", timeout=120)

    monkeypatch.setattr(capabilities.subprocess, "run", hung)
    caps = capabilities.worker_capabilities_isolated()
    assert caps["cuda"] is False and caps["cuda_devices"] == []
    assert caps["python_version"]
