"""Queries of the feedback app, scoped through an `Access` from the chokepoint, and the project's story: which model
version came from which annotations, and how it compared with its parent (arena Elo and metric deltas with
intervals). Everything here names model versions, so callers show it to leads only."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Count, QuerySet
from django.http import Http404

from evalhub.feedback.models import FeedbackExport, RetrainPipeline, RetrainStatus
from evalhub.metrics.labels import metric_label
from evalhub.projects.access import Access
from evalhub.projects.models import Project
from trainer.metrics import METRICS

STORY_METRIC_ORDER = ("rougeL", "rouge1", "chrf", "bleu", "bertscore", "token_f1")


def exports(access: Access) -> QuerySet[FeedbackExport]:
    return FeedbackExport.objects.filter(project=access.project).select_related(
        "version__dataset", "created_by"
    )


def export_get(access: Access, export_id: int | str) -> FeedbackExport:
    try:
        pk = int(export_id)
    except (TypeError, ValueError):
        raise Http404("No such export") from None
    found = exports(access).filter(pk=pk).first()
    if found is None:
        raise Http404("No such export")
    return found


def pipelines(access: Access) -> QuerySet[RetrainPipeline]:
    return RetrainPipeline.objects.filter(project=access.project).select_related(
        "parent",
        "new_version",
        "eval_version__dataset",
        "sft_export",
        "dpo_export",
        "sft_run__job",
        "dpo_run__job",
        "new_generation__job",
        "parent_generation__job",
        "new_metrics__job",
        "parent_metrics__job",
        "arena_campaign",
    )


def pipeline_get(access: Access, pipeline_id: int | str) -> RetrainPipeline:
    try:
        pk = int(pipeline_id)
    except (TypeError, ValueError):
        raise Http404("No such retrain") from None
    found = pipelines(access).filter(pk=pk).first()
    if found is None:
        raise Http404("No such retrain")
    return found


# --------------------------------------------------------------------------------------------------------------------
# Comparisons with the parent


@dataclass(frozen=True)
class Delta:
    """New minus parent, with its interval."""

    name: str
    value: float
    low: float
    high: float
    n: int
    unit: str = ""  # "Elo" for arena ratings
    direction: int = 1  # +1 higher is better, -1 lower is better, 0 neither (length describes, it does not grade)

    @property
    def better(self) -> bool | None:
        """Whether the new version is better: True / False once the interval excludes zero, else None."""
        return self.value * self.direction > 0 if self.decided and self.direction else None

    @property
    def decided(self) -> bool:
        return not (math.isnan(self.low) or math.isnan(self.high)) and (self.low > 0 or self.high < 0)

    def _fmt(self, x: float) -> str:
        if math.isnan(x):
            return "?"
        return f"{x:+.0f}" if self.unit == "Elo" else f"{x:+.2f}"

    @property
    def text(self) -> str:
        interval = f"[{self._fmt(self.low)}, {self._fmt(self.high)}]"
        if self.unit == "Elo":
            return f"{self._fmt(self.value)} Elo {interval}"
        return f"{self.name} {self._fmt(self.value)} {interval}"

    def as_dict(self) -> dict[str, Any]:
        def num(x: float) -> float | None:
            return None if math.isnan(x) else float(x)

        return {
            "name": self.name,
            "value": num(self.value),
            "low": num(self.low),
            "high": num(self.high),
            "n": self.n,
            "unit": self.unit,
            "decided": self.decided,
            "better": self.better,
            "text": self.text,
        }


def elo_delta(campaign: Any, new_version_id: int, parent_id: int) -> tuple[Delta | None, str]:
    """(Elo of new minus parent with its bootstrap interval, or None with the reason)."""
    from evalhub.arena.selectors import leaderboard

    board = leaderboard(campaign)
    index = {c.model_version_id: c.index for c in board.contestants}
    if new_version_id not in index or parent_id not in index:
        return None, "not both in the arena campaign"
    if board.board.empty:
        return None, "no arena votes yet"
    i, j = index[new_version_id], index[parent_id]
    pair = board.board.pair(i, j)
    if pair is None or pair.battles == 0:
        return None, "no arena votes between them yet"
    d = pair.difference  # R_lo - R_hi for lo < hi
    if i > j:
        value, low, high = -d.value, -d.high, -d.low
    else:
        value, low, high = d.value, d.low, d.high
    return Delta("Elo", value, low, high, pair.battles, unit="Elo"), ""


def _direction(metric: str) -> int:
    spec = METRICS.get(metric)
    if spec is None or spec.higher_is_better is None:
        return 0 if spec is not None else 1
    return 1 if spec.higher_is_better else -1


def metric_deltas(parent_run: Any, new_run: Any) -> list[Delta]:
    """Paired bootstrap of new minus parent per metric (matched by example), story metrics first."""
    from evalhub.metrics.selectors import run_comparison

    table = run_comparison(parent_run, new_run)
    rows = {r.metric: r.comparison for r in table.overall()}
    order = [m for m in STORY_METRIC_ORDER if m in rows] + sorted(
        m for m in rows if m not in STORY_METRIC_ORDER
    )
    return [
        Delta(metric_label(m), rows[m].delta, rows[m].low, rows[m].high, rows[m].n, direction=_direction(m))
        for m in order
    ]


def _latest_metric_runs(version: Any, parent: Any) -> tuple[Any, Any] | None:
    """The newest succeeded metric runs of the two versions on one eval set, if there are any."""
    from evalhub.metrics.models import MetricRun

    mine = (
        MetricRun.objects.filter(generation_run__model_version=version, status="succeeded")
        .select_related("generation_run")
        .order_by("-created_at")
    )
    for run in mine:
        other = (
            MetricRun.objects.filter(
                generation_run__model_version=parent,
                generation_run__eval_version_id=run.generation_run.eval_version_id,
                status="succeeded",
            )
            .order_by("-created_at")
            .first()
        )
        if other is not None:
            return other, run
    return None


def _latest_campaign(version: Any, parent: Any) -> Any:
    from evalhub.arena.models import Campaign

    return (
        Campaign.objects.filter(contestants__model_version=version)
        .filter(contestants__model_version=parent)
        .order_by("-created_at")
        .first()
    )


# --------------------------------------------------------------------------------------------------------------------
# The story of each version


@dataclass
class VersionEntry:
    """One model version on the timeline: where it came from and how it compared with its parent."""

    version: Any
    parent: Any
    objective: str  # "", "sft" or "dpo"
    method: str
    data: list[dict[str, Any]] = field(default_factory=list)  # each dataset version it learned from
    exports: list[FeedbackExport] = field(
        default_factory=list
    )  # feedback exports behind it (its own and, for a
    # retrain's DPO step, the SFT step's too)
    pipeline: RetrainPipeline | None = None
    elo: Delta | None = None
    elo_note: str = ""
    metrics: list[Delta] = field(default_factory=list)
    campaign: Any = None

    @property
    def annotations(self) -> int:
        return sum(e.annotations_used for e in self.exports)

    @property
    def records(self) -> int:
        return sum(e.records for e in self.exports)

    @property
    def sentence(self) -> str:
        """e.g. "v3, trained on 420 annotations: +38 Elo [+12, +61] vs v2, ROUGE-L +0.02 [-0.01, +0.05]"."""
        head = f"v{self.version.number}"
        if self.exports:
            head += f", trained on {self.annotations:,} annotation{'s' if self.annotations != 1 else ''}"
        if self.parent is None:
            return head
        parts: list[str] = []
        parts.append(
            f"{self.elo.text} vs v{self.parent.number}"
            if self.elo
            else f"vs v{self.parent.number}" + (f" ({self.elo_note})" if self.elo_note else "")
        )
        if self.metrics:
            parts.append(self.metrics[0].text)
        return f"{head}: {', '.join(parts)}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": {"id": self.version.pk, "number": self.version.number, "name": self.version.name},
            "parent": {"id": self.parent.pk, "number": self.parent.number, "name": self.parent.name}
            if self.parent
            else None,
            "objective": self.objective,
            "method": self.method,
            "data": self.data,
            "exports": [
                {
                    "id": e.pk,
                    "name": e.name,
                    "kind": e.kind,
                    "sources": e.sources,
                    "records": e.records,
                    "annotations": e.annotations_used,
                    "leaked": (e.counts or {}).get("leaked", 0),
                }
                for e in self.exports
            ],
            "annotations": self.annotations,
            "retrain": self.pipeline.pk if self.pipeline else None,
            "elo": self.elo.as_dict() if self.elo else None,
            "elo_note": self.elo_note,
            "metrics": [m.as_dict() for m in self.metrics],
            "sentence": self.sentence,
            "arena_campaign": self.campaign.pk if self.campaign else None,
        }


def _data_of(
    version: Any, exports_by_version: dict[int, FeedbackExport]
) -> tuple[list[dict[str, Any]], list[FeedbackExport]]:
    from evalhub.datasets.models import DatasetVersion

    entries = (version.lineage or {}).get("datasets", []) if version.training_run_id else []
    labels = dict(
        DatasetVersion.objects.filter(pk__in=[d.get("version_id") for d in entries]).values_list(
            "pk", "number"
        )
    )
    data, used = [], []
    for d in entries:
        export = exports_by_version.get(d.get("version_id"))
        data.append(
            {
                "role": d.get("role"),
                "version_id": d.get("version_id"),
                "label": d.get("label"),
                "rows": d.get("rows_used"),
                "exists": d.get("version_id") in labels,
                "feedback_export": export.pk if export else None,
            }
        )
        if export is not None:
            used.append(export)
    return data, used


def timeline(project: Project, *, with_comparisons: bool = True) -> list[VersionEntry]:
    """Every model version of the project, newest first, with its data, annotations and comparison with its parent."""
    from evalhub.tuning.models import ModelVersion

    versions = list(
        ModelVersion.objects.filter(project=project)
        .select_related("training_run", "parent")
        .order_by("-number")
    )
    exports_by_version = {
        e.version_id: e for e in FeedbackExport.objects.filter(project=project, version__isnull=False)
    }
    by_new = {
        p.new_version_id: p
        for p in RetrainPipeline.objects.filter(project=project, new_version__isnull=False).select_related(
            "sft_export", "dpo_export", "parent", "parent_metrics", "new_metrics", "arena_campaign"
        )
    }
    entries: list[VersionEntry] = []
    for v in versions:
        run = v.training_run
        data, used = _data_of(v, exports_by_version)
        pipeline = by_new.get(v.pk)
        parent = v.parent
        if pipeline is not None:
            # A retrain's new version is compared with the version the retrain started from (for SFT then DPO,
            # the DPO version's direct parent is the intermediate SFT version).
            parent = pipeline.parent
            used = [e for e in (pipeline.sft_export, pipeline.dpo_export) if e is not None]
        entry = VersionEntry(
            version=v,
            parent=parent,
            objective=run.objective if run else "",
            method=run.method if run else "base",
            data=data,
            exports=used,
            pipeline=pipeline,
        )
        if with_comparisons and parent is not None:
            _compare(entry, pipeline)
        entries.append(entry)
    return entries


def _compare(entry: VersionEntry, pipeline: RetrainPipeline | None) -> None:
    from django.core.exceptions import ValidationError

    runs = None
    campaign = None
    if pipeline is not None:
        if (
            pipeline.parent_metrics
            and pipeline.new_metrics
            and pipeline.new_metrics.status == "succeeded"
            and pipeline.parent_metrics.status == "succeeded"
        ):
            runs = (pipeline.parent_metrics, pipeline.new_metrics)
        campaign = pipeline.arena_campaign
    runs = runs or _latest_metric_runs(entry.version, entry.parent)
    if runs is not None:
        try:
            entry.metrics = metric_deltas(*runs)
        except ValidationError:
            entry.metrics = []
    campaign = campaign or _latest_campaign(entry.version, entry.parent)
    entry.campaign = campaign
    if campaign is not None:
        entry.elo, entry.elo_note = elo_delta(campaign, entry.version.pk, entry.parent.pk)
    else:
        entry.elo_note = "no arena campaign with both"


def project_story(project: Project, *, limit: int = 3) -> list[VersionEntry]:
    """The newest versions trained from feedback, for the project page (leads only: it names model versions)."""
    retrained = {
        p.new_version_id
        for p in RetrainPipeline.objects.filter(
            project=project, status=RetrainStatus.SUCCEEDED, new_version__isnull=False
        )
    }
    fed = set(
        FeedbackExport.objects.filter(project=project, version__isnull=False).values_list(
            "version_id", flat=True
        )
    )
    entries = []
    for entry in timeline(project, with_comparisons=False):
        if entry.version.pk in retrained or any(d.get("version_id") in fed for d in entry.data):
            if entry.parent is not None:
                _compare(entry, entry.pipeline)
            entries.append(entry)
        if len(entries) >= limit:
            break
    return entries


def story_context(access: Access) -> dict[str, Any]:
    """Template context for the project page's story block: empty for anyone but a lead (it names versions)."""
    if not access.sees_model_identity:
        return {}
    return {"feedback_story": project_story(access.project)}


# --------------------------------------------------------------------------------------------------------------------
# The project overview


@dataclass(frozen=True)
class FeedbackSummary:
    exports: int
    exports_by_kind: dict[str, int]
    retrains_by_status: dict[str, int]

    @property
    def retrains(self) -> int:
        return sum(self.retrains_by_status.values())


def feedback_summary(project: Project) -> FeedbackSummary:
    by_kind = dict(FeedbackExport.objects.filter(project=project).values_list("kind").annotate(n=Count("id")).order_by())
    by_status = dict(
        RetrainPipeline.objects.filter(project=project).values_list("status").annotate(n=Count("id")).order_by()
    )
    return FeedbackSummary(exports=sum(by_kind.values()), exports_by_kind=by_kind, retrains_by_status=by_status)
