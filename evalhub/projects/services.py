from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction

from evalhub.projects.models import Membership, Project, Role


@transaction.atomic
def project_create(*, name: str, created_by: AbstractBaseUser, description: str = "", task_instructions: str = "") -> Project:
    name = name.strip()
    if not name:
        raise ValidationError({"name": "A project needs a name."})
    project = Project.objects.create(
        name=name, description=description, task_instructions=task_instructions, created_by=created_by
    )
    Membership.objects.create(project=project, user=created_by, role=Role.LEAD)
    return project


@transaction.atomic
def membership_set(*, project: Project, username: str, role: str) -> Membership:
    if role not in Role.values:
        raise ValidationError({"role": f"Unknown role {role!r}; choose one of {', '.join(Role.values)}."})
    user = get_user_model().objects.filter(username=username.strip()).first()
    if user is None:
        raise ValidationError({"username": f"No user called {username!r}."})
    membership, created = Membership.objects.select_for_update().get_or_create(
        project=project, user=user, defaults={"role": role}
    )
    if not created and membership.role != role:
        _guard_last_lead(project, membership, new_role=role)
        membership.role = role
        membership.save(update_fields=["role"])
    return membership


@transaction.atomic
def membership_remove(*, project: Project, membership_id: int) -> None:
    membership = Membership.objects.select_for_update().filter(project=project, pk=membership_id).first()
    if membership is None:
        raise ValidationError({"membership": "No such member in this project."})
    _guard_last_lead(project, membership, new_role=None)
    membership.delete()


def _guard_last_lead(project: Project, membership: Membership, *, new_role: str | None) -> None:
    if membership.role == Role.LEAD and new_role != Role.LEAD:
        leads = Membership.objects.filter(project=project, role=Role.LEAD).count()
        if leads <= 1:
            raise ValidationError({"role": "A project must keep at least one lead."})
