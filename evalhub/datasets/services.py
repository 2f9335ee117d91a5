"""Every state change of datasets, versions, quality reports and curation queues.

Views, the API, jobs and the demo loader call these functions; nothing else writes these tables. Versions are
immutable: each change (upload, split, rebalance, curation) creates a new DatasetVersion whose `parent` and
`change_summary` say where it came from.
"""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import Max, Q
from django.utils import timezone

from evalhub.datasets import ingest
from evalhub.datasets.models import (
    CurationItem,
    CurationQueue,
    Dataset,
    DatasetVersion,
    Example,
    QualityReport,
    VersionKind,
    VersionSource,
)
from evalhub.projects.models import Project

BATCH_SIZE = 1000
# Columns of Example with a length limit in the database; the importer itself allows longer single values.
_SHORT_FIELDS: dict[str, int] = {"external_id": 200, "label": 200}
QUALITY_JOB_KIND = "datasets.quality_report"


# --------------------------------------------------------------------------------------------------------------------
# Converting between stored rows and the importer's plain examples


def example_to_plain(row: Example) -> ingest.Example:
    """A stored example as the importer's value type (empty strings back to None), e.g. for content hashes."""
    return ingest.Example(
        prompt=row.prompt if row.messages is None else None,
        messages=row.messages,
        reference=row.reference or None,
        label=row.label or None,
        attributes=dict(row.attributes or {}),
        source_line=row.source_line or 0,
        external_id=row.external_id or None,
    )


def _row_from_plain(version: DatasetVersion, index: int, ex: ingest.Example) -> Example:
    return Example(
        version=version,
        index=index,
        external_id=ex.external_id or "",
        prompt=ex.prompt or "",
        messages=ex.messages,
        reference=ex.reference or "",
        label=ex.label or "",
        attributes=dict(ex.attributes),
        source_line=ex.source_line or None,
    )


def _check_short_fields(examples: Sequence[ingest.Example], file: str, unit: str) -> None:
    """Ids and labels go into bounded columns; say which line is too long instead of failing in the database."""
    errors: list[ingest.RowError] = []
    for ex in examples:
        for name, limit in _SHORT_FIELDS.items():
            value = getattr(ex, name) or ""
            if len(value) > limit:
                errors.append(ingest.RowError(file, ex.source_line, name,
                                              f"is {len(value):,} characters long; at most {limit} are allowed",
                                              unit))  # type: ignore[arg-type]
                if len(errors) >= ingest.MAX_ERRORS:
                    raise ingest.DatasetImportError(errors, truncated=True)
    if errors:
        raise ingest.DatasetImportError(errors)


# --------------------------------------------------------------------------------------------------------------------
# Versions


def _identical_version(dataset: Dataset, content_hash: str) -> DatasetVersion | None:
    return dataset.versions.filter(content_hash=content_hash).order_by("number").first()


def _version_create(
    *,
    dataset: Dataset,
    examples: Sequence[ingest.Example],
    source: str,
    created_by: AbstractBaseUser | None,
    parent: DatasetVersion | None = None,
    split_name: str = "",
    file_name: str = "",
    file_format: str = "",
    mapping: dict[str, Any] | None = None,
    attribute_names: list[str] | None = None,
    change_summary: dict[str, Any] | None = None,
    note: str = "",
    content_hash: str | None = None,
) -> DatasetVersion:
    """Store one new version with its examples. Call inside a transaction holding the dataset's row lock."""
    digest = content_hash or ingest.content_hash(examples)
    same = _identical_version(dataset, digest)
    if same is not None:
        raise ValidationError(
            f"Nothing new: the content is identical to v{same.number} of “{dataset.name}”, so no version was created."
        )
    number = (dataset.versions.aggregate(n=Max("number"))["n"] or 0) + 1
    if attribute_names is None:
        attribute_names = list(dict.fromkeys(k for ex in examples for k in ex.attributes))
    version = DatasetVersion(
        dataset=dataset,
        number=number,
        parent=parent,
        source=source,
        split_name=split_name,
        content_hash=digest,
        row_count=len(examples),
        file_name=file_name[:255],
        file_format=file_format,
        mapping=mapping or (parent.mapping if parent else {}),
        attribute_names=attribute_names,
        has_reference=any(ex.reference for ex in examples),
        has_label=any(ex.label for ex in examples),
        change_summary=change_summary or {},
        note=note,
        created_by=created_by,
    )
    version.save(force_insert=True)
    for start in range(0, len(examples), BATCH_SIZE):
        batch = examples[start:start + BATCH_SIZE]
        Example.objects.bulk_create([_row_from_plain(version, start + i, ex) for i, ex in enumerate(batch)])
    return version


def _lock_dataset(dataset: Dataset) -> Dataset:
    """Serialises version numbering per dataset (PostgreSQL row lock; SQLite's writer lock does the same)."""
    return Dataset.objects.select_for_update().get(pk=dataset.pk)


def _require_examples_kind(version: DatasetVersion, action: str) -> None:
    """Splits, re-balancing and curation work on prompt/reference examples; a preference version's rejected
    answers would be lost on the way, so those are refused rather than silently changed."""
    if version.kind != VersionKind.EXAMPLES:
        raise ValidationError(f"{version} holds preference pairs (chosen and rejected answers); it cannot be {action} "
                              "here.")


def _plain_examples(version: DatasetVersion) -> list[ingest.Example]:
    return [example_to_plain(row) for row in version.examples.order_by("index").iterator(chunk_size=2000)]


def mapping_to_dict(mapping: ingest.ColumnMapping) -> dict[str, Any]:
    return {"prompt": mapping.prompt, "messages": mapping.messages, "reference": mapping.reference,
            "label": mapping.label, "attributes": list(mapping.attributes), "id": mapping.id,
            "reference_from_messages": mapping.reference_from_messages}


def import_limits() -> ingest.Limits:
    return ingest.Limits(
        max_bytes=settings.DATASET_MAX_UPLOAD_BYTES,
        max_rows=settings.DATASET_MAX_ROWS,
        max_field_chars=getattr(settings, "DATASET_MAX_FIELD_CHARS", ingest.Limits().max_field_chars),
    )


def dataset_import(
    *,
    project: Project,
    user: AbstractBaseUser | None,
    path: Path,
    display_name: str,
    mapping: ingest.ColumnMapping,
    dataset_name: str | None = None,
    dataset: Dataset | None = None,
    fmt: str | None = None,
    note: str = "",
    description: str = "",
    source: str = VersionSource.UPLOAD,
    limits: ingest.Limits | None = None,
) -> DatasetVersion:
    """Read and validate the file, then store it as the next version of `dataset` (or of a new dataset).

    All or nothing: any bad row raises `ingest.DatasetImportError` (every problem, each naming file, line and field)
    before anything is written; a name clash or content identical to an existing version raises ValidationError.
    Either way no row of any datasets table is created.
    """
    if (dataset is None) == (not (dataset_name or "").strip()):
        raise ValidationError({"dataset": "Choose an existing dataset or give a name for a new one (not both)."})
    if dataset is not None and dataset.project_id != project.pk:
        raise ValidationError({"dataset": "That dataset belongs to another project."})
    parsed = ingest.read_examples(Path(path), fmt=fmt or None, mapping=mapping, limits=limits or import_limits(),
                                  display_name=display_name)
    _check_short_fields(parsed.examples, display_name, "row" if parsed.fmt in ("parquet", "hf_folder") else "line")
    try:
        with transaction.atomic():
            if dataset is None:
                name = (dataset_name or "").strip()
                if Dataset.objects.filter(project=project, name=name).exists():
                    raise ValidationError({"dataset_name": f"A dataset called “{name}” already exists in this project; "
                                                           "choose it to add a new version."})
                dataset = Dataset.objects.create(project=project, name=name[:200], description=description,
                                                 created_by=user)
            locked = _lock_dataset(dataset)
            return _version_create(
                dataset=locked, examples=parsed.examples, source=source, created_by=user, file_name=display_name,
                file_format=parsed.fmt, mapping=mapping_to_dict(mapping), attribute_names=list(mapping.attributes),
                note=note, content_hash=parsed.content_hash,
                change_summary={"imported_rows": parsed.n_rows, "columns": parsed.columns},
            )
    except IntegrityError as exc:  # two uploads racing for the same new name or version number
        raise ValidationError("Another upload changed this dataset at the same moment; please try again.") from exc


def version_split(
    *,
    version: DatasetVersion,
    user: AbstractBaseUser | None,
    fractions: dict[str, float] | None = None,
    seed: int = 0,
    stratify_by: str | None = None,
) -> list[DatasetVersion]:
    """Split into child versions named by split (train / validation / eval by default), seeded and optionally
    stratified by an attribute. Each child has `parent=version`; the same split twice is refused as identical."""
    from evalhub.datasets import curation

    _require_examples_kind(version, "split")
    fractions = fractions or {"train": 0.8, "validation": 0.1, "eval": 0.1}
    if stratify_by and stratify_by not in (version.attribute_names or []):
        raise ValidationError({"stratify_by": f"“{stratify_by}” is not an attribute of this version."})
    plain = _plain_examples(version)
    try:
        parts = curation.split(plain, fractions=fractions, seed=seed, stratify_by=stratify_by or None)
    except ValueError as exc:
        raise ValidationError(str(exc)) from exc
    if sum(1 for idx in parts.values() if idx) < 2:
        raise ValidationError(f"{version} has too few distinct prompts to split ({version.row_count} rows).")
    params = {"fractions": fractions, "seed": seed, "stratify_by": stratify_by or None}
    with transaction.atomic():
        dataset = _lock_dataset(version.dataset)
        children: list[DatasetVersion] = []
        for name, indices in parts.items():
            if not indices:
                continue  # a tiny version cannot fill every part; an empty version would only confuse
            examples = [plain[i] for i in indices]
            children.append(_version_create(
                dataset=dataset, examples=examples, source=VersionSource.SPLIT, created_by=user, parent=version,
                split_name=name, attribute_names=list(version.attribute_names or []),
                change_summary={"split": name, "of_rows": version.row_count, **params},
                note=f"{name} split of v{version.number} ({len(examples)} of {version.row_count} rows, seed {seed}"
                     + (f", stratified by {stratify_by})" if stratify_by else ")"),
            ))
    return children


def version_rebalance(
    *,
    version: DatasetVersion,
    user: AbstractBaseUser | None,
    attribute: str,
    mode: str = "down",
    seed: int = 0,
) -> DatasetVersion:
    """A child version in which every value of `attribute` has the same number of rows: down-sampled to the rarest
    value, or up-sampled (with replacement, seeded) to the most common one."""
    from evalhub.datasets import curation

    _require_examples_kind(version, "re-balanced")
    if attribute not in (version.attribute_names or []) and attribute != "label":
        raise ValidationError({"attribute": f"“{attribute}” is not an attribute of this version."})
    if mode not in ("down", "up"):
        raise ValidationError({"mode": "Choose down-sampling or up-sampling."})
    plain = _plain_examples(version)
    try:
        balanced = [plain[i] for i in curation.rebalance(plain, attribute=attribute, mode=mode, seed=seed)]  # type: ignore[arg-type]
    except ValueError as exc:
        raise ValidationError(str(exc)) from exc
    if not balanced:
        raise ValidationError({"attribute": f"No example has a value for “{attribute}”."})
    before = _value_counts(plain, attribute)
    after = _value_counts(balanced, attribute)
    with transaction.atomic():
        dataset = _lock_dataset(version.dataset)
        return _version_create(
            dataset=dataset, examples=balanced, source=VersionSource.REBALANCE, created_by=user, parent=version,
            split_name=version.split_name, attribute_names=list(version.attribute_names or []),
            change_summary={"attribute": attribute, "mode": mode, "seed": seed, "before": before, "after": after},
            note=f"{'down' if mode == 'down' else 'up'}-sampled v{version.number} to balance {attribute}",
        )


def _value_counts(examples: Sequence[ingest.Example], attribute: str) -> dict[str, int]:
    from evalhub.datasets.curation import attribute_values

    counts: dict[str, int] = {}
    for value in attribute_values(examples, attribute):
        counts[value] = counts.get(value, 0) + 1
    return dict(sorted(counts.items()))


# --------------------------------------------------------------------------------------------------------------------
# Quality reports


def quality_report_request(
    *, version: DatasetVersion, user: AbstractBaseUser | None, compare_to: DatasetVersion | None = None,
    run_now: bool = False,
) -> QualityReport:
    """Create the report row and its job. The job goes to a worker once the surrounding transaction commits, or,
    with `run_now` (the demo loader, small versions), runs here through the same job mechanism before returning."""
    from evalhub.jobs.models import Job
    from evalhub.jobs.registry import get_kind
    from evalhub.jobs.services import job_create
    from evalhub.jobs.tasks import execute_job

    if compare_to is not None:
        if compare_to.dataset.project_id != version.dataset.project_id:
            raise ValidationError({"compare_to": "Compare only with a version of the same project."})
        if compare_to.pk == version.pk:
            raise ValidationError({"compare_to": "Compare with a different version."})
    params = {"version_id": version.pk, "compare_to_id": compare_to.pk if compare_to else None}
    with transaction.atomic():
        if run_now:
            job = Job.objects.create(project=version.dataset.project, kind=QUALITY_JOB_KIND, created_by=user,
                                     queue=get_kind(QUALITY_JOB_KIND).queue, params=params, message="Running here")
        else:
            job = job_create(project=version.dataset.project, kind=QUALITY_JOB_KIND, created_by=user, params=params)
        report = QualityReport.objects.create(version=version, compare_to=compare_to, job=job)
    if run_now:
        execute_job(job.pk)
        report.refresh_from_db()
        job.refresh_from_db()
        if job.status != "succeeded":
            raise RuntimeError(f"quality report job {job.pk} ended {job.status}: {job.error}")
    return report


def quality_report_compute(*, report: QualityReport, progress: Callable[[int, int, str], None] | None = None
                           ) -> dict[str, Any]:
    """Compute and store the report (the job handler calls this; the demo loader calls it directly)."""
    from evalhub.datasets import quality

    def step(n: int, message: str) -> None:
        if progress is not None:
            progress(n, 3, message)

    step(0, "Loading examples")
    examples = _plain_examples(report.version)
    other = _plain_examples(report.compare_to) if report.compare_to_id else None
    step(1, f"Analysing {len(examples):,} examples" + (f" against {len(other):,}" if other is not None else ""))
    data = quality.quality_report(examples, compare_to=other)
    # Round-trip through JSON so numpy scalars or tuples fail here, not in the database driver.
    data = json.loads(json.dumps(data, default=_json_default))
    step(2, "Saving the report")
    QualityReport.objects.filter(pk=report.pk).update(report=data)
    report.report = data
    return data


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


# --------------------------------------------------------------------------------------------------------------------
# Curation


def curation_queue_create(
    *,
    version: DatasetVersion,
    name: str,
    created_by: AbstractBaseUser | None,
    instructions: str = "",
    label_choices: Sequence[str] = (),
    sample_size: int | None = None,
    seed: int = 0,
    example_ids: Sequence[int] | None = None,
    claim_minutes: int = 15,
) -> CurationQueue:
    """A labeling queue over a version: all its examples, the given ones, or a seeded random sample."""
    _require_examples_kind(version, "curated in a queue")
    name = name.strip()
    if not name:
        raise ValidationError({"name": "A queue needs a name."})
    labels = list(dict.fromkeys(label.strip() for label in label_choices if label.strip()))
    if len(labels) > 9:
        raise ValidationError({"label_choices": "At most 9 labels (one per digit key 1-9)."})
    if any(len(label) > 200 for label in labels):
        raise ValidationError({"label_choices": "A label may be at most 200 characters long."})
    if claim_minutes < 1:
        raise ValidationError({"claim_minutes": "Claim examples for at least one minute."})
    ids = list(version.examples.order_by("index").values_list("pk", flat=True))
    if example_ids is not None:
        wanted = set(example_ids)
        ids = [pk for pk in ids if pk in wanted]
        if len(ids) != len(wanted):
            raise ValidationError({"example_ids": "Some examples are not part of this version."})
    elif sample_size is not None:
        if sample_size < 1:
            raise ValidationError({"sample_size": "Sample at least one example."})
        if sample_size < len(ids):
            ids = sorted(random.Random(seed).sample(ids, sample_size))
    if not ids:
        raise ValidationError({"sample_size": "The queue would be empty."})
    with transaction.atomic():
        queue = CurationQueue.objects.create(
            version=version, name=name[:200], instructions=instructions, label_choices=labels,
            claim_minutes=claim_minutes, created_by=created_by,
        )
        for start in range(0, len(ids), BATCH_SIZE):
            CurationItem.objects.bulk_create([
                CurationItem(queue=queue, example_id=pk, position=start + i)
                for i, pk in enumerate(ids[start:start + BATCH_SIZE])
            ])
    return queue


def _claim_expired_before(queue: CurationQueue, now: datetime) -> datetime:
    return now - timedelta(minutes=queue.claim_minutes)


def _claimable(queue: CurationQueue, now: datetime) -> Q:
    return Q(claimed_by__isnull=True) | Q(claimed_at__lt=_claim_expired_before(queue, now))


def curation_next_item(
    *, queue: CurationQueue, user: AbstractBaseUser, now: datetime | None = None
) -> CurationItem | None:
    """The pending example this annotator should see: the one they already hold, else the first free one, claimed
    for `queue.claim_minutes` so no other annotator is shown it meanwhile. None when nothing is left for them."""
    if queue.status != CurationQueue.Status.OPEN:
        return None
    now = now or timezone.now()
    pending = CurationItem.objects.filter(queue=queue, decision=CurationItem.Decision.PENDING)
    held = pending.filter(claimed_by=user, claimed_at__gte=_claim_expired_before(queue, now)).order_by("position")
    mine = held.first()
    if mine is not None:
        return mine
    # Two annotators asking at once: on PostgreSQL SKIP LOCKED hands them different rows without waiting; the
    # conditional UPDATE below is the guarantee on every database (SQLite serialises writers instead).
    for _attempt in range(20):
        with transaction.atomic():
            candidates = pending.filter(_claimable(queue, now)).order_by("position")
            if connection.features.has_select_for_update_skip_locked:
                candidates = candidates.select_for_update(skip_locked=True)
            item = candidates.first()
            if item is None:
                return None
            taken = CurationItem.objects.filter(
                _claimable(queue, now), pk=item.pk, decision=CurationItem.Decision.PENDING
            ).update(claimed_by=user, claimed_at=now)
        if taken:
            item.refresh_from_db()
            return item
    return None


def curation_release(*, item: CurationItem, user: AbstractBaseUser) -> None:
    """Give back a claimed example (skip it) so another annotator can take it."""
    CurationItem.objects.filter(pk=item.pk, claimed_by=user, decision=CurationItem.Decision.PENDING).update(
        claimed_by=None, claimed_at=None
    )


def curation_decide(
    *,
    item: CurationItem,
    user: AbstractBaseUser,
    decision: str,
    label: str = "",
    fixed_prompt: str = "",
    fixed_reference: str = "",
    comment: str = "",
    seconds_spent: float = 0.0,
    now: datetime | None = None,
) -> CurationItem:
    """Record an annotator's decision. Submitting the same decision again changes nothing (a double click or a
    retried request); a different one revises it, adding the time spent. Someone else's live claim is refused."""
    now = now or timezone.now()
    Decision = CurationItem.Decision
    if decision not in (Decision.ACCEPT, Decision.REJECT, Decision.FIX):
        raise ValidationError({"decision": "Choose accept, reject or fix."})
    label = label.strip()
    with transaction.atomic():
        item = CurationItem.objects.select_for_update().select_related("queue", "example").get(pk=item.pk)
        queue = item.queue
        if queue.status != CurationQueue.Status.OPEN:
            raise ValidationError("This queue is closed; its decisions were turned into a new version.")
        if queue.label_choices and label and label not in queue.label_choices:
            raise ValidationError({"label": f"“{label}” is not one of this queue's labels: "
                                            f"{', '.join(queue.label_choices)}."})
        if len(label) > 200:
            raise ValidationError({"label": "A label may be at most 200 characters long."})
        example = item.example
        if decision == Decision.FIX:
            fixed_prompt = fixed_prompt.replace("\r\n", "\n").strip()
            fixed_reference = fixed_reference.replace("\r\n", "\n").strip()
            original_prompt = example_editable_prompt(example)
            if not fixed_prompt:
                raise ValidationError({"fixed_prompt": "A fixed example still needs a prompt."})
            if fixed_prompt == original_prompt.strip() and fixed_reference == example.reference.strip():
                raise ValidationError({"fixed_prompt": "Nothing was edited; accept the example instead of fixing it."})
        else:
            fixed_prompt = fixed_reference = ""
        if item.decision == Decision.PENDING:
            held_by_other = (item.claimed_by_id not in (None, user.pk)
                             and item.claimed_at is not None
                             and item.claimed_at >= _claim_expired_before(queue, now))
            if held_by_other:
                raise ValidationError("Another annotator is working on this example.")
        elif item.decided_by_id != user.pk:
            raise ValidationError("Another annotator already decided this example.")
        same = (item.decision == decision and item.label == label and item.fixed_prompt == fixed_prompt
                and item.fixed_reference == fixed_reference and item.comment == comment)
        if same:
            return item
        item.decision = decision
        item.label = label
        item.fixed_prompt = fixed_prompt
        item.fixed_reference = fixed_reference
        item.comment = comment
        item.decided_by = user
        item.decided_at = now
        item.seconds_spent = item.seconds_spent + max(0.0, min(float(seconds_spent), 3600.0))
        item.claimed_by = user
        item.save()
    return item


def example_editable_prompt(example: Example) -> str:
    """What an annotator edits as "the prompt": the text, or the last user turn of a chat."""
    if example.messages:
        users = [m for m in example.messages if m.get("role") == "user"]
        return users[-1]["content"] if users else ""
    return example.prompt


def _fixed(example: Example, item: CurationItem) -> ingest.Example:
    plain = example_to_plain(example)
    prompt, messages = plain.prompt, plain.messages
    if item.fixed_prompt:
        if messages:
            messages = [dict(m) for m in messages]
            last_user = max(i for i, m in enumerate(messages) if m["role"] == "user")
            messages[last_user]["content"] = item.fixed_prompt
        else:
            prompt = item.fixed_prompt
    return ingest.Example(
        prompt=prompt, messages=messages, reference=item.fixed_reference or None, label=plain.label,
        attributes=plain.attributes, source_line=plain.source_line, external_id=plain.external_id,
    )


def curation_summary(queue: CurationQueue) -> dict[str, int]:
    """What applying the queue now would change: {accepted, rejected, fixed, relabelled, untouched, pending}."""
    counts = {"accepted": 0, "rejected": 0, "fixed": 0, "relabelled": 0, "untouched": 0, "pending": 0}
    in_queue = 0
    for item in queue.items.select_related("example").only(
        "decision", "label", "example__label"
    ).iterator(chunk_size=2000):
        in_queue += 1
        if item.decision == CurationItem.Decision.PENDING:
            counts["pending"] += 1
            continue
        counts[{"accept": "accepted", "reject": "rejected", "fix": "fixed"}[item.decision]] += 1
        if item.decision != CurationItem.Decision.REJECT and item.label and item.label != item.example.label:
            counts["relabelled"] += 1
    counts["untouched"] = queue.version.row_count - in_queue + counts["pending"]
    return counts


def curation_apply(*, queue: CurationQueue, user: AbstractBaseUser | None) -> DatasetVersion:
    """Turn the decisions into a new version (parent = the queue's version) and close the queue.

    Rejected examples are dropped, fixes replace prompt/reference, labels replace the label; undecided examples and
    those outside the queue are kept as they are. Applying an already applied queue returns its version.
    """
    with transaction.atomic():
        queue = CurationQueue.objects.select_for_update().select_related("version__dataset").get(pk=queue.pk)
        if queue.result_version_id is not None:
            return queue.result_version  # type: ignore[return-value]
        if queue.status != CurationQueue.Status.OPEN:
            raise ValidationError("This queue is closed.")
        parent = queue.version
        decided = {
            item.example_id: item
            for item in queue.items.exclude(decision=CurationItem.Decision.PENDING)
        }
        if not decided:
            raise ValidationError("No example has been decided yet; there is nothing to apply.")
        summary = curation_summary(queue)
        examples: list[ingest.Example] = []
        for row in parent.examples.order_by("index").iterator(chunk_size=2000):
            item = decided.get(row.pk)
            if item is None:
                examples.append(example_to_plain(row))
                continue
            if item.decision == CurationItem.Decision.REJECT:
                continue
            plain = _fixed(row, item) if item.decision == CurationItem.Decision.FIX else example_to_plain(row)
            if item.label:
                plain = dataclasses.replace(plain, label=item.label)
            examples.append(plain)
        if not examples:
            raise ValidationError("Every example was rejected; a version needs at least one example.")
        dataset = _lock_dataset(parent.dataset)
        version = _version_create(
            dataset=dataset, examples=examples, source=VersionSource.CURATION, created_by=user, parent=parent,
            split_name=parent.split_name, attribute_names=list(parent.attribute_names or []),
            change_summary={**summary, "queue_id": queue.pk, "queue": queue.name},
            note=f"curated in queue “{queue.name}”",
        )
        queue.status = CurationQueue.Status.CLOSED
        queue.result_version = version
        queue.save(update_fields=["status", "result_version"])
    return version


__all__ = [
    "BATCH_SIZE",
    "QUALITY_JOB_KIND",
    "curation_apply",
    "curation_decide",
    "curation_next_item",
    "curation_queue_create",
    "curation_release",
    "curation_summary",
    "dataset_import",
    "example_editable_prompt",
    "example_to_plain",
    "import_limits",
    "mapping_to_dict",
    "quality_report_compute",
    "quality_report_request",
    "version_rebalance",
    "version_split",
]
