from __future__ import annotations

from typing import Any

from django.http import HttpRequest


def project_nav(request: HttpRequest) -> dict[str, Any]:
    """Puts the current project (set by the chokepoint) into every template, for the stage navigation."""
    access = getattr(request, "access", None)
    return {"access": access, "project": access.project if access else None}
