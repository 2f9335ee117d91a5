"""The demo step after an interrupted `make demo` (tiny model in place of SmolLM2, so it runs in seconds)."""

from __future__ import annotations

import io
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from evalhub.jobs.models import Job
from evalhub.tuning import demo, services
from evalhub.tuning.models import ModelVersion, TrainingRun

pytestmark = pytest.mark.django_db


@pytest.fixture
def tiny_demo(tiny_base: Any, monkeypatch: pytest.MonkeyPatch, settings: Any) -> Any:
    settings.JOB_LEASE_SECONDS = 10**6  # keep the heartbeat thread away from the test's database
    monkeypatch.setattr(demo, "_base_model", lambda stdout: tiny_base)
    return tiny_base


def interrupted_run(world: Any, base: Any, versions: Any, *, attempts: int) -> TrainingRun:
    """What a Ctrl-C'd `make demo` leaves: the demo run's job "running" under a lease nobody renews."""
    run = services.training_run_create(
        project=world.project,
        user=world.lead,
        base_model=base,
        train_version=versions[0],
        val_version=versions[1],
        method="lora",
        hyperparameters={"max_steps": 4, "batch_size": 2},
        name=demo.DEMO_RUN_NAME,
    )
    Job.objects.filter(pk=run.job_id).update(
        status="running",
        attempts=attempts,
        lease_owner="gone:1:x",
        lease_expires_at=timezone.now() - timedelta(minutes=5),
    )
    return run


def test_an_interrupted_demo_run_is_finished_not_duplicated(
    world: Any, tiny_demo: Any, versions: Any
) -> None:
    run = interrupted_run(world, tiny_demo, versions, attempts=1)
    summary = demo.demo_step(world.project, world.lead, io.StringIO(), max_steps=4)
    assert "LoRA" in summary, summary
    assert TrainingRun.objects.get() == run
    assert ModelVersion.objects.get(training_run=run).lineage["steps_done"] == 4
    assert [str(v) for v in ModelVersion.objects.order_by("number")] == ["v1 base", "v2 LoRA"]
    assert demo.demo_step(world.project, world.lead, io.StringIO()).startswith("found")


def test_a_demo_run_that_used_up_its_attempts_is_replaced(world: Any, tiny_demo: Any, versions: Any) -> None:
    dead = interrupted_run(world, tiny_demo, versions, attempts=3)
    demo.demo_step(world.project, world.lead, io.StringIO(), max_steps=4)
    dead.job.refresh_from_db()
    assert dead.job.status == "failed"
    fresh = TrainingRun.objects.exclude(pk=dead.pk).get()
    assert ModelVersion.objects.filter(training_run=fresh).exists()
