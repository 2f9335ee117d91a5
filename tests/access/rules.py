from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

ROLE_ORDER = ["annotator", "reviewer", "lead"]


@dataclass(frozen=True)
class Rule:
    """Who may use a URL.

    min_role: "public" (anyone), "login" (any signed-in user; not tied to a project), or the weakest project role
    that may use it ("annotator", "reviewer", "lead"). kwargs(world, objects) builds the URL arguments.
    """

    min_role: str
    kwargs: Callable[[Any, dict[str, Any]], dict[str, Any]] = field(default=lambda w, o: {})
    methods: tuple[str, ...] = ("GET",)
    data: dict[str, Any] | None = None


def project(w: Any, o: dict[str, Any]) -> dict[str, Any]:
    return {"project_id": w.project.pk}


def with_project(**names: str) -> Callable[[Any, dict[str, Any]], dict[str, Any]]:
    """kwargs builder: project_id plus e.g. job_id=objects["job"].pk for with_project(job_id="job")."""

    def build(w: Any, o: dict[str, Any]) -> dict[str, Any]:
        return {"project_id": w.project.pk, **{k: o[v].pk for k, v in names.items()}}

    return build
