"""Metric runs: stored values equal the library's, refusals by name, per-output gaps, queues, resumption."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from evalhub.generation.models import Output
from evalhub.jobs.models import Job
from evalhub.jobs.tasks import execute_job
from evalhub.metrics import services
from evalhub.metrics.models import MetricScore
from tests.generation import factories

ODD = ["", "Keeps drinks cold for 24 hours.", "z" * 5_000, "A speckled <b>glaze</b>.", "light light light", "Thick paper."]
REFERENCE_FREE = ["output_length"]
CHEAP = ["rouge1", "rouge2", "rougeL", "bleu", "chrf", "exact_match", "token_f1", "output_length"]


@pytest.fixture
def eval_version(world: Any) -> Any:
    """The six products, one output each (ODD)."""
    return factories.make_eval_version(world.project)


def _gen_run(world: Any, eval_version: Any, texts: list[str]) -> Any:
    from evalhub.tuning.models import BaseModel

    base = BaseModel.objects.create(name="m-base", source_kind="folder", path_or_id="/nonexistent")
    version = factories.make_version(world.project, base, number=1)
    return factories.make_run_with_outputs(world.project, version, eval_version, texts)


def _execute(metric_run: Any) -> Any:
    execute_job(metric_run.job_id)
    metric_run.refresh_from_db()
    return metric_run


def _stored(metric_run: Any, name: str) -> list[float | None]:
    return list(
        MetricScore.objects.filter(metric_run=metric_run, metric=name)
        .order_by("output__example__index").values_list("value", flat=True)
    )


def test_stored_values_equal_the_librarys_own(world: Any, eval_version: Any) -> None:
    from trainer.metrics import score

    gen = _gen_run(world, eval_version, ODD)
    names = [*CHEAP, "bertscore"]
    metric_run = _execute(services.metric_run_create(generation_run=gen, metrics=names, created_by=world.lead))
    assert metric_run.status == "succeeded" and metric_run.refused == {}
    refs = list(eval_version.examples.order_by("index").values_list("reference", flat=True))
    expected = score(names, ODD, refs)
    for name in names:
        assert _stored(metric_run, name) == pytest.approx(expected[name].per_item, abs=1e-6), name
        assert metric_run.corpus[name] == pytest.approx(expected[name].corpus, abs=1e-6)
    assert _stored(metric_run, "rouge1")[0] == 0.0  # an empty output scores 0, it is not dropped


def test_without_references_reference_based_metrics_are_refused_by_name(world: Any, client_for: Any) -> None:
    eval_version = factories.make_eval_version(world.project, references=False, name="No refs")
    gen = _gen_run(world, eval_version, ODD)
    metric_run = services.metric_run_create(generation_run=gen, metrics=["rouge1", "bleu", "output_length"])
    assert set(metric_run.refused) == {"rouge1", "bleu"}  # known at once, shown before the job runs
    metric_run = _execute(metric_run)
    assert metric_run.status == "succeeded"
    assert set(metric_run.refused) == {"rouge1", "bleu"} and "reference" in metric_run.refused["bleu"]
    assert _stored(metric_run, "output_length") == [0, 6, 1, 3, 3, 2]  # words
    assert not MetricScore.objects.filter(metric_run=metric_run, metric__in=["rouge1", "bleu"]).exists()
    html = client_for(world.lead).get(
        reverse("metrics:run", kwargs={"project_id": world.project.pk, "metric_run_id": metric_run.pk})
    ).content.decode()
    assert "<strong>rouge1</strong> was refused" in html and "<strong>bleu</strong> was refused" in html


def test_only_reference_based_metrics_on_a_set_without_references_fails_clearly(world: Any) -> None:
    eval_version = factories.make_eval_version(world.project, references=False, name="No refs")
    gen = _gen_run(world, eval_version, ODD)
    metric_run = _execute(services.metric_run_create(generation_run=gen, metrics=["chrf"]))
    assert metric_run.status == "failed"
    assert "No metric could run" in metric_run.error and "chrf" in metric_run.error


def test_outputs_missing_a_reference_or_failed_get_no_value(world: Any) -> None:
    rows = [{"prompt": f"p{i}", "reference": "" if i == 1 else f"answer {i}"} for i in range(4)]
    eval_version = factories.make_eval_version(world.project, rows=rows, name="Partial")
    gen = _gen_run(world, eval_version, ["answer 0", "answer 1", "answer 2", ""])
    Output.objects.filter(run=gen, example__index=2).update(error="CUDA out of memory", text="")
    metric_run = _execute(services.metric_run_create(generation_run=gen, metrics=["exact_match", "output_length"]))
    assert _stored(metric_run, "exact_match") == [1.0, None, None, 0.0]
    assert _stored(metric_run, "output_length") == [2.0, 2.0, None, 0.0]
    assert metric_run.summary["without_reference"] == 1
    assert metric_run.summary["excluded_generation_errors"] == 1


@pytest.mark.parametrize(("metrics", "kind", "queue"), [
    (["bertscore", "rouge1"], "metrics.score_gpu", "gpu"),
    (["rouge1", "chrf"], "metrics.score", "default"),
])
def test_bertscore_goes_to_the_gpu_queue(world: Any, eval_version: Any, metrics: list[str], kind: str, queue: str) -> None:
    gen = _gen_run(world, eval_version, ODD)
    job = Job.objects.get(pk=services.metric_run_create(generation_run=gen, metrics=metrics).job_id)
    assert (job.kind, job.queue) == (kind, queue)


def test_unknown_metric_and_unfinished_run_are_refused(world: Any, eval_version: Any) -> None:
    gen = _gen_run(world, eval_version, ODD)
    with pytest.raises(ValidationError) as info:
        services.metric_run_create(generation_run=gen, metrics=["rouge1", "perplexity_magic"])
    assert "perplexity_magic" in info.value.message_dict["metrics"][0]
    with pytest.raises(ValidationError) as info:
        services.metric_run_create(generation_run=gen, metrics=["rouge1"], options={"bleu": {"tokenize": "13a"}})
    assert "bleu" in info.value.message_dict["options"][0]
    gen.status = "running"
    gen.save()
    with pytest.raises(ValidationError) as info:
        services.metric_run_create(generation_run=gen, metrics=["rouge1"])
    assert "generation_run" in info.value.message_dict


def test_a_bad_option_refuses_that_metric_only(world: Any, eval_version: Any) -> None:
    gen = _gen_run(world, eval_version, ODD)
    metric_run = _execute(services.metric_run_create(
        generation_run=gen, metrics=["rouge1", "output_length"], options={"rouge1": {"no_such_option": 1}}
    ))
    assert metric_run.status == "succeeded"
    assert "no_such_option" in metric_run.refused["rouge1"]
    assert len(_stored(metric_run, "output_length")) == 6


def test_resumed_attempt_skips_metrics_already_stored(world: Any, eval_version: Any) -> None:
    gen = _gen_run(world, eval_version, ODD)
    metric_run = services.metric_run_create(generation_run=gen, metrics=["output_length", "token_f1"])
    # A first attempt stored output_length and died before token_f1.
    outputs = list(gen.outputs.order_by("example__index"))
    MetricScore.objects.bulk_create(MetricScore(metric_run=metric_run, output=o, metric="output_length", value=-1.0) for o in outputs)
    metric_run.summary = {"done": ["output_length"]}
    metric_run.save()
    metric_run = _execute(metric_run)
    assert _stored(metric_run, "output_length") == [-1.0] * 6  # not recomputed
    assert len([v for v in _stored(metric_run, "token_f1") if v is not None]) == 6
