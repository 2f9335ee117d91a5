"""Benchmark `export`: exporting 1,000,000 arena votes to DPO JSONL, streamed from the database by the real export
builder, against the same export written by iterating ORM objects.

Setup: a throwaway SQLite file in a temporary folder (its own EVALHUB_VAR_DIR, deleted afterwards) is migrated,
then loaded with raw batched INSERTs: 25,000 examples answered by two model versions (50,000 outputs), one arena
campaign with 25,000 comparisons and 40 annotators who each voted on every comparison: 1,000,000 votes (62 % for
the side naming the material, 28 % for the other, 6 % ties, 4 % both bad).

Ours: `builders.plan_export` + `builders.records` (ArenaVotes: votes read as small tuples with
`.values_list(...).iterator()`, merged in comparison order with one row of texts per comparison) written with
`formats.write_jsonl`. Baseline: the same decisions and the same records from `Vote` model instances
(`select_related` of the comparison, prompt, example and both outputs, `.iterator()`), i.e. what one writes with
the ORM's objects. Both run in this process on the same database; ours is timed as the best of two runs.

Parity: the two JSONL files are byte-identical (sha256), and hold one record per decided comparison.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import random
import shutil
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

N_COMPARISONS = int(os.environ.get("EVALHUB_BENCH_COMPARISONS", "25000"))
N_ANNOTATORS = int(os.environ.get("EVALHUB_BENCH_ANNOTATORS", "40"))
BATCH = 10_000


def _setup(folder: Path) -> None:
    os.environ["EVALHUB_VAR_DIR"] = str(folder)
    os.environ["DATABASE_URL"] = f"sqlite:///{folder / 'bench.sqlite3'}"
    os.environ["DEBUG"] = "0"  # DEBUG keeps every query in memory
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "evalhub.settings")
    import django
    from django.conf import settings

    if settings.configured and Path(settings.DATABASES["default"]["NAME"]).parent != folder:
        raise SystemExit("Django is already set up with another database; run this bench in its own process")
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _insert(table: str, columns: list[str], rows: Any) -> None:
    from django.db import connection

    quoted = ", ".join(f'"{c}"' for c in columns)  # "index" is an SQL keyword
    sql = f'INSERT INTO "{table}" ({quoted}) VALUES ({", ".join(["%s"] * len(columns))})'
    with connection.cursor() as cur:
        for chunk in iter(lambda: list(itertools.islice(rows, BATCH)), []):
            cur.executemany(sql, chunk)


def _load() -> Any:
    """The project with its annotations; returns the project."""
    from django.contrib.auth import get_user_model
    from django.db import transaction
    from django.utils import timezone

    from evalhub.arena.models import Campaign, Candidate, Comparison, Contestant, Prompt, Vote
    from evalhub.datasets.models import Dataset, DatasetVersion, Example
    from evalhub.generation.models import GenerationRun, Output
    from evalhub.projects.models import Membership, Project
    from evalhub.tuning.models import BaseModel, ModelVersion

    rng = random.Random(0)
    now = timezone.now().isoformat()
    n = N_COMPARISONS
    with transaction.atomic():
        lead = get_user_model().objects.create_user("lead")
        project = Project.objects.create(name="Bench", created_by=lead)
        users = [get_user_model().objects.create_user(f"annotator{i}") for i in range(N_ANNOTATORS)]
        Membership.objects.bulk_create([Membership(project=project, user=u, role="annotator") for u in users])
        dataset = Dataset.objects.create(project=project, name="Pool")
        version = DatasetVersion(dataset=dataset, number=1, source="upload", content_hash="b" * 64, row_count=n)
        version.save(force_insert=True)
        materials = ["stainless steel", "organic cotton", "recycled aluminium", "solid oak", "borosilicate glass"]
        _insert(Example._meta.db_table, ["version_id", "index", "external_id", "prompt", "reference", "rejected",
                                         "label", "attributes"],
                ((version.pk, i, f"p{i}", (f"Write a product description (60-90 words).\nProduct: Item {i}\n"
                  f"Material: {materials[i % 5]}\nTone: practical"), "", "", "", f'{{"material": "{materials[i % 5]}"}}')
                 for i in range(n)))
        example_ids = list(Example.objects.filter(version=version).order_by("index").values_list("pk", flat=True))
        base = BaseModel.objects.create(name="bench-base", source_kind="folder", path_or_id="/x")
        runs = []
        for k in range(2):
            mv = ModelVersion.objects.create(project=project, number=k + 1, name=f"writer-{k}", base_model=base)
            runs.append(GenerationRun.objects.create(project=project, model_version=mv, eval_version=version,
                                                     status="succeeded"))
        filler = "Built for daily use, easy to clean and made to last for years of honest work in a busy home. " * 2
        for k, run in enumerate(runs):
            _insert(Output._meta.db_table, ["run_id", "example_id", "sample_index", "text", "prompt_tokens",
                                            "output_tokens", "latency_s", "finish_reason", "error", "flags",
                                            "created_at"],
                    ((run.pk, ex, 0, (f"Item {i} in {materials[i % 5]}. " if k == 0 else f"Item {i}. ") + filler,
                      0, 0, 0.0, "stop", "", "[]", now) for i, ex in enumerate(example_ids)))
        outputs = [dict(Output.objects.filter(run=run).values_list("example_id", "pk")) for run in runs]
        campaign = Campaign.objects.create(project=project, name="Bench duel", eval_version=version, seed=0,
                                           created_by=lead)
        contestants = [Contestant.objects.create(campaign=campaign, index=k, model_version=r.model_version,
                                                 generation_run=r) for k, r in enumerate(runs)]
        _insert(Prompt._meta.db_table, ["campaign_id", "example_id", "text", "attributes"],
                ((campaign.pk, ex, "", "{}") for ex in example_ids))
        prompts = dict(Prompt.objects.filter(campaign=campaign).values_list("example_id", "pk"))
        _insert(Candidate._meta.db_table, ["prompt_id", "contestant_id", "output_id", "text"],
                ((prompts[ex], contestants[k].pk, outputs[k][ex], "") for ex in example_ids for k in range(2)))
        candidates = {(p, c): pk for pk, p, c in Candidate.objects.values_list("pk", "prompt_id", "contestant_id")}
        left_is_0 = [rng.random() < 0.5 for _ in range(n)]
        _insert(Comparison._meta.db_table, ["campaign_id", "prompt_id", "token", "left_id", "right_id", "pair_lo_id",
                                            "pair_hi_id", "order_key", "n_taken", "n_votes"],
                ((campaign.pk, prompts[ex], f"t{i}",
                  candidates[(prompts[ex], contestants[0 if left_is_0[i] else 1].pk)],
                  candidates[(prompts[ex], contestants[1 if left_is_0[i] else 0].pk)],
                  contestants[0].pk, contestants[1].pk, i, N_ANNOTATORS, N_ANNOTATORS)
                 for i, ex in enumerate(example_ids)))
        comparisons = list(Comparison.objects.filter(campaign=campaign).order_by("order_key").values_list("pk", flat=True))

        def votes() -> Any:
            for i, comparison_id in enumerate(comparisons):
                for user in users:
                    u = rng.random()
                    if u < 0.06:
                        choice = "tie"
                    elif u < 0.10:
                        choice = "both_bad"
                    else:
                        material_side = "a" if left_is_0[i] else "b"
                        choice = material_side if u < 0.72 else ("b" if material_side == "a" else "a")
                    yield (campaign.pk, comparison_id, user.pk, "annotator", choice, "{}", "", 10.0, now)

        _insert(Vote._meta.db_table, ["campaign_id", "comparison_id", "annotator_id", "origin", "choice", "criteria",
                                      "reason", "seconds_spent", "created_at"], votes())
    return project


def ours(project: Any, path: Path) -> int:
    from evalhub.feedback.builders import ExportOptions, plan_export, records
    from evalhub.feedback.formats import write_jsonl

    plan = plan_export(project, ExportOptions(kind="dpo", sources=("arena",)))
    return write_jsonl((r.trl() for r in records(plan)), path)


def baseline(project: Any, path: Path) -> int:
    """The same export from Vote instances: same decisions (ties and both-bad left out, plurality wins, a split
    gives no pair), same records, same file."""
    from evalhub.arena.models import Choice, Vote
    from evalhub.feedback.builders import Record, chat_prompt
    from evalhub.feedback.formats import write_jsonl

    votes = (
        Vote.objects.filter(campaign__project=project, origin__in=["annotator", "import"])
        .select_related("comparison__prompt__example", "comparison__left__output", "comparison__right__output")
        .order_by("comparison_id", "pk")
        .iterator(chunk_size=2000)
    )

    def rows() -> Any:
        for _, group in itertools.groupby(votes, key=lambda v: v.comparison_id):
            group = list(group)
            weights: dict[str, float] = defaultdict(float)
            for vote in group:
                if vote.choice in (Choice.A, Choice.B):
                    weights[vote.choice] += 1.0
            if not weights:
                continue
            best = max(weights.values())
            winners = [c for c, w in weights.items() if w == best]
            if len(winners) > 1:
                continue
            comparison = group[0].comparison
            left, right = comparison.left.output.text, comparison.right.output.text
            if left == right:
                continue
            chosen, rejected = (left, right) if winners[0] == Choice.A else (right, left)
            example = comparison.prompt.example
            yield Record("arena", f"comparison:{comparison.pk}", chat_prompt(example.prompt, example.messages), chosen,
                         rejected).trl()

    return write_jsonl(rows(), path)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run() -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="evalhub-bench-export-"))
    try:
        started = time.perf_counter()
        _setup(folder)
        project = _load()
        setup_s = time.perf_counter() - started
        from evalhub.arena.models import Vote

        n_votes = Vote.objects.filter(campaign__project=project).count()
        ours_times = []
        for attempt in range(2):
            t = time.perf_counter()
            n_ours = ours(project, folder / f"ours-{attempt}.jsonl")
            ours_times.append(time.perf_counter() - t)
        t = time.perf_counter()
        n_base = baseline(project, folder / "baseline.jsonl")
        base_s = time.perf_counter() - t
        ours_s = min(ours_times)
        equal = _sha(folder / "ours-0.jsonl") == _sha(folder / "baseline.jsonl") == _sha(folder / "ours-1.jsonl")
        ratio = base_s / ours_s
        return {
            "ratio": round(ratio, 2),
            "ours": round(ours_s, 3),
            "baseline": round(base_s, 3),
            "unit": "seconds to export every vote to DPO JSONL (lower is better; ratio = baseline / ours)",
            "outputs_equal": bool(equal and n_ours == n_base),
            "votes": n_votes,
            "comparisons": N_COMPARISONS,
            "records": n_ours,
            "ours_runs_s": [round(x, 3) for x in ours_times],
            "setup_s": round(setup_s, 1),
            "database": "SQLite (throwaway file)",
            "summary": f"{n_votes:,} votes -> {n_ours:,} DPO records: streamed {ours_s:.1f} s vs ORM objects "
                       f"{base_s:.1f} s ({ratio:.1f}x), files identical: {equal}",
        }
    finally:
        shutil.rmtree(folder, ignore_errors=True)
