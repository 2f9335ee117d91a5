"""Benchmark `review_latency`: p95 latency of "submit a rating and get the next item" with 50 concurrent annotators
against a PostgreSQL database holding 1,000,000 outputs, divided by the p95 of a trivial authenticated view measured
in the same run with the same 50 threads.

Setup: a separate database (`evalhub_bench`, created and dropped here; EVALHUB_BENCH_DATABASE_URL overrides) is
migrated, then 10,000 examples and 1,000,000 outputs (100 generation runs of 4 model versions) are loaded with
COPY. A campaign is created with the real service over every run: 2,000 examples sampled stratified by category,
so 200,000 outputs become items, k = 3. Fifty annotators each get a DRF client with its own token and its own
database connection (one thread each, Django's connections are per thread).

Ours: POST /api/projects/<p>/reviews/campaigns/<c>/ratings/ (validate, store the rating, take the next item with
SKIP LOCKED, return it with progress). Baseline: GET /api/projects/<p>/ (token authentication, the access
chokepoint, one row serialised). Both run through the full Django + DRF stack (middleware, routing, auth,
rendering) via in-process clients over real PostgreSQL connections; the baseline is measured before and after
ours and its two phases are pooled.

Parity: every submit answered 201 with a next item; afterwards no item has more than k live assignments or
ratings, no annotator holds one output twice, and the stored ratings equal the submits made.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse, urlunparse

import numpy as np

N_OUTPUTS = int(os.environ.get("EVALHUB_BENCH_OUTPUTS", "1000000"))
N_EXAMPLES = int(os.environ.get("EVALHUB_BENCH_EXAMPLES", "10000"))
N_VERSIONS = 4
N_ANNOTATORS = int(os.environ.get("EVALHUB_BENCH_ANNOTATORS", "50"))
REQUESTS = int(os.environ.get("EVALHUB_BENCH_REQUESTS", "30"))  # per annotator and phase
WARMUP = 3
SAMPLE_EXAMPLES = 2000
K = 3
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/evalhub_bench"
CATEGORIES = ["shoes", "kitchen", "garden", "office", "toys", "sports"]


def _admin_url(url: str) -> tuple[str, str]:
    parts = urlparse(url)
    name = parts.path.lstrip("/")
    return urlunparse(parts._replace(path="/postgres")), name


def _recreate_database(url: str, *, drop_only: bool = False) -> None:
    import psycopg
    from psycopg import sql

    admin, name = _admin_url(url)
    if not name.startswith("evalhub_bench"):
        raise SystemExit(f"refusing to drop database {name!r}: the bench only manages evalhub_bench*")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        if not drop_only:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def _setup_django(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ["DEBUG"] = "0"  # DEBUG keeps every query in memory; production runs without it
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "evalhub.settings")
    import django
    from django.conf import settings

    if settings.configured and settings.DATABASES["default"]["NAME"] != _admin_url(url)[1]:
        raise SystemExit("Django is already set up with another database; run this bench in its own process")
    django.setup()


def _copy(cursor: Any, model: Any, columns: list[str], rows: Any) -> None:
    """COPY rows of `model` giving `columns` per row; every other column gets the field's default, so the bench
    keeps working when an app adds a column with a default."""
    from django.db import connection
    from django.utils import timezone

    given = set(columns)
    extra_cols: list[str] = []
    extra_vals: list[Any] = []
    for f in model._meta.concrete_fields:
        if f.primary_key or f.column in given:
            continue
        if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False):
            value: Any = timezone.now()
        elif f.has_default() or not f.null:
            value = f.get_db_prep_save(f.get_default(), connection)
        else:
            continue
        extra_cols.append(f.column)
        extra_vals.append(value)
    cols = ", ".join(columns + extra_cols)
    tail = tuple(extra_vals)
    with cursor.copy(f"COPY {model._meta.db_table} ({cols}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(tuple(row) + tail)


def _load(n_outputs: int) -> dict[str, Any]:
    """Users, project, examples and outputs. Small tables through the ORM, the big ones with COPY."""
    from django.contrib.auth import get_user_model
    from django.db import connection
    from rest_framework.authtoken.models import Token

    from evalhub.datasets.models import Dataset, DatasetVersion, Example, VersionSource
    from evalhub.generation.models import GenerationRun, Output, RunStatus
    from evalhub.projects.models import Membership, Project, Role
    from evalhub.tuning.models import BaseModel, ModelVersion

    User = get_user_model()
    lead = User.objects.create_user("bench-lead")
    project = Project.objects.create(name="Bench", created_by=lead)
    Membership.objects.create(project=project, user=lead, role=Role.LEAD)
    annotators = []
    for i in range(N_ANNOTATORS):
        u = User.objects.create_user(f"annotator-{i:02d}")
        Membership.objects.create(project=project, user=u, role=Role.ANNOTATOR)
        annotators.append((u, Token.objects.create(user=u).key))
    dataset = Dataset.objects.create(project=project, name="catalogue")
    version = DatasetVersion.objects.create(
        dataset=dataset, number=1, source=VersionSource.UPLOAD, content_hash="0" * 64, row_count=N_EXAMPLES,
        attribute_names=["category"],
    )
    base = BaseModel.objects.create(name="bench-base", source_kind="gguf", path_or_id="/dev/null")
    versions = [
        ModelVersion.objects.create(project=project, number=i + 1, name=f"adapter-{i + 1}", base_model=base)
        for i in range(N_VERSIONS)
    ]
    n_runs = max(1, n_outputs // N_EXAMPLES)
    runs = [
        GenerationRun.objects.create(
            project=project, model_version=versions[i % N_VERSIONS], eval_version=version, status=RunStatus.SUCCEEDED
        )
        for i in range(n_runs)
    ]
    connection.ensure_connection()
    raw = connection.connection
    with raw.cursor() as cur:
        _copy(cur, Example, ["version_id", "index", "external_id", "prompt", "attributes"],
              ((version.pk, i, f"sku-{i}", f"Write a product description for item {i}.",
                f'{{"category": "{CATEGORIES[i % len(CATEGORIES)]}"}}') for i in range(N_EXAMPLES)))
        cur.execute(f"SELECT id FROM {Example._meta.db_table} WHERE version_id = %s ORDER BY index", [version.pk])
        example_ids = [r[0] for r in cur.fetchall()]
        per_run = n_outputs // n_runs
        _copy(cur, Output, ["run_id", "example_id", "text", "prompt_tokens", "output_tokens", "finish_reason"],
              ((run.pk, example_ids[i],
                f"Model {run.model_version_id} copy for item {i}: sturdy, light and built to last.", 12, 24, "stop")
               for run in runs for i in range(per_run)))
        cur.execute(f"ANALYZE {Example._meta.db_table}")
        cur.execute(f"ANALYZE {Output._meta.db_table}")
    raw.commit()
    return {"project": project, "lead": lead, "annotators": annotators, "runs": runs,
            "outputs": Output.objects.count()}


def _measure(clients: list[Any], step: Callable[[int, Any], float], n: int) -> list[float]:
    """Each thread runs `step(i, client)` n times at once with the others; returns every latency in seconds."""
    from django.db import connections

    barrier = threading.Barrier(len(clients))
    latencies: list[list[float]] = [[] for _ in clients]
    errors: list[BaseException] = []

    def work(idx: int) -> None:
        try:
            barrier.wait(timeout=120)
            for _ in range(n):
                latencies[idx].append(step(idx, clients[idx]))
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(clients))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return [x for per in latencies for x in per]


def run() -> dict[str, Any]:
    url = os.environ.get("EVALHUB_BENCH_DATABASE_URL", DEFAULT_URL)
    _recreate_database(url)
    try:
        return _run(url)
    finally:
        from django.db import connections

        connections.close_all()
        _recreate_database(url, drop_only=True)


def _run(url: str) -> dict[str, Any]:
    _setup_django(url)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from rest_framework.test import APIClient

    from evalhub.reviews import services
    from evalhub.reviews.models import Assignment, AssignmentStatus, CampaignItem, Rating

    t0 = time.perf_counter()
    data = _load(N_OUTPUTS)
    load_s = time.perf_counter() - t0
    project = data["project"]
    rubric = services.rubric_copy_template(project=project, template="content", created_by=data["lead"])
    t0 = time.perf_counter()
    campaign = services.campaign_create(
        project=project, name="Bench", rubric_version=services.rubric_latest_version(rubric),
        sample=services.SampleSpec(run_ids=tuple(r.pk for r in data["runs"]), sample_size=SAMPLE_EXAMPLES,
                                   stratify_by="category", seed=1),
        overlap=K, created_by=data["lead"], annotator_ids=[u.pk for u, _ in data["annotators"]],
    )
    campaign_s = time.perf_counter() - t0

    clients = []
    for _user, key in data["annotators"]:
        c = APIClient()
        c.credentials(HTTP_AUTHORIZATION=f"Token {key}")
        clients.append(c)
    base = f"/api/projects/{project.pk}"
    submit_url = f"{base}/reviews/campaigns/{campaign.pk}/ratings/"
    tokens: list[str] = []
    for c in clients:
        r = c.get(f"{base}/reviews/campaigns/{campaign.pk}/next/")
        assert r.status_code == 200, r.content
        tokens.append(r.json()["item"]["assignment"])
    failures: list[str] = []
    values = {"Creativity": 4, "Accuracy": 5, "Tone": "On brand", "Relevance": 4}

    def trivial(idx: int, c: Any) -> float:
        t = time.perf_counter()
        r = c.get(f"{base}/")
        dt = time.perf_counter() - t
        if r.status_code != 200:
            failures.append(f"trivial {r.status_code}")
        return dt

    def submit(idx: int, c: Any) -> float:
        t = time.perf_counter()
        r = c.post(submit_url, {"assignment": tokens[idx], "values": values, "seconds_on_item": 7.5,
                                "submission_token": f"{idx}-{tokens[idx]}"}, format="json")
        dt = time.perf_counter() - t
        body = r.json()
        if r.status_code != 201 or not body.get("item"):
            failures.append(f"submit {r.status_code} {str(body)[:200]}")
        else:
            tokens[idx] = body["item"]["assignment"]
        return dt

    _measure(clients, trivial, WARMUP)
    _measure(clients, submit, WARMUP)
    ratings_before = Rating.objects.count()
    base_a = _measure(clients, trivial, REQUESTS)
    ours = _measure(clients, submit, REQUESTS)
    base_b = _measure(clients, trivial, REQUESTS)
    baseline = base_a + base_b
    submits = len(ours)

    live = (
        Assignment.objects.filter(campaign=campaign, status__in=[AssignmentStatus.ACTIVE, AssignmentStatus.SUBMITTED])
        .values("item_id").order_by().annotate(n=__import__("django.db.models", fromlist=["Count"]).Count("pk"))
    )
    max_live = max((row["n"] for row in live), default=0)
    duplicates = (
        Assignment.objects.filter(campaign=campaign).values("item_id", "annotator_id").order_by()
        .annotate(n=__import__("django.db.models", fromlist=["Count"]).Count("pk")).filter(n__gt=1).count()
    )
    stored = Rating.objects.count() - ratings_before
    negative_slots = CampaignItem.objects.filter(campaign=campaign, open_slots__lt=0).count()
    ok = not failures and max_live <= K and duplicates == 0 and stored == submits and negative_slots == 0

    p95_ours = float(np.percentile(ours, 95))
    p95_base = float(np.percentile(baseline, 95))
    ratio = p95_ours / p95_base
    return {
        "ratio": ratio,
        "ours": p95_ours,
        "baseline": p95_base,
        "unit": "p95 seconds per request, 50 concurrent annotators",
        "outputs_equal": ok,
        "parity": {
            "failures": failures[:5], "max_live_assignments_per_item": max_live, "k": K,
            "duplicate_item_annotator": duplicates, "ratings_stored": stored, "submits": submits,
        },
        "median_ours": float(np.median(ours)),
        "median_baseline": float(np.median(baseline)),
        "p95_baseline_before": float(np.percentile(base_a, 95)),
        "p95_baseline_after": float(np.percentile(base_b, 95)),
        "p99_ours": float(np.percentile(ours, 99)),
        "outputs_in_database": data["outputs"],
        "campaign_items": campaign.item_count,
        "annotators": N_ANNOTATORS,
        "requests_per_annotator": REQUESTS,
        "load_s": round(load_s, 2),
        "campaign_create_s": round(campaign_s, 2),
        "summary": (
            f"submit+next p95 {p95_ours * 1000:.1f} ms vs trivial authenticated view p95 {p95_base * 1000:.1f} ms "
            f"with {N_ANNOTATORS} concurrent annotators, {data['outputs']:,} outputs, "
            f"{campaign.item_count:,} campaign items (k={K}); invariants {'hold' if ok else 'BROKEN'}"
        ),
    }
