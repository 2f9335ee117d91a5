from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.arena.factories import Eval, eval_with_runs


@pytest.fixture
def ev(world: Any) -> Eval:
    """Six prompts answered by three model versions (v1..v3, named copywriter-a..c)."""
    return eval_with_runs(world.project, n_examples=6, n_versions=3)


@pytest.fixture
def annotators(world: Any) -> Callable[[int], list[Any]]:
    """annotators(n) -> n new annotator members of world.project."""
    from django.contrib.auth import get_user_model

    from evalhub.projects.models import Membership, Role

    def make(n: int) -> list[Any]:
        User = get_user_model()
        start = User.objects.count()
        users = [User.objects.create_user(f"rater{start + i}", password="x") for i in range(n)]
        for u in users:
            Membership.objects.create(project=world.project, user=u, role=Role.ANNOTATOR)
        return users

    return make
