"""Acceptance: a Celery worker killed with SIGKILL mid-run; the run resumes on another worker and ends where an
uninterrupted run ends.

Two real workers (`celery -A evalhub worker -Q gpu --concurrency 1 -P solo`) share a file-based SQLite database and
a filesystem broker with this test. One claims the run; a duplicate message reaches the other, which must refuse it
while the first holds the lease (never two copies at once). The first is SIGKILLed after a checkpoint; once its
lease runs out, the stale-job sweep requeues the run and the second worker resumes it from the checkpoint. Its
adapter must equal the adapter of the same config trained in one go.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
CELERY = Path(sys.executable).with_name("celery")
FINISHED = {"succeeded", "failed", "cancelled"}


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 180.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


class Cluster:
    """The processes and files of one kill test."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.db = tmp / "kill.sqlite3"
        var = tmp / "var"
        for folder in ("broker/queue", "broker/processed"):
            (var / folder).mkdir(parents=True, exist_ok=True)
        dropped = {
            "DATABASE_URL",
            "CELERY_BROKER_URL",
            "CELERY_TASK_ALWAYS_EAGER",
            "EVALHUB_ARTIFACT_ROOT",
            "DEBUG",
            "EVALHUB_MODE",
            "SECRET_KEY",
        }
        self.env = {k: v for k, v in os.environ.items() if k not in dropped}
        self.env.update(
            DJANGO_SETTINGS_MODULE="evalhub.settings",
            DATABASE_URL=f"sqlite:///{self.db}",
            CELERY_BROKER_URL="filesystem://",
            EVALHUB_VAR_DIR=str(var),
            EVALHUB_MODEL_CACHE=str(tmp / "models"),
            EVALHUB_JOB_LEASE_SECONDS="5",
            OMP_NUM_THREADS="1",
            MKL_NUM_THREADS="1",
            HF_HUB_OFFLINE="1",
            TRANSFORMERS_OFFLINE="1",
            TOKENIZERS_PARALLELISM="false",
            PYTHONPATH=str(REPO),
        )
        self.workers: dict[str, subprocess.Popen[bytes]] = {}

    def driver(self, *args: str) -> dict[str, Any]:
        out = subprocess.run(
            [sys.executable, "-m", "tests.tuning.kill_driver", *args],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert out.returncode == 0, out.stderr[-4000:]
        return json.loads(out.stdout.strip().splitlines()[-1])

    def start_worker(self, name: str) -> subprocess.Popen[bytes]:
        log = (self.tmp / f"worker-{name}.log").open("wb")
        proc = subprocess.Popen(
            [
                str(CELERY),
                "-A",
                "evalhub",
                "worker",
                "-Q",
                "gpu",
                "--concurrency",
                "1",
                "-P",
                "solo",
                "--loglevel",
                "INFO",
                "-n",
                f"{name}@%h",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
            cwd=REPO,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.workers[name] = proc
        return proc

    def log(self, name: str) -> str:
        return (self.tmp / f"worker-{name}.log").read_text(errors="replace")

    def row(self, table: str, where: str, *params: Any) -> dict[str, Any] | None:
        if not self.db.exists():
            return None
        with sqlite3.connect(self.db, timeout=30) as conn:
            conn.row_factory = sqlite3.Row
            try:
                found = conn.execute(f"SELECT * FROM {table} WHERE {where}", params).fetchone()
            except sqlite3.OperationalError:  # tables not migrated yet
                return None
        return dict(found) if found else None

    def job(self, job_id: int) -> dict[str, Any]:
        row = self.row("jobs_job", "id = ?", job_id)
        assert row is not None
        return row

    def stop(self) -> None:
        for proc in self.workers.values():
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def _lease_expired(job: dict[str, Any]) -> bool:
    expires = job["lease_expires_at"]
    if not expires:
        return False
    moment = datetime.fromisoformat(expires)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment < datetime.now(UTC)


def test_killed_worker_run_resumes_on_another_worker_and_matches_an_uninterrupted_run(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    import torch
    from safetensors.torch import load_file

    from trainer.config import TrainConfig
    from trainer.models import ModelSource
    from trainer.train import latest_checkpoint, train_sft

    cluster = Cluster(tmp_path)
    try:
        cluster.start_worker("a")
        cluster.start_worker("b")
        info = cluster.driver("setup", str(tiny_model_dir))
        job_id, output_dir = info["job_id"], Path(info["output_dir"])
        wait_for(lambda: "ready" in cluster.log("a") and "ready" in cluster.log("b"), "both workers to start")

        owner = wait_for(lambda: cluster.job(job_id)["lease_owner"], "a worker to claim the run")
        runner = next(name for name, p in cluster.workers.items() if f":{p.pid}:" in owner)
        spare = "b" if runner == "a" else "a"

        # A duplicate message (a broker redelivery, a second requeue) reaches the idle worker: it must not start a
        # second copy while the first worker holds a live lease.
        cluster.driver("enqueue", str(job_id))
        wait_for(
            lambda: f"job {job_id} not claimable" in cluster.log(spare),
            "the spare worker to refuse the duplicate",
        )
        assert cluster.job(job_id)["attempts"] == 1

        wait_for(lambda: latest_checkpoint(output_dir), "a checkpoint")
        assert cluster.job(job_id)["status"] == "running", (
            "the run must still be going when the worker is killed"
        )
        cluster.workers[runner].send_signal(signal.SIGKILL)
        cluster.workers[runner].wait(timeout=30)
        checkpoint = latest_checkpoint(output_dir)
        assert checkpoint is not None
        killed_at = int(checkpoint.name.removeprefix("step-"))
        assert 0 < killed_at < 400

        # Nobody heartbeats any more: once the lease runs out, the stale-job sweep hands the run to the spare.
        wait_for(lambda: _lease_expired(cluster.job(job_id)), "the dead worker's lease to expire", timeout=60)
        assert job_id in cluster.driver("requeue")["requeued"]
        wait_for(lambda: cluster.job(job_id)["status"] in FINISHED, "the resumed run to finish", timeout=300)
    finally:
        cluster.stop()

    job = cluster.job(job_id)
    assert job["status"] == "succeeded", job["error"] + cluster.log(spare)[-3000:]
    assert job["attempts"] == 2
    assert f":{cluster.workers[spare].pid}:" in job["lease_owner"]
    assert f"resumed from checkpoint at step {killed_at}" in job["log"]

    run = cluster.row("tuning_trainingrun", "id = ?", info["run_id"])
    assert run is not None
    history = json.loads(run["loss_history"])
    assert [p["step"] for p in history if "train_loss" in p] == list(range(1, 401)), (
        "no step lost or counted twice"
    )
    version = cluster.row("tuning_modelversion", "training_run_id = ?", info["run_id"])
    assert version is not None
    assert json.loads(version["lineage"])["resumed_from_step"] == killed_at

    reference = train_sft(
        TrainConfig.from_dict(info["config"]),
        base=ModelSource(kind="folder", path_or_id=str(tiny_model_dir)),
        train_file=Path(info["train_file"]),
        val_file=Path(info["val_file"]),
        output_dir=tmp_path / "uninterrupted",
        cache_dir=tmp_path / "models",
    )
    assert reference.resumed_from_step is None and reference.steps_done == 400
    for weights in ("final", "best"):
        resumed = load_file(str(output_dir / weights / "adapter_model.safetensors"))
        straight = load_file(str(tmp_path / "uninterrupted" / weights / "adapter_model.safetensors"))
        assert resumed.keys() == straight.keys()
        for name in straight:
            assert torch.allclose(resumed[name], straight[name], rtol=1e-4, atol=1e-6), (
                f"{weights}/{name} differs"
            )
        # Training moved the adapter away from its initialisation (LoRA's B starts at zero).
        assert any(straight[n].abs().sum() > 0 for n in straight if "lora_B" in n)
