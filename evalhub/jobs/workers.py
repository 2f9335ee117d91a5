"""Which Celery workers exist and what they can run, as the workers report it themselves.

The process that accepts a run (the web server) usually has no GPU; the workers on the `gpu` queue do. So each
worker writes its own WorkerNode row: on start (Celery's `worker_ready`), about once a minute from its event
heartbeat (`heartbeat_sent`, throttled here: Celery beats every 2 s), and on a clean stop (`worker_shutdown`).
A worker that died is simply no longer seen; readers decide liveness by `last_seen`.

The signal handlers run inside the worker: they log and carry on, whatever goes wrong.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from django.db import close_old_connections, connection
from django.utils import timezone

from evalhub.jobs import capabilities
from evalhub.jobs.capabilities import worker_capabilities
from evalhub.jobs.models import WorkerNode

logger = logging.getLogger(__name__)

GPU_QUEUE = "gpu"
LIVE_WITHIN = timedelta(minutes=10)
SEEN_EVERY_S = 60.0

__all__ = [
    "GPU_QUEUE",
    "LIVE_WITHIN",
    "gpu_workers_with_cuda",
    "live_workers",
    "worker_capabilities",
    "worker_register",
    "worker_seen",
    "worker_stopped",
]

# Per process: when each hostname's row was last written, and what it registered with (to write it again if the
# row is missing, e.g. the database was down when the worker started).
_last_write: dict[str, float] = {}
_registered: dict[str, tuple[list[str], dict[str, Any]]] = {}


def _release_connection() -> None:
    # The worker's main process has no request cycle to recycle its connection: drop one that is broken or past
    # CONN_MAX_AGE. Never inside a transaction (a test's, or a caller's), where closing would break it.
    if not connection.in_atomic_block:
        close_old_connections()


def worker_register(
    hostname: str, queues: Iterable[str], *, capabilities_now: dict[str, Any] | None = None
) -> WorkerNode:
    """Record a worker that just started: its queues and what its machine can run. A restart clears stopped_at."""
    queue_list = sorted(set(queues))
    caps = capabilities_now if capabilities_now is not None else capabilities.worker_capabilities_isolated()
    _registered[hostname] = (queue_list, caps)
    now = timezone.now()
    _release_connection()
    node, _ = WorkerNode.objects.update_or_create(
        hostname=hostname,
        defaults={**caps, "queues": queue_list, "started_at": now, "last_seen": now, "stopped_at": None},
    )
    _last_write[hostname] = time.monotonic()
    _release_connection()
    return node


def worker_seen(hostname: str) -> bool:
    """Note that the worker is alive; at most one write per SEEN_EVERY_S per process. True when it wrote."""
    now = time.monotonic()
    last = _last_write.get(hostname)
    if last is not None and now - last < SEEN_EVERY_S:
        return False
    # Claimed before writing, so a failing database is tried once a minute, not on every 2 s heartbeat.
    _last_write[hostname] = now
    _release_connection()
    updated = WorkerNode.objects.filter(hostname=hostname).update(last_seen=timezone.now(), stopped_at=None)
    if not updated and hostname in _registered:
        queue_list, caps = _registered[hostname]
        worker_register(hostname, queue_list, capabilities_now=caps)
    _release_connection()
    return True


def worker_stopped(hostname: str) -> None:
    """A clean stop: the node stops counting as live at once instead of after LIVE_WITHIN."""
    _last_write.pop(hostname, None)
    _registered.pop(hostname, None)
    now = timezone.now()
    _release_connection()
    WorkerNode.objects.filter(hostname=hostname).update(stopped_at=now, last_seen=now)
    _release_connection()


# --- reads ------------------------------------------------------------------------------------------------------


def live_workers(max_age: timedelta = LIVE_WITHIN, *, queue: str | None = None) -> list[WorkerNode]:
    """Nodes seen within max_age and not stopped since, optionally only those consuming `queue`."""
    nodes = WorkerNode.objects.filter(stopped_at__isnull=True, last_seen__gte=timezone.now() - max_age)
    # The queue filter runs in Python: JSON `contains` is not available on SQLite, and there are few nodes.
    return [node for node in nodes if queue is None or queue in (node.queues or [])]


def gpu_workers_with_cuda(max_age: timedelta = LIVE_WITHIN) -> list[WorkerNode]:
    """Live nodes on the gpu queue that can run QLoRA: CUDA and bitsandbytes."""
    return [node for node in live_workers(max_age, queue=GPU_QUEUE) if node.cuda and node.bitsandbytes]


# --- Celery signal handlers (connected in JobsConfig.ready) ------------------------------------------------------


def _after_failure() -> None:
    # A broken connection would fail every later write too; the next one reconnects.
    try:
        if not connection.in_atomic_block:
            connection.close()
    except Exception:
        logger.debug("closing the database connection failed", exc_info=True)


def on_worker_ready(sender: Any = None, **_: Any) -> None:
    """`worker_ready`: sender is the worker's Consumer."""
    try:
        hostname = str(sender.hostname)
        queues = [str(queue.name) for queue in sender.task_consumer.queues]
        node = worker_register(hostname, queues)
        logger.info(
            "worker %s registered: queues %s, cuda %s, bitsandbytes %s", hostname, queues, node.cuda, node.bitsandbytes
        )
    except Exception:
        logger.exception("could not record this worker's capabilities; carrying on")
        _after_failure()


def on_heartbeat_sent(sender: Any = None, **_: Any) -> None:
    """`heartbeat_sent`: sender is celery.worker.heartbeat.Heart, whose event dispatcher knows the node name."""
    try:
        worker_seen(str(sender.eventer.hostname))
    except Exception:
        logger.exception("could not record this worker's heartbeat; carrying on")
        _after_failure()


def on_worker_shutdown(sender: Any = None, **_: Any) -> None:
    """`worker_shutdown`: sender is the WorkController."""
    try:
        worker_stopped(str(sender.hostname))
    except Exception:
        logger.exception("could not record this worker's stop; carrying on")
        _after_failure()
