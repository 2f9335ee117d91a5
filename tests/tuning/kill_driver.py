"""Helper process for test_kill_resume.py: talks to the same file-based database as the Celery workers.

    python -m tests.tuning.kill_driver setup <tiny-model-dir>   -> migrates, creates a project, data and a queued run
    python -m tests.tuning.kill_driver enqueue <job-id>         -> sends another message for the job (a duplicate)
    python -m tests.tuning.kill_driver requeue                  -> what the beat task does: requeue stale jobs

The environment (DATABASE_URL, CELERY_BROKER_URL, EVALHUB_VAR_DIR, ...) comes from the test. Prints one JSON line.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

# The run the kill test trains: long enough to be killed mid-way, checkpoints often, evaluates twice.
KILL_HP: dict[str, Any] = {
    "max_steps": 400,
    "batch_size": 4,
    "save_every_steps": 10,
    "eval_every_steps": 200,
    "rank": 4,
    "alpha": 8,
    "max_seq_len": 128,
}


def setup(model_dir: str) -> dict[str, Any]:
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from evalhub.projects.models import Membership, Project, Role
    from evalhub.tuning import services
    from tests.tuning.conftest import make_version, product_rows
    from trainer.models import ModelSource

    call_command("migrate", verbosity=0, interactive=False)
    lead = get_user_model().objects.create_user("lead")
    project = Project.objects.create(name="Kill test", task_instructions="Describe products briefly.")
    Membership.objects.create(project=project, user=lead, role=Role.LEAD)
    train = make_version(project, product_rows(0, 12), split="train")
    val = make_version(project, product_rows(6, 4), split="validation")
    base = services.base_model_register(name="tiny", source=ModelSource(kind="folder", path_or_id=model_dir))
    run = services.training_run_create(
        project=project,
        user=lead,
        base_model=base,
        train_version=train,
        val_version=val,
        method="lora",
        placement="attention",
        hyperparameters=KILL_HP,
    )
    folder = services.run_dir(run)
    return {
        "run_id": run.pk,
        "job_id": run.job_id,
        "config": run.config,
        "output_dir": str(folder / "output"),
        "train_file": str(folder / "data" / "train.jsonl"),
        "val_file": str(folder / "data" / "val.jsonl"),
    }


def main(argv: list[str]) -> None:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "evalhub.settings")
    django.setup()
    from evalhub.jobs import services as jobs

    command = argv[0]
    if command == "setup":
        out: Any = setup(argv[1])
    elif command == "enqueue":
        jobs.job_enqueue(int(argv[1]))
        out = {"enqueued": int(argv[1])}
    elif command == "requeue":
        out = {"requeued": jobs.jobs_requeue_stale()}
    else:
        raise SystemExit(f"unknown command {command!r}")
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1:])
