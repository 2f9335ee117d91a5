"""The project home: where each role starts.

Annotators and reviewers get "Your work": one row per open thing they can do now (review campaigns, arena campaigns,
curation queues, and for reviewers adjudications), built only from the blind selectors, so nothing here names a model
version, a run or an output. Leads get "The loop": one card per stage with live numbers, and the jobs running now.

Every number comes from a selector of the app that owns it; each is a handful of aggregate queries, never a loop
over a big table.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from django.urls import NoReverseMatch, reverse

from evalhub.metrics.labels import metric_label
from evalhub.projects.access import Access

JOB_LABELS = {
    "tuning.train": "Training",
    "tuning.sweep": "Sweep",
    "tuning.export_merged": "Merged export",
    "generation.generate": "Generation",
    "metrics.score": "Metrics",
    "metrics.score_gpu": "Metrics (BERTScore)",
    "datasets.quality_report": "Quality report",
    "jobs.ping": "Ping",
    "jobs.ping_gpu": "GPU ping",
}
STATUS_ORDER = ("running", "queued", "succeeded", "failed", "cancelled")


def _url(name: str, project_id: int, query: Mapping[str, Any] | None = None, **kwargs: Any) -> str | None:
    """The URL, or None where that stage's app is not installed (urls.py includes stage apps optionally)."""
    try:
        url = reverse(name, kwargs={"project_id": project_id, **kwargs})
    except NoReverseMatch:
        return None
    return f"{url}?{urlencode(query)}" if query else url


def _plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n:,} {word if n == 1 else (many or word + 's')}"


def _by_status(counts: Mapping[str, int], order: Iterable[str] = STATUS_ORDER) -> str:
    keys = [k for k in order if counts.get(k)] + sorted(k for k in counts if k not in order and counts[k])
    return " · ".join(f"{counts[k]:,} {k}" for k in keys)


# --------------------------------------------------------------------------------------------------------------------
# Annotators and reviewers: "Your work"


@dataclass(frozen=True)
class WorkRow:
    """One open thing this person can do now. Blind by construction: a campaign or queue name and counts."""

    kind: str  # "Review", "Arena", "Curation", "Adjudication"
    title: str
    progress: str  # e.g. "You rated 3 of about 36"
    percent: float | None  # None: no bar (a queue to empty, not a share to fill)
    action: str
    url: str | None


def work_for(access: Access) -> list[WorkRow]:
    from evalhub.arena import selectors as arena
    from evalhub.datasets import selectors as datasets
    from evalhub.reviews import selectors as reviews

    pid = access.project.pk
    rows: list[WorkRow] = []
    for w in reviews.work_for(access):
        rows.append(WorkRow(
            kind="Review", title=w.campaign.name,
            progress=f"You rated {w.mine:,} of about {w.target:,}",
            percent=w.percent, action="Continue" if w.started else "Start rating",
            url=_url("reviews:next", pid, campaign_id=w.campaign.pk),
        ))
    for v in arena.work_for(access):
        rows.append(WorkRow(
            kind="Arena", title=v.campaign.name,
            progress=f"You voted {v.my_votes:,} times · {_plural(v.left, 'comparison')} left for you",
            percent=v.percent, action="Continue voting" if v.held or v.my_votes else "Start voting",
            url=_url("arena:vote", pid, campaign_id=v.campaign.pk),
        ))
    for q in datasets.open_queues(access.project):
        left = q.n_items - q.n_done  # type: ignore[attr-defined]
        if left <= 0:
            continue
        rows.append(WorkRow(
            kind="Curation", title=q.name,
            progress=f"{_plural(left, 'example')} left of {q.n_items:,}",  # type: ignore[attr-defined]
            percent=100.0 * q.n_done / q.n_items if q.n_items else None,  # type: ignore[attr-defined]
            action="Start curating", url=_url("datasets:curation-annotate", pid, queue_id=q.pk),
        ))
    if access.is_reviewer:
        for campaign, waiting in reviews.adjudications_waiting(access.project):
            rows.append(WorkRow(
                kind="Adjudication", title=campaign.name,
                progress=f"{_plural(waiting, 'item')} where raters disagree, waiting for a reviewer",
                percent=None, action="Adjudicate",
                url=_url("reviews:adjudications", pid, campaign_id=campaign.pk),
            ))
    return rows


# --------------------------------------------------------------------------------------------------------------------
# Leads: "The loop"


@dataclass(frozen=True)
class Line:
    label: str
    value: str
    url: str | None = None
    warn: bool = False


@dataclass(frozen=True)
class Bar:
    label: str
    percent: float
    right: str
    url: str | None = None


@dataclass
class StageCard:
    number: int
    title: str
    url: str | None
    lines: list[Line] = field(default_factory=list)
    bars: list[Bar] = field(default_factory=list)
    empty: str = ""  # shown when the stage has nothing yet: what to do first


def _data_card(access: Access) -> StageCard:
    from evalhub.datasets.selectors import data_summary

    pid = access.project.pk
    s = data_summary(access.project)
    card = StageCard(1, "Data", _url("datasets:list", pid))
    if not s.datasets:
        card.empty = "No dataset yet. Upload a file to start."
        return card
    card.lines.append(Line("Datasets", f"{s.datasets:,} ({_plural(s.versions, 'version')})"))
    if s.latest is not None:
        card.lines.append(Line("Latest version", f"{s.latest.label} · {_plural(s.latest.row_count, 'row')}",
                               _url("datasets:version", pid, version_id=s.latest.pk)))
    if s.reports:
        value = f"{s.findings:,} across {_plural(s.reports, 'report')}" if s.reports > 1 else f"{s.findings:,}"
        card.lines.append(Line("Quality findings", value if s.findings else "none",
                               _url("datasets:quality", pid, report_id=s.findings_report_id)
                               if s.findings_report_id else None, warn=bool(s.findings)))
    else:
        card.lines.append(Line("Quality findings", "no quality report yet"))
    if s.open_queues:
        card.lines.append(Line("Curation", f"{_plural(s.open_queues, 'queue')} open"))
    return card


def _tuning_card(access: Access) -> StageCard:
    from evalhub.tuning.selectors import training_summary

    pid = access.project.pk
    s = training_summary(access.project)
    card = StageCard(2, "Fine-tuning", _url("tuning:list", pid))
    if not s.runs_by_status and s.latest is None:
        card.empty = "No training run yet. Launch a LoRA run on a train split."
        return card
    card.lines.append(Line("Runs", _by_status(s.runs_by_status) or "none"))
    if s.latest is not None:
        loss = f" · best val loss {s.latest_loss:.4f}" if s.latest_loss is not None else ""
        card.lines.append(Line("Latest model", f"{s.latest}{loss}",
                               _url("tuning:model-detail", pid, version_id=s.latest.pk)))
    if s.best is not None and s.best_loss is not None:
        card.lines.append(Line("Lowest val loss", f"{s.best} · {s.best_loss:.4f}",
                               _url("tuning:model-detail", pid, version_id=s.best.pk)))
    for run in s.running:
        job = run.job
        if job is None:
            continue
        card.bars.append(Bar(run.name, 100.0 * job.fraction,
                             f"step {job.progress_current:,.0f} of {job.progress_total:,.0f}",
                             _url("tuning:run-detail", pid, run_id=run.pk)))
    return card


def _measure_card(access: Access) -> StageCard:
    from evalhub.generation.selectors import runs_by_status
    from evalhub.metrics.selectors import latest_headline

    pid = access.project.pk
    runs = runs_by_status(access.project)
    card = StageCard(3, "Generate & measure", _url("generation:list", pid))
    if not runs:
        card.empty = "No generation run yet. Generate with a model version on a held-out eval split."
        return card
    card.lines.append(Line("Generation runs", _by_status(runs)))
    headline = latest_headline(access.project)
    if headline is None:
        card.lines.append(Line("Metrics", "no two versions measured on one eval set yet", _url("metrics:list", pid)))
        return card
    va, vb = headline.a.generation_run.model_version, headline.b.generation_run.model_version
    compare = _url("metrics:compare", pid, query={"a": headline.a.pk, "b": headline.b.pk, "slice": ""})
    card.lines.append(Line("Compared", f"v{va.number} → v{vb.number} on {headline.b.generation_run.eval_version}",
                           compare))
    for metric, mean_a, mean_b in headline.means:
        def fmt(x: float | None) -> str:
            return "–" if x is None or math.isnan(x) else f"{x:.3f}"

        delta = ""
        if mean_a is not None and mean_b is not None:
            delta = f" ({mean_b - mean_a:+.3f})"
        card.lines.append(Line(metric_label(metric), f"{fmt(mean_a)} → {fmt(mean_b)}{delta}", compare))
    return card


def _reviews_card(access: Access) -> StageCard:
    from evalhub.reviews.selectors import campaigns_status

    pid = access.project.pk
    rows = campaigns_status(access.project)
    card = StageCard(4, "Reviews", _url("reviews:list", pid))
    if not rows:
        card.empty = "No review campaign yet. Pick a rubric and start one over your generation runs."
        return card
    for r in rows:
        state = "" if r.campaign.is_open else " (closed)"
        card.bars.append(Bar(f"{r.campaign.name}{state}", r.percent, f"{r.done:,} of {r.wanted:,} ratings",
                             _url("reviews:campaign", pid, campaign_id=r.campaign.pk)))
    waiting = [r for r in rows if r.waiting]
    total = sum(r.waiting for r in waiting)
    card.lines.append(Line(
        "Needs adjudication", _plural(total, "item") if total else "nothing",
        _url("reviews:adjudications", pid, campaign_id=waiting[0].campaign.pk) if waiting else None, warn=bool(total),
    ))
    return card


def _arena_card(access: Access) -> StageCard:
    from evalhub.arena.selectors import current_leader

    pid = access.project.pk
    card = StageCard(5, "Arena", _url("arena:list", pid))
    leader = current_leader(access.project)
    if leader is None:
        card.empty = "No arena votes yet. Open a campaign over two or more generation runs."
        return card
    board = _url("arena:leaderboard", pid, campaign_id=leader.campaign.pk)
    interval = f" [{leader.low:.0f}, {leader.high:.0f}]" if not (math.isnan(leader.low) or math.isnan(leader.high)) else ""
    if leader.tied_with:
        # Rank 1 is shared: calling the top row "the leader" would claim more than the votes show.
        others = ", ".join(leader.tied_with)
        card.lines.append(Line("Ahead", f"{leader.name} · {leader.rating:.0f}{interval} Elo", board))
        card.lines.append(Line("Not decided", f"shares rank 1 with {others}: intervals overlap", board))
    else:
        card.lines.append(Line("Leader", f"{leader.name} · {leader.rating:.0f}{interval} Elo", board))
    card.lines.append(Line("Votes", f"{leader.votes:,} in {leader.campaign.name} ({leader.contestants} versions)",
                           _url("arena:detail", pid, campaign_id=leader.campaign.pk)))
    return card


def _feedback_card(access: Access) -> StageCard:
    from evalhub.feedback.selectors import feedback_summary

    pid = access.project.pk
    s = feedback_summary(access.project)
    card = StageCard(6, "Feedback", _url("feedback:list", pid))
    if not s.exports and not s.retrains:
        card.empty = "No export yet. Turn ratings, corrections and votes into SFT or DPO data."
        return card
    kinds = " · ".join(f"{n:,} {k.upper()}" for k, n in sorted(s.exports_by_kind.items()))
    card.lines.append(Line("Exports", f"{s.exports:,}" + (f" ({kinds})" if kinds else "")))
    card.lines.append(Line("Retrains", f"{s.retrains:,}" + (f" ({_by_status(s.retrains_by_status)})" if s.retrains else ""),
                           _url("feedback:timeline", pid)))
    return card


def stage_cards(access: Access) -> list[StageCard]:
    return [build(access) for build in (_data_card, _tuning_card, _measure_card, _reviews_card, _arena_card,
                                        _feedback_card)]


def running_jobs(access: Access, *, limit: int = 10) -> list[Any]:
    from evalhub.jobs.models import Job, JobStatus

    jobs = list(
        Job.objects.filter(project=access.project, status__in=[JobStatus.RUNNING, JobStatus.QUEUED])
        .defer("log", "result", "params")
        .order_by("-status", "-created_at", "-id")[:limit]  # descending puts "running" before "queued"
    )
    for job in jobs:
        job.label = JOB_LABELS.get(job.kind, job.kind)  # type: ignore[attr-defined]
    return jobs


# --------------------------------------------------------------------------------------------------------------------


@dataclass
class Overview:
    work: list[WorkRow] = field(default_factory=list)
    stages: list[StageCard] = field(default_factory=list)
    jobs: list[Any] = field(default_factory=list)


def overview_for(access: Access) -> Overview:
    """What the project page shows this person: the loop for leads, their own open work for everyone else."""
    if access.is_lead:
        return Overview(stages=stage_cards(access), jobs=running_jobs(access))
    return Overview(work=work_for(access))
