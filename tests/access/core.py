from __future__ import annotations

from typing import Any

from tests.access.rules import Rule, project, with_project


def objects(world: Any) -> dict[str, Any]:
    from evalhub.jobs.models import Job
    from evalhub.projects.models import Membership

    job = Job.objects.create(project=world.project, kind="datasets.quality_report", status="succeeded")
    membership = Membership.objects.get(project=world.project, user=world.annotator)
    return {"job": job, "membership": membership}


RULES: dict[str, Rule] = {
    "home": Rule("public"),
    "healthz": Rule("public"),
    "login": Rule("public"),
    "logout": Rule("public", methods=("POST",)),
    "api-schema": Rule("public"),
    "api-docs": Rule("public"),
    "projects:list": Rule("login"),
    "projects:create": Rule("login"),
    "projects:detail": Rule("annotator", project),
    "projects:members": Rule("lead", project),
    "projects:member-remove": Rule("lead", with_project(membership_id="membership"), methods=("POST",)),
    "jobs:list": Rule("lead", project),
    "jobs:detail": Rule("lead", with_project(job_id="job")),
    "jobs:status": Rule("annotator", with_project(job_id="job")),
    "jobs:cancel": Rule("lead", with_project(job_id="job"), methods=("POST",)),
    "api-project-list": Rule("login", methods=("GET", "POST"), data={"name": "New"}),
    "api-project-detail": Rule("annotator", project),
    "api-member-list": Rule("lead", project),
    "api-member-detail": Rule("lead", with_project(pk="membership"), methods=("DELETE",)),
    "api-job-detail": Rule("annotator", with_project(job_id="job")),
    "api-job-cancel": Rule("lead", with_project(job_id="job"), methods=("POST",)),
}
