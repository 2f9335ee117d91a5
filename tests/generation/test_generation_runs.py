"""Generation runs end to end on a tiny random Llama: validation, the gpu job, idempotent resumption, adapters
sharing one loaded base, and odd outputs stored safely."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from django.core.exceptions import ValidationError

from evalhub.generation import services
from evalhub.generation.models import GenerationRun, Output, RunStatus
from evalhub.jobs.models import Job
from evalhub.jobs.tasks import execute_job

GREEDY = {"do_sample": False, "max_new_tokens": 6, "seed": 0, "num_samples": 1, "batch_size": 4}


def create(world: Any, version: Any, eval_version: Any, **settings: Any) -> GenerationRun:
    return services.generation_run_create(
        project=world.project, model_version=version, eval_version=eval_version,
        settings={**GREEDY, **settings}, created_by=world.lead,
    )


def run_job(run: GenerationRun) -> GenerationRun:
    execute_job(run.job_id)
    run.refresh_from_db()
    return run


def texts(run: GenerationRun) -> list[tuple[int, int, str]]:
    return list(run.outputs.order_by("example__index", "sample_index").values_list("example__index", "sample_index", "text"))


def test_run_is_queued_on_the_gpu_queue_with_validated_settings(world: Any, base_version: Any, eval_version: Any) -> None:
    run = create(world, base_version, eval_version)
    job = Job.objects.get(pk=run.job_id)
    assert (job.kind, job.queue, job.params) == ("generation.generate", "gpu", {"run_id": run.pk})
    assert run.status == RunStatus.QUEUED
    assert run.settings["max_new_tokens"] == 6


@pytest.mark.parametrize(("field", "value"), [("temperature", -1.0), ("top_p", 1.5), ("max_new_tokens", 0), ("num_samples", 0)])
def test_bad_decoding_settings_name_the_field(world: Any, base_version: Any, eval_version: Any, field: str, value: Any) -> None:
    with pytest.raises(ValidationError) as info:
        create(world, base_version, eval_version, do_sample=True, **{field: value})
    assert field in info.value.message_dict
    assert not GenerationRun.objects.exists()


def test_missing_adapter_is_refused_before_queueing(world: Any, lora_version: Any, eval_version: Any) -> None:
    import shutil

    from evalhub.generation.files import adapter_dir

    shutil.rmtree(adapter_dir(lora_version))
    with pytest.raises(ValidationError) as info:
        create(world, lora_version, eval_version)
    assert "is missing" in info.value.message_dict["model_version"][0]
    assert not Job.objects.exists()


def test_job_stores_one_output_per_example_with_tokens_and_latency(world: Any, base_version: Any, eval_version: Any) -> None:
    run = run_job(create(world, base_version, eval_version))
    assert run.status == RunStatus.SUCCEEDED and Job.objects.get(pk=run.job_id).status == "succeeded"
    outputs = list(run.outputs.all())
    assert len(outputs) == 6
    assert all(o.prompt_tokens > 0 and 0 < o.output_tokens <= 6 and o.latency_s >= 0 for o in outputs)
    assert run.summary["outputs"] == 6
    assert run.summary["output_tokens"] == sum(o.output_tokens for o in outputs)
    assert run.summary["tokens_per_second"] > 0


def test_same_settings_and_seed_give_the_same_outputs(world: Any, base_version: Any, eval_version: Any) -> None:
    sampled = {"do_sample": True, "temperature": 1.0, "top_p": 0.9, "seed": 7}
    first = run_job(create(world, base_version, eval_version, **sampled))
    second = run_job(create(world, base_version, eval_version, **sampled))
    assert texts(first) == texts(second)
    other_seed = run_job(create(world, base_version, eval_version, **{**sampled, "seed": 8}))
    assert texts(other_seed) != texts(first)


def test_several_samples_per_prompt(world: Any, base_version: Any, eval_version: Any) -> None:
    run = run_job(create(world, base_version, eval_version, do_sample=True, num_samples=2, seed=3))
    rows = texts(run)
    assert [(e, s) for e, s, _ in rows] == [(e, s) for e in range(6) for s in range(2)]


def test_resumed_attempt_skips_examples_already_done(world: Any, base_version: Any, eval_version: Any) -> None:
    reference = texts(run_job(create(world, base_version, eval_version)))
    run = create(world, base_version, eval_version)
    first = eval_version.examples.get(index=0)
    # A previous attempt stored example 0 and then died; its row must survive untouched.
    Output.objects.create(run=run, example=first, sample_index=0, text="from the first attempt", output_tokens=3)
    run = run_job(run)
    rows = texts(run)
    assert rows[0] == (0, 0, "from the first attempt")
    assert rows[1:] == reference[1:]
    assert run.outputs.count() == 6


def test_adapters_share_one_loaded_base(world: Any, base_version: Any, lora_version: Any, eval_version: Any) -> None:
    base_run = run_job(create(world, base_version, eval_version))
    generator_before, _ = services.generator_for(base_version)
    lora_run = run_job(create(world, lora_version, eval_version))
    generator_after, adapter = services.generator_for(lora_version)
    assert generator_after is generator_before and adapter == f"mv{lora_version.pk}"
    assert texts(lora_run) != texts(base_run)  # the random-B adapter changes what the model says
    assert texts(run_job(create(world, base_version, eval_version))) == texts(base_run)  # base unaffected after it


def test_corrupt_adapter_fails_the_run_with_a_reason(world: Any, lora_version: Any, eval_version: Any) -> None:
    from evalhub.generation.files import adapter_dir

    run = create(world, lora_version, eval_version)
    weights = adapter_dir(lora_version) / "adapter_model.safetensors"
    weights.write_bytes(b"\x00" * 16)  # corrupted after the run was queued
    run = run_job(run)
    assert run.status == RunStatus.FAILED
    assert "adapter_model.safetensors is not a readable safetensors file" in run.error
    assert Job.objects.get(pk=run.job_id).status == "failed"


@dataclass
class FakeGeneration:
    text: Any
    prompt_tokens: int = 3
    output_tokens: int = 2
    latency_s: float = 0.01
    finish_reason: str = "stop"


class FakeGenerator:
    """Stands in for the model to produce outputs no tiny model reliably emits."""

    def __init__(self, outputs: list[Any]) -> None:
        self.outputs = outputs

    def generate(self, prompts: list[Any], *, adapter: Any, settings: Any, progress: Any = None) -> list[FakeGeneration]:
        return [FakeGeneration(text=t, finish_reason="length" if i == 4 else "stop") for i, t in enumerate(self.outputs[: len(prompts)])]


def test_empty_huge_and_broken_text_is_stored_with_flags(world: Any, base_version: Any, eval_version: Any, monkeypatch: Any) -> None:
    odd = ["", "x" * 100_000, "half \ud83d emoji", "nul\x00", "<b>bold</b>", "ok"]
    monkeypatch.setattr(services, "generator_for", lambda version: (FakeGenerator(odd), None))
    run = run_job(create(world, base_version, eval_version))
    assert run.status == RunStatus.SUCCEEDED
    by_index = {o.example.index: o for o in run.outputs.select_related("example")}
    assert by_index[0].text == "" and by_index[0].flags == ["empty"]
    assert len(by_index[1].text) == 100_000
    assert by_index[2].text == "half \ufffd emoji" and by_index[2].flags == ["repaired"]
    assert by_index[3].text == "nul\ufffd" and "repaired" in by_index[3].flags
    assert by_index[4].text == "<b>bold</b>" and by_index[4].flags == ["length"]
    assert run.summary["empty_outputs"] == 1 and run.summary["repaired_outputs"] == 2 and run.summary["hit_max_tokens"] == 1


class PickyGenerator:
    """Fails any call that includes the prompt of example 2 (or every call when `broken`)."""

    def __init__(self, broken: bool = False) -> None:
        self.broken = broken

    def generate(self, prompts: list[Any], *, adapter: Any, settings: Any, progress: Any = None) -> list[FakeGeneration]:
        from trainer.generate import GenerationError

        if self.broken or any("running shoes" in p[-1]["content"] for p in prompts):
            raise GenerationError("prompt too long for the model's context")
        return [FakeGeneration(text=f"about {p[-1]['content'][:20]}") for p in prompts]


def test_one_bad_prompt_fails_its_output_not_the_run(world: Any, base_version: Any, eval_version: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr(services, "generator_for", lambda version: (PickyGenerator(), None))
    run = run_job(create(world, base_version, eval_version))
    assert run.status == RunStatus.SUCCEEDED
    failed = run.outputs.get(example__index=2)
    assert "prompt too long" in failed.error and failed.text == "" and failed.flags == ["error"]
    assert run.outputs.exclude(error="").count() == 1 and run.summary["errors"] == 1


def test_a_model_that_fails_every_prompt_fails_the_run(world: Any, base_version: Any, eval_version: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr(services, "generator_for", lambda version: (PickyGenerator(broken=True), None))
    run = run_job(create(world, base_version, eval_version))
    assert run.status == RunStatus.FAILED
    assert run.error.startswith("Generation failed: GenerationError: prompt too long")
    assert not run.outputs.exists()


def test_api_creates_a_run_and_names_a_bad_setting(world: Any, base_version: Any, eval_version: Any, api_for: Any) -> None:
    from django.urls import reverse

    url = reverse("api-generation-run-list", kwargs={"project_id": world.project.pk})
    api = api_for(world.lead)
    bad = api.post(url, {"model_version": base_version.pk, "eval_version": eval_version.pk,
                         "settings": {"temperature": "hot"}}, format="json")
    assert bad.status_code == 400 and "must be a number" in bad.json()["temperature"][0]
    unknown = api.post(url, {"model_version": base_version.pk, "eval_version": eval_version.pk,
                             "settings": {"beam_width": 4}}, format="json")
    assert unknown.status_code == 400 and "beam_width" in unknown.json()
    created = api.post(url, {"model_version": base_version.pk, "eval_version": eval_version.pk,
                             "settings": {"max_new_tokens": 5}}, format="json")
    assert created.status_code == 201
    body = created.json()
    assert body["status"] == "queued" and body["job"]["kind"] == "generation.generate"
    assert body["settings"]["max_new_tokens"] == 5 and body["settings"]["do_sample"] is False
    assert api_for(world.reviewer).get(url).status_code == 403  # model identity: leads only
