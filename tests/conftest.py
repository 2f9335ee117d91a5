"""Shared fixtures: users in every role, a project and an outsider's project, isolated artifact storage."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_EVALUATE_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def pytest_configure(config: pytest.Config) -> None:
    # Tasks run inline in tests (the job row logic is the same); real workers are tested explicitly.
    from evalhub.celery import app

    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = True


@pytest.fixture(autouse=True)
def _test_settings(settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("artifacts")
    settings.ARTIFACT_ROOT = root
    # PBKDF2's deliberate slowness only costs time in tests, where passwords protect nothing.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    yield root


PASSWORD = "correct-horse-battery-staple"


@dataclass
class World:
    """A project P with a lead, a reviewer and an annotator, plus an outsider who annotates another project Q."""

    project: object
    other_project: object
    lead: object
    reviewer: object
    annotator: object
    outsider: object

    def user(self, role: str) -> object | None:
        return {"lead": self.lead, "reviewer": self.reviewer, "annotator": self.annotator, "outsider": self.outsider}.get(role)


@pytest.fixture
def world(db) -> World:  # type: ignore[no-untyped-def]
    from django.contrib.auth import get_user_model

    from evalhub.projects.models import Membership, Project, Role

    User = get_user_model()
    lead = User.objects.create_user("lead", password=PASSWORD)
    reviewer = User.objects.create_user("reviewer", password=PASSWORD)
    annotator = User.objects.create_user("annotator", password=PASSWORD)
    outsider = User.objects.create_user("outsider", password=PASSWORD)
    project = Project.objects.create(name="Product copy", created_by=lead)
    other = Project.objects.create(name="Legal briefs", created_by=outsider)
    Membership.objects.create(project=project, user=lead, role=Role.LEAD)
    Membership.objects.create(project=project, user=reviewer, role=Role.REVIEWER)
    Membership.objects.create(project=project, user=annotator, role=Role.ANNOTATOR)
    Membership.objects.create(project=other, user=outsider, role=Role.ANNOTATOR)
    return World(project=project, other_project=other, lead=lead, reviewer=reviewer, annotator=annotator, outsider=outsider)


@pytest.fixture
def client_for(client):  # type: ignore[no-untyped-def]
    """client_for(user) -> a Django test client logged in as that user (None = anonymous)."""

    def make(user):  # type: ignore[no-untyped-def]
        from django.test import Client

        c = Client()
        if user is not None:
            c.force_login(user)
        return c

    return make


@pytest.fixture
def api_for():  # type: ignore[no-untyped-def]
    """api_for(user) -> a DRF APIClient authenticated with that user's token (None = anonymous)."""

    def make(user):  # type: ignore[no-untyped-def]
        from rest_framework.authtoken.models import Token
        from rest_framework.test import APIClient

        c = APIClient()
        if user is not None:
            token, _ = Token.objects.get_or_create(user=user)
            c.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
        return c

    return make
