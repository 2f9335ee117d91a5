from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Django's ValidationError from a service becomes a 400 naming the fields, like DRF's own."""
    if isinstance(exc, ValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        return Response(detail, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    return drf_exception_handler(exc, context)


class ProjectScopedMixin:
    """For API views under /api/projects/<project_id>/...: runs the access chokepoint before the handler.

    `min_role` applies to reads, `min_role_write` (default: same) to unsafe methods. Outsiders get 404.
    """

    min_role: str = "annotator"
    min_role_write: str | None = None

    def initial(self, request: Any, *args: Any, **kwargs: Any) -> None:
        from rest_framework.permissions import SAFE_METHODS

        from evalhub.projects.access import project_get_for_user

        super().initial(request, *args, **kwargs)  # type: ignore[misc]  # authentication + IsAuthenticated first
        role = self.min_role if request.method in SAFE_METHODS else (self.min_role_write or self.min_role)
        self.access = project_get_for_user(request.user, kwargs["project_id"], min_role=role)
