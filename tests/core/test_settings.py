from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from evalhub.env import env_bool, env_choice, env_int, env_list

ROOT = Path(__file__).resolve().parents[2]
GOOD_SECRET = "k3y-" + "Zq8#fPw2" * 8


def test_env_helpers_parse_and_refuse_bad_values() -> None:
    assert env_bool("X", False, environ={"X": "yes"}) is True
    assert env_bool("X", True, environ={"X": "0"}) is False
    assert env_bool("X", True, environ={}) is True
    with pytest.raises(ImproperlyConfigured, match="X='ture' is not a boolean"):
        env_bool("X", False, environ={"X": "ture"})
    assert env_int("N", 3, environ={"N": " 7 "}) == 7
    with pytest.raises(ImproperlyConfigured, match="N='seven' is not an integer"):
        env_int("N", 3, environ={"N": "seven"})
    with pytest.raises(ImproperlyConfigured, match="below the minimum 1"):
        env_int("N", 3, minimum=1, environ={"N": "0"})
    assert env_list("L", [], environ={"L": "a.com, b.com,,"}) == ["a.com", "b.com"]
    with pytest.raises(ImproperlyConfigured, match="not one of development, production"):
        env_choice("M", "development", ("development", "production"), environ={"M": "prod"})


def _run_django(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "EVALHUB_", "DEBUG", "SECRET_KEY", "DATABASE_URL", "CELERY_"))}
    base.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=base, capture_output=True, text=True, timeout=120, check=False
    )


def _production_env(**extra: str) -> dict[str, str]:
    return {
        "EVALHUB_MODE": "production",
        "SECRET_KEY": GOOD_SECRET,
        "DATABASE_URL": "postgres://evalhub:pw@db.internal:5432/evalhub",
        "CELERY_BROKER_URL": "redis://redis.internal:6379/0",
        "ALLOWED_HOSTS": "evalhub.example.com",
        **extra,
    }


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DEBUG": "1"}, "DEBUG must be off in production"),
        ({"SECRET_KEY": ""}, "SECRET_KEY must be set"),
        ({"SECRET_KEY": "short"}, "SECRET_KEY must be set"),
        ({"DATABASE_URL": ""}, "DATABASE_URL must be set"),
        ({"CELERY_BROKER_URL": ""}, "CELERY_BROKER_URL must be set"),
    ],
)
def test_production_refuses_unsafe_configuration(env: dict[str, str], message: str) -> None:
    merged = _production_env(**env)
    merged = {k: v for k, v in merged.items() if v != ""}
    result = _run_django(merged, "check")
    assert result.returncode != 0
    assert message in result.stderr


def test_production_passes_deploy_checks() -> None:
    result = _run_django(_production_env(), "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stderr + result.stdout


def test_every_celery_setting_is_a_real_celery_setting() -> None:
    from celery.app.defaults import NAMESPACES, flatten

    known = {name for name, _ in flatten(NAMESPACES)}
    ours = [name for name in dir(settings) if name.startswith("CELERY_")]
    assert ours, "no CELERY_ settings found"
    unknown = [name for name in ours if name.removeprefix("CELERY_").lower() not in known]
    assert not unknown, f"not Celery settings (typo?): {unknown}"


def test_long_job_task_settings() -> None:
    from evalhub.celery import app

    assert app.conf.task_acks_late is True
    assert app.conf.task_reject_on_worker_lost is True
    assert app.conf.worker_prefetch_multiplier == 1
    assert {q.name for q in app.conf.task_queues} == {"default", "gpu"}


def test_embedded_default_needs_no_server() -> None:
    result = _run_django({"EVALHUB_MODE": "development"}, "shell", "-c",
                         "from django.conf import settings as s; print(s.DATABASES['default']['ENGINE'], s.CELERY_BROKER_URL)")
    assert result.returncode == 0, result.stderr
    assert "sqlite3 filesystem://" in result.stdout
