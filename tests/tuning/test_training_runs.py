"""Launching, running, cancelling and failing training runs through the job system (tiny random model)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ValidationError

from evalhub.core.storage import artifact_from_key
from evalhub.jobs.models import Job
from evalhub.jobs.tasks import execute_job
from evalhub.tuning import services
from evalhub.tuning.models import ModelVersion, TrainingRun
from tests.tuning.conftest import TINY_HP, make_version

pytestmark = pytest.mark.django_db


def launch(world: Any, base: Any, train: Any, val: Any, **overrides: Any) -> TrainingRun:
    kwargs: dict[str, Any] = {
        "project": world.project,
        "user": world.lead,
        "base_model": base,
        "train_version": train,
        "val_version": val,
        "method": "lora",
        "placement": "attention",
        "hyperparameters": dict(TINY_HP),
    }
    kwargs.update(overrides)
    return services.training_run_create(**kwargs)


def refused(call: Any) -> dict[str, list[str]]:
    jobs, runs = Job.objects.count(), TrainingRun.objects.count()
    with pytest.raises(ValidationError) as info:
        call()
    assert Job.objects.count() == jobs, "a refused run must queue nothing"
    assert TrainingRun.objects.count() == runs
    return info.value.message_dict


@pytest.mark.parametrize(
    ("overrides", "field", "words"),
    [
        ({"hyperparameters": {**TINY_HP, "rank": 0}}, "rank", "positive"),
        ({"hyperparameters": {**TINY_HP, "learning_rate": -0.001}}, "learning_rate", "positive"),
        ({"placement": ["q_proj", "query_key_value"]}, "placement", "no module named 'query_key_value'"),
        ({"method": "ia3", "placement": ["embed_tokens"]}, "placement", "only adapt linear layers"),
        ({"hyperparameters": {**TINY_HP, "batch_size": "four"}}, "batch_size", "not a valid int"),
        ({"hyperparameters": {**TINY_HP, "lora_rank": 8}}, "lora_rank", "unknown setting"),
        ({"method": "adapterx"}, "method", "unknown method"),
    ],
)
def test_bad_config_is_refused_naming_the_field(
    world: Any, tiny_base: Any, versions: Any, overrides: dict[str, Any], field: str, words: str
) -> None:
    errors = refused(lambda: launch(world, tiny_base, *versions, **overrides))
    assert field in errors, errors
    assert any(words in message for message in errors[field]), errors[field]


def test_qlora_without_cuda_is_refused_before_queueing(
    world: Any, tiny_base: Any, versions: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(services, "qlora_supported", lambda: False)
    errors = refused(lambda: launch(world, tiny_base, *versions, method="qlora", placement=None))
    assert errors["method"] == [
        (
            "QLoRA needs a CUDA GPU with bitsandbytes: no worker on the gpu queue with one has reported in the last "
            "10 minutes, and this server has none"
        )
    ]


def test_method_the_architecture_cannot_take_is_refused(world: Any, versions: Any, tmp_path: Path) -> None:
    from transformers import MambaConfig

    from trainer.models import ModelSource

    MambaConfig(vocab_size=100, hidden_size=16, num_hidden_layers=2).save_pretrained(tmp_path)
    mamba = services.base_model_register(
        name="tiny-mamba", source=ModelSource(kind="folder", path_or_id=str(tmp_path))
    )
    assert mamba.architecture == "MambaForCausalLM"
    errors = refused(lambda: launch(world, mamba, *versions, method="prefix", placement=None))
    assert "prefix tuning is not supported for MambaForCausalLM" in errors["method"][0]


def test_dataset_without_answers_is_refused(world: Any, tiny_base: Any, versions: Any) -> None:
    prompts_only = make_version(
        world.project, [{"prompt": "Describe the mug."}, {"prompt": "Describe the pan."}]
    )
    errors = refused(lambda: launch(world, tiny_base, prompts_only, versions[1]))
    assert "no reference answers" in errors["train_version"][0]
    errors = refused(lambda: launch(world, tiny_base, versions[0], prompts_only))
    assert "val_version" in errors


def test_dataset_version_of_another_project_is_refused(world: Any, tiny_base: Any, versions: Any) -> None:
    foreign = make_version(world.other_project, [{"prompt": "Hi", "reference": "Hello"}], dataset="Briefs")
    errors = refused(lambda: launch(world, tiny_base, versions[0], foreign))
    assert "another project" in errors["val_version"][0]


def test_launch_exports_chat_jsonl_and_queues_on_gpu(world: Any, tiny_base: Any, versions: Any) -> None:
    world.project.task_instructions = "Write one persuasive sentence."
    world.project.save()
    chat = make_version(
        world.project,
        [
            {"messages": [{"role": "user", "content": "Describe the lamp."}], "reference": "Warm light."},
            {"prompt": "Describe the mug."},  # no answer: skipped and counted
        ],
    )
    run = launch(world, tiny_base, chat, versions[1])
    assert run.job is not None and run.job.queue == "gpu" and run.job.kind == "tuning.train"
    assert run.status == "queued"
    lines = (artifact_from_key(run.output_key) / "data" / "train.jsonl").read_text().splitlines()
    assert [json.loads(line)["messages"] for line in lines] == [
        [
            {"role": "system", "content": "Write one persuasive sentence."},
            {"role": "user", "content": "Describe the lamp."},
            {"role": "assistant", "content": "Warm light."},
        ]
    ]
    assert run.result["data"]["train"]["skipped_without_answer"] == 1
    assert run.config["rank"] == 4 and run.config["placement"] == "attention"
    # Settings not given come from the method's defaults.
    assert run.config["scheduler"] == "cosine" and run.config["learning_rate"] == 2e-4


def test_run_through_the_job_creates_a_version_with_lineage_and_a_loadable_adapter(
    world: Any, tiny_base: Any, versions: Any, tiny_model_dir: Path
) -> None:
    import torch
    from peft import PeftModel

    from trainer.models import ModelSource, load_base

    train, val = versions
    run = launch(world, tiny_base, train, val)
    assert execute_job(run.job.pk) == "succeeded"
    run.refresh_from_db()
    assert run.status == "succeeded"
    version = ModelVersion.objects.get(training_run=run)
    assert str(version) == f"v{version.number} LoRA"
    lineage = version.lineage
    assert [(d["role"], d["version_id"], d["content_hash"]) for d in lineage["datasets"]] == [
        ("train", train.pk, train.content_hash),
        ("validation", val.pk, val.content_hash),
    ]
    assert lineage["config"]["rank"] == 4 and lineage["seed"] == 42
    assert {"torch", "transformers", "peft", "python", "django"} <= set(lineage["package_versions"])
    assert lineage["code_revision"]
    assert 0 < lineage["trainable_share"] < 0.5 and lineage["trainable_params"] > 0
    assert lineage["peak_memory_bytes"] > 0 and lineage["wall_time_s"] > 0 and lineage["tokens_per_s"] > 0
    assert lineage["best_val_loss"] <= lineage["final_val_loss"]
    assert lineage["steps_done"] == 6
    # The chart's data: a train point per step and a validation point per evaluation.
    series = services.loss_series(run)
    assert series["train"]["x"] == [1, 2, 3, 4, 5, 6] and series["val"]["x"] == [3, 6]

    base, tokenizer = load_base(
        ModelSource(kind="folder", path_or_id=str(tiny_model_dir)), Path("/nonexistent")
    )
    inputs = tokenizer("Describe the mug.", return_tensors="pt")
    with torch.no_grad():
        before = base(**inputs).logits
        tuned = PeftModel.from_pretrained(base, str(services.adapter_dir(version))).eval()
        after = tuned(**inputs).logits
    assert not torch.allclose(before, after), "the adapter should change the model's outputs"


def test_cancel_a_queued_run_never_trains(world: Any, tiny_base: Any, versions: Any) -> None:
    run = launch(world, tiny_base, *versions)
    services.training_run_cancel(run)
    assert run.job.status == "cancelled"
    assert execute_job(run.job.pk) == "skipped"
    assert not ModelVersion.objects.exists()


def test_cancel_a_running_run_stops_it_at_a_checkpoint(
    world: Any, tiny_base: Any, versions: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from evalhub.jobs.context import JobContext

    monkeypatch.setattr(JobContext, "CANCEL_CHECK_EVERY_S", 0.0)
    run = launch(world, tiny_base, *versions, hyperparameters={**TINY_HP, "max_steps": 200})
    original = services.LossRecorder.__call__

    def lead_clicks_cancel_at_step_2(self: services.LossRecorder, event: dict[str, Any]) -> None:
        if event.get("event") == "step" and event["step"] == 2:
            services.training_run_cancel(TrainingRun.objects.get(pk=run.pk))
        original(self, event)

    monkeypatch.setattr(services.LossRecorder, "__call__", lead_clicks_cancel_at_step_2)
    assert execute_job(run.job.pk) == "cancelled"
    run.refresh_from_db()
    assert run.status == "cancelled"
    assert not ModelVersion.objects.exists()
    checkpoints = sorted(p.name for p in (services.run_output_dir(run) / "checkpoints").iterdir())
    assert checkpoints and all(int(name[5:]) < 10 for name in checkpoints), checkpoints


def test_nan_loss_fails_the_job_with_the_reason_and_keeps_the_last_checkpoint(
    world: Any, tiny_base: Any, versions: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import trainer.train

    original_wrap = trainer.train._wrap

    def poisoned(config: Any, model: Any) -> Any:
        wrapped = original_wrap(config, model)
        real_forward = wrapped.forward
        calls = {"n": 0}

        def forward(*args: Any, **kwargs: Any) -> Any:
            out = real_forward(*args, **kwargs)
            if wrapped.training:
                calls["n"] += 1
                if calls["n"] > 4:  # training steps 1-4 are fine (checkpoints at 2 and 4), step 5 diverges
                    # Both: the trainer may take the model's own loss or compute one from the logits.
                    out.logits = out.logits * float("nan")
                    if out.loss is not None:
                        out.loss = out.loss * float("nan")
            return out

        wrapped.forward = forward
        return wrapped

    monkeypatch.setattr(trainer.train, "_wrap", poisoned)
    run = launch(
        world, tiny_base, *versions, hyperparameters={**TINY_HP, "max_steps": 10, "save_every_steps": 2}
    )
    assert execute_job(run.job.pk) == "failed"
    run.refresh_from_db()
    assert run.status == "failed"
    assert "loss became NaN at step 5" in run.job.error
    assert run.result["last_checkpoint"].endswith("checkpoints/step-4")
    assert (artifact_from_key(run.result["last_checkpoint"]) / "state.json").is_file()
    assert not ModelVersion.objects.exists()
    assert [p["step"] for p in run.loss_history if "train_loss" in p] == [1, 2, 3, 4]


def test_base_only_version_and_numbering(world: Any, tiny_base: Any) -> None:
    v1 = services.model_version_create_base(project=world.project, base_model=tiny_base, user=world.lead)
    v2 = services.model_version_create_base(project=world.project, base_model=tiny_base, name="again")
    assert (str(v1), v2.number) == ("v1 base", 2)
    assert v1.is_base_only and v1.lineage["base_model"]["architecture"] == "LlamaForCausalLM"
    with pytest.raises(ValidationError):
        services.model_version_export_merged(v1)


def test_a_launch_that_breaks_half_way_leaves_no_row_and_no_files(
    world: Any, tiny_base: Any, versions: Any, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    from evalhub.jobs import services as job_services

    def broker_down(**kwargs: Any) -> Any:
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(job_services, "job_create", broker_down)
    with pytest.raises(ConnectionError):
        launch(world, tiny_base, *versions)
    assert not TrainingRun.objects.exists() and not Job.objects.exists()
    tuning = Path(settings.ARTIFACT_ROOT) / "tuning"
    assert not [p for p in tuning.rglob("*") if p.is_file()]
