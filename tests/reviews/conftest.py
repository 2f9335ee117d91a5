from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model

from evalhub.projects.models import Membership, Role
from tests.conftest import PASSWORD
from tests.reviews.factories import Runs, make_campaign, make_runs


@pytest.fixture
def runs(world: Any) -> Runs:
    return make_runs(world.project, n_examples=6)


@pytest.fixture
def campaign(world: Any, runs: Runs) -> Any:
    return make_campaign(world.project, world.lead, runs, overlap=2)


@pytest.fixture
def annotators(world: Any) -> list[Any]:
    """Four more annotators in the project (plus world.annotator)."""
    users = []
    for i in range(4):
        u = get_user_model().objects.create_user(f"rater{i}", password=PASSWORD)
        Membership.objects.create(project=world.project, user=u, role=Role.ANNOTATOR)
        users.append(u)
    return users
