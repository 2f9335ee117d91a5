"""The access chokepoint.

Every page, API view and task reaches project data through `project_get_for_user` (or `scoped_get`, which calls it).
Rules:
- not a member (or not logged in): 404, so outsiders cannot even learn that a project or object exists;
- a member whose role is too weak: 403 (they know the project; they just may not do this);
- only leads see which model wrote an output (`Access.sees_model_identity`).
Superusers act as leads everywhere (they run the installation through the admin anyway).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import PermissionDenied
from django.db.models import Model, QuerySet
from django.http import Http404

from evalhub.projects.models import Membership, Project, Role

M = TypeVar("M", bound=Model)
AnyUser = AbstractBaseUser | AnonymousUser


@dataclass(frozen=True)
class Access:
    project: Project
    user: AbstractBaseUser
    role: str

    def at_least(self, role: str) -> bool:
        return Role.rank(self.role) >= Role.rank(role)

    @property
    def is_lead(self) -> bool:
        return self.role == Role.LEAD

    @property
    def is_reviewer(self) -> bool:
        return self.at_least(Role.REVIEWER)

    @property
    def sees_model_identity(self) -> bool:
        return self.role == Role.LEAD


def role_for(user: AnyUser, project_id: int) -> str | None:
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return None
    if user.is_superuser:
        return Role.LEAD
    return Membership.objects.filter(project_id=project_id, user_id=user.pk).values_list("role", flat=True).first()


def project_get_for_user(user: AnyUser, project_id: int | str, *, min_role: str = Role.ANNOTATOR) -> Access:
    try:
        pid = int(project_id)
    except (TypeError, ValueError):
        raise Http404("No such project") from None
    role = role_for(user, pid)
    if role is None:
        raise Http404("No such project")
    project = Project.objects.filter(pk=pid).first()
    if project is None:
        raise Http404("No such project")
    if Role.rank(role) < Role.rank(min_role):
        raise PermissionDenied(f"This needs the {Role(min_role).label.lower()} role in {project.name}.")
    return Access(project=project, user=user, role=role)  # type: ignore[arg-type]


def scoped_get(
    user: AnyUser,
    queryset: QuerySet[M],
    *,
    project_id: int | str,
    min_role: str = Role.ANNOTATOR,
    project_field: str = "project",
    **lookup: Any,
) -> tuple[Access, M]:
    """Fetch one object that must belong to `project_id` (via `project_field`), after the membership check."""
    access = project_get_for_user(user, project_id, min_role=min_role)
    obj = queryset.filter(**{project_field: access.project.pk}, **lookup).first()
    if obj is None:
        raise Http404("Not found")
    return access, obj


def projects_for_user(user: AnyUser) -> QuerySet[Project]:
    if not getattr(user, "is_authenticated", False):
        return Project.objects.none()
    if user.is_superuser:
        return Project.objects.all()
    return Project.objects.filter(memberships__user=user).distinct()


def project_view(min_role: str = Role.ANNOTATOR):  # type: ignore[no-untyped-def]
    """Decorator for page views under /p/<project_id>/: login, then the chokepoint; passes `access` to the view."""
    from functools import wraps

    from django.contrib.auth.views import redirect_to_login

    def decorator(view):  # type: ignore[no-untyped-def]
        @wraps(view)
        def wrapped(request, project_id: int, *args, **kwargs):  # type: ignore[no-untyped-def]
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            access = project_get_for_user(request.user, project_id, min_role=min_role)
            request.access = access
            return view(request, access, *args, **kwargs)

        wrapped.min_role = min_role  # type: ignore[attr-defined]
        return wrapped

    return decorator
