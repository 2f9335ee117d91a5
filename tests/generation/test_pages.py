"""The outputs pages: escaped text, empty and huge outputs, search, slices and sorting by a metric."""

from __future__ import annotations

from typing import Any

from django.urls import reverse

from tests.generation import factories

PAYLOAD = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def _run(world: Any, eval_version: Any, texts: list[str]) -> Any:
    from evalhub.tuning.models import BaseModel

    base = BaseModel.objects.create(name="pages-base", source_kind="folder", path_or_id="/nonexistent")
    version = factories.make_version(world.project, base, number=1, name="pages")
    return factories.make_run_with_outputs(world.project, version, eval_version, texts)


def test_outputs_are_escaped_and_odd_outputs_render(world: Any, eval_version: Any, client_for: Any) -> None:
    texts = [PAYLOAD, "", "z" * 100_000, "caf\ufffd", "fine", "also fine"]
    run = _run(world, eval_version, texts)
    url = reverse("generation:detail", kwargs={"project_id": world.project.pk, "run_id": run.pk})
    html = client_for(world.lead).get(url).content.decode()
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert "<script>alert(" not in html and "<img src=x" not in html
    assert "full text (100000 characters)" in html
    assert "(empty output)" in html
    assert "z" * 100_000 not in html  # clipped in the list ...
    huge = run.outputs.get(example__index=2)
    detail = client_for(world.lead).get(
        reverse("generation:output", kwargs={"project_id": world.project.pk, "run_id": run.pk, "output_id": huge.pk})
    ).content.decode()
    assert "z" * 100_000 in detail  # ... and whole on its own page
    empty = run.outputs.get(example__index=1)
    detail = client_for(world.lead).get(
        reverse("generation:output", kwargs={"project_id": world.project.pk, "run_id": run.pk, "output_id": empty.pk})
    ).content.decode()
    assert "(empty output)" in detail
    payload = run.outputs.get(example__index=0)
    detail = client_for(world.lead).get(
        reverse("generation:output", kwargs={"project_id": world.project.pk, "run_id": run.pk, "output_id": payload.pk})
    ).content.decode()
    assert "&lt;script&gt;" in detail and "<script>alert(" not in detail


def test_search_slice_and_sort_by_metric(world: Any, eval_version: Any, client_for: Any) -> None:
    texts = [f"output number {i}" for i in range(6)]
    texts[3] = "the special one"
    run = _run(world, eval_version, texts)
    metric_run = factories.make_metric_run(run, {"rouge1": [0.5, 0.1, 0.9, 0.3, None, 0.7]})
    url = reverse("generation:detail", kwargs={"project_id": world.project.pk, "run_id": run.pk})
    client = client_for(world.lead)

    page = client.get(url, {"q": "special"})
    assert [r["output"].text for r in page.context["rows"]] == ["the special one"]
    assert "1 output matching “special”" in page.content.decode()

    html = client.get(url, {"attr": "category", "value": "sport"}).content.decode()  # examples 2 and 3
    assert "output number 2" in html and "the special one" in html and "output number 0" not in html

    page = client.get(url, {"metric_run": metric_run.pk, "sort": "rouge1", "order": "desc"})
    order = [row["output"].example.index for row in page.context["rows"]]
    assert order == [2, 5, 0, 3, 1, 4]  # highest first, the output without a value last
    page = client.get(url, {"metric_run": metric_run.pk, "sort": "rouge1", "order": "asc"})
    assert [row["output"].example.index for row in page.context["rows"]] == [1, 3, 0, 5, 2, 4]


def test_outputs_are_paged(world: Any, client_for: Any) -> None:
    rows = [{"prompt": f"p{i}", "reference": f"r{i}"} for i in range(30)]
    version = factories.make_eval_version(world.project, rows=rows, name="Thirty")
    run = _run(world, version, [f"text {i}" for i in range(30)])
    url = reverse("generation:detail", kwargs={"project_id": world.project.pk, "run_id": run.pk})
    first = client_for(world.lead).get(url)
    assert len(first.context["rows"]) == 25 and "page 1 of 2" in first.content.decode()
    second = client_for(world.lead).get(url, {"page": 2})
    assert [r["output"].example.index for r in second.context["rows"]] == list(range(25, 30))


def test_failed_run_shows_its_reason(world: Any, eval_version: Any, client_for: Any) -> None:
    run = _run(world, eval_version, [])
    run.status, run.error = "failed", "Could not load model version v1 pages: weights missing"
    run.save()
    html = client_for(world.lead).get(
        reverse("generation:detail", kwargs={"project_id": world.project.pk, "run_id": run.pk})
    ).content.decode()
    assert "This run failed" in html and "weights missing" in html


def test_launch_form_queues_a_run_and_shows_refusals_next_to_the_field(
    world: Any, base_version: Any, eval_version: Any, client_for: Any
) -> None:
    from evalhub.generation.models import GenerationRun

    url = reverse("generation:list", kwargs={"project_id": world.project.pk})
    data = {"model_version": base_version.pk, "eval_version": eval_version.pk, "do_sample": "false", "temperature": 1.0,
            "top_p": 1.0, "max_new_tokens": 16, "seed": 0, "num_samples": 1, "batch_size": 8}
    client = client_for(world.lead)
    response = client.post(url, {**data, "num_samples": 3})  # several samples need sampling
    assert response.status_code == 200 and not GenerationRun.objects.exists()
    assert response.context["form"].errors["num_samples"][0].startswith("several samples per prompt need sampling")
    response = client.post(url, {**data, "do_sample": "true", "top_p": 1.5})
    assert "top_p" in response.context["form"].errors
    response = client.post(url, data)
    run = GenerationRun.objects.get()
    assert response.status_code == 302 and run.settings["max_new_tokens"] == 16 and run.job.queue == "gpu"
