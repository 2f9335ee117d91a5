"""Queries of the datasets app. Every lookup by id goes through the access chokepoint, so an id from another
project is a 404 whatever the caller's role there."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Prefetch, Q, QuerySet, Sum

from evalhub.datasets.models import (
    CurationItem,
    CurationQueue,
    Dataset,
    DatasetVersion,
    Example,
    QualityReport,
)
from evalhub.projects.access import Access, AnyUser, scoped_get
from evalhub.projects.models import Project, Role


def dataset_list(project: Project) -> QuerySet[Dataset]:
    versions = DatasetVersion.objects.select_related("parent").order_by("number")
    return Dataset.objects.filter(project=project).prefetch_related(Prefetch("versions", queryset=versions))


def dataset_get(user: AnyUser, project_id: int | str, dataset_id: int, *,
                min_role: str = Role.ANNOTATOR) -> tuple[Access, Dataset]:
    return scoped_get(user, Dataset.objects.all(), project_id=project_id, min_role=min_role, pk=dataset_id)


def version_get(user: AnyUser, project_id: int | str, version_id: int | str, *,
                min_role: str = Role.ANNOTATOR) -> tuple[Access, DatasetVersion]:
    return scoped_get(user, DatasetVersion.objects.select_related("dataset", "parent"), project_id=project_id,
                      min_role=min_role, project_field="dataset__project", pk=version_id)


def version_in_project(project: Project, version_id: int | str | None) -> DatasetVersion | None:
    """A version of this project by id, or None (for optional form fields such as "compare to")."""
    if version_id in (None, ""):
        return None
    try:
        pk = int(version_id)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return DatasetVersion.objects.select_related("dataset").filter(dataset__project=project, pk=pk).first()


def versions_of_project(project: Project) -> QuerySet[DatasetVersion]:
    return DatasetVersion.objects.filter(dataset__project=project).select_related("dataset").order_by(
        "dataset__name", "number")


def report_get(user: AnyUser, project_id: int | str, report_id: int | str, *,
               min_role: str = Role.ANNOTATOR) -> tuple[Access, QualityReport]:
    qs = QualityReport.objects.select_related("version__dataset", "compare_to__dataset", "job")
    return scoped_get(user, qs, project_id=project_id, min_role=min_role,
                      project_field="version__dataset__project", pk=report_id)


def queue_get(user: AnyUser, project_id: int | str, queue_id: int | str, *,
              min_role: str = Role.ANNOTATOR) -> tuple[Access, CurationQueue]:
    qs = CurationQueue.objects.select_related("version__dataset", "result_version")
    return scoped_get(user, qs, project_id=project_id, min_role=min_role,
                      project_field="version__dataset__project", pk=queue_id)


def examples_search(version: DatasetVersion, query: str = "") -> QuerySet[Example]:
    qs = version.examples.order_by("index")
    query = query.strip()
    if query:
        qs = qs.filter(Q(prompt__icontains=query) | Q(reference__icontains=query) | Q(label__iexact=query)
                       | Q(external_id__iexact=query))
    return qs


@dataclass
class Lineage:
    ancestors: list[DatasetVersion]  # oldest first
    children: list[DatasetVersion]


def version_lineage(version: DatasetVersion) -> Lineage:
    ancestors: list[DatasetVersion] = []
    current = version.parent
    seen = {version.pk}
    while current is not None and current.pk not in seen:  # the chain is short; `seen` guards against a bad row
        ancestors.append(current)
        seen.add(current.pk)
        current = current.parent
    ancestors.reverse()
    children = list(version.children.order_by("number"))
    return Lineage(ancestors=ancestors, children=children)


def version_reports(version: DatasetVersion) -> QuerySet[QualityReport]:
    return version.quality_reports.select_related("job", "compare_to__dataset").order_by("-created_at")


def version_queues(version: DatasetVersion) -> QuerySet[CurationQueue]:
    return version.curation_queues.annotate(
        n_items=Count("items"),
        n_done=Count("items", filter=~Q(items__decision=CurationItem.Decision.PENDING)),
    ).order_by("-created_at")


def project_queues(project: Project) -> QuerySet[CurationQueue]:
    return CurationQueue.objects.filter(version__dataset__project=project).select_related(
        "version__dataset").annotate(
        n_items=Count("items"),
        n_done=Count("items", filter=~Q(items__decision=CurationItem.Decision.PENDING)),
    ).order_by("status", "-created_at")


def queue_progress(queue: CurationQueue, user: AnyUser | None = None) -> dict[str, Any]:
    items = queue.items.all()
    totals = items.aggregate(
        total=Count("id"),
        done=Count("id", filter=~Q(decision=CurationItem.Decision.PENDING)),
        seconds=Sum("seconds_spent"),
    )
    out: dict[str, Any] = {"total": totals["total"], "done": totals["done"], "seconds": totals["seconds"] or 0.0}
    out["fraction"] = out["done"] / out["total"] if out["total"] else 0.0
    if user is not None:
        out["mine"] = items.filter(decided_by=user).exclude(decision=CurationItem.Decision.PENDING).count()
    return out


def queue_annotators(queue: CurationQueue) -> list[dict[str, Any]]:
    """Per annotator: how many decided, of which kind, and the mean seconds per decision (the lead's overview)."""
    rows = (queue.items.exclude(decision=CurationItem.Decision.PENDING)
            .values("decided_by__username")
            .annotate(n=Count("id"), seconds=Sum("seconds_spent"),
                      accepted=Count("id", filter=Q(decision=CurationItem.Decision.ACCEPT)),
                      rejected=Count("id", filter=Q(decision=CurationItem.Decision.REJECT)),
                      fixed=Count("id", filter=Q(decision=CurationItem.Decision.FIX)))
            .order_by("decided_by__username"))
    return [{**r, "mean_seconds": (r["seconds"] or 0) / r["n"] if r["n"] else 0.0} for r in rows]


def my_decided_items(queue: CurationQueue, user: AnyUser) -> QuerySet[CurationItem]:
    return queue.items.filter(decided_by=user).exclude(decision=CurationItem.Decision.PENDING).order_by("position")


# --------------------------------------------------------------------------------------------------------------------
# The project overview


@dataclass(frozen=True)
class DataSummary:
    datasets: int
    versions: int
    latest: DatasetVersion | None
    findings: int  # in the newest quality report of each version that has one
    reports: int  # how many reports those findings come from
    findings_report_id: int | None  # the newest report with findings, to link to
    open_queues: int


def data_summary(project: Project) -> DataSummary:
    counts = Dataset.objects.filter(project=project).aggregate(
        datasets=Count("id", distinct=True), versions=Count("versions", distinct=True)
    )
    latest = versions_of_project(project).order_by("-created_at", "-id").first()
    newest_per_version: dict[int, tuple[int, list[Any]]] = {}
    rows = (QualityReport.objects.filter(version__dataset__project=project, report__has_key="findings")
            .order_by("version_id", "-created_at", "-id").values_list("version_id", "pk", "report__findings"))
    for version_id, report_id, findings in rows:
        newest_per_version.setdefault(version_id, (report_id, findings if isinstance(findings, list) else []))
    with_findings = sorted((rid for rid, f in newest_per_version.values() if f), reverse=True)
    return DataSummary(
        datasets=counts["datasets"], versions=counts["versions"], latest=latest,
        findings=sum(len(f) for _, f in newest_per_version.values()), reports=len(newest_per_version),
        findings_report_id=with_findings[0] if with_findings else None,
        open_queues=CurationQueue.objects.filter(version__dataset__project=project,
                                                 status=CurationQueue.Status.OPEN).count(),
    )


def open_queues(project: Project) -> list[CurationQueue]:
    """Open curation queues with `n_items` / `n_done` (every member may curate), newest first."""
    return list(project_queues(project).filter(status=CurationQueue.Status.OPEN).order_by("-created_at", "-id"))
