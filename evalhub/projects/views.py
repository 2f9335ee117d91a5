from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from evalhub.projects import services
from evalhub.projects.access import Access, project_view, projects_for_user
from evalhub.projects.forms import MemberForm, ProjectForm
from evalhub.projects.models import Membership, Role


@login_required
def project_list(request: HttpRequest) -> HttpResponse:
    projects = projects_for_user(request.user).prefetch_related("memberships")
    roles = dict(Membership.objects.filter(user=request.user).values_list("project_id", "role"))
    rows = [(p, roles.get(p.pk, Role.LEAD if request.user.is_superuser else "")) for p in projects]
    return render(request, "projects/list.html", {"rows": rows})


@login_required
@require_http_methods(["GET", "POST"])
def project_create(request: HttpRequest) -> HttpResponse:
    form = ProjectForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        project = services.project_create(created_by=request.user, **form.cleaned_data)
        messages.success(request, f"Project “{project.name}” created. You are its lead.")
        return redirect("projects:detail", project_id=project.pk)
    return render(request, "projects/form.html", {"form": form})


@project_view()
def project_detail(request: HttpRequest, access: Access) -> HttpResponse:
    from evalhub.feedback.selectors import story_context
    from evalhub.projects.overview import overview_for

    return render(request, "projects/detail.html", {"overview": overview_for(access), **story_context(access)})


@project_view(min_role=Role.LEAD)
@require_http_methods(["GET", "POST"])
def project_members(request: HttpRequest, access: Access) -> HttpResponse:
    form = MemberForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.membership_set(project=access.project, **form.cleaned_data)
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            messages.success(request, f"{form.cleaned_data['username']} is now {form.cleaned_data['role']}.")
            return redirect("projects:members", project_id=access.project.pk)
    members = Membership.objects.filter(project=access.project).select_related("user")
    return render(request, "projects/members.html", {"form": form, "members": members})


@project_view(min_role=Role.LEAD)
@require_POST
def project_member_remove(request: HttpRequest, access: Access, membership_id: int) -> HttpResponse:
    try:
        services.membership_remove(project=access.project, membership_id=membership_id)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect("projects:members", project_id=access.project.pk)
