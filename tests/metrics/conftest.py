"""Fixtures for metrics tests: two model versions with finished generation runs on one eval set (no model needed)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.generation import factories


@pytest.fixture
def eval_version(world: Any) -> Any:
    """Twelve examples: enough pairs for a comparison verdict (see aggregates.MIN_PAIRS_FOR_VERDICT)."""
    return factories.make_eval_version(world.project, repeat=2)


@pytest.fixture
def two_runs(world: Any, eval_version: Any) -> tuple[Any, Any]:
    """Generation runs of version A and version B over the same 12-example eval set."""
    from evalhub.tuning.models import BaseModel

    base = BaseModel.objects.create(name="metrics-base", source_kind="folder", path_or_id="/nonexistent")
    va = factories.make_version(world.project, base, number=1, name="baseline")
    vb = factories.make_version(world.project, base, number=2, name="candidate")
    refs = list(eval_version.examples.order_by("index").values_list("reference", flat=True))
    run_a = factories.make_run_with_outputs(world.project, va, eval_version, ["Nice product." for _ in refs])
    run_b = factories.make_run_with_outputs(world.project, vb, eval_version, refs)
    return run_a, run_b
