"""The `tuning.train` job runs DPO on preference versions and continues a parent's adapter (tiny random Llama)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.core.exceptions import ValidationError

from evalhub.core.storage import artifact_from_key
from evalhub.jobs.models import Job
from evalhub.jobs.tasks import execute_job
from evalhub.tuning import services
from evalhub.tuning.models import ModelVersion, TrainingRun
from tests.tuning.conftest import TINY_HP, make_version, product_rows

pytestmark = pytest.mark.django_db


def preference_version(project: Any, n: int = 8) -> Any:
    from evalhub.datasets.models import Dataset, DatasetVersion, Example, VersionKind

    dataset, _ = Dataset.objects.get_or_create(project=project, name="Preferences")
    version = DatasetVersion(
        dataset=dataset,
        number=dataset.versions.count() + 1,
        source="feedback",
        kind=VersionKind.PREFERENCE,
        content_hash=f"{n:064d}",
        row_count=n,
        has_reference=True,
    )
    version.save(force_insert=True)
    Example.objects.bulk_create(
        Example(
            version=version,
            index=i,
            prompt=f"Describe product {i}.",
            reference=f"Made of steel, product {i}.",
            rejected=f"Product {i}.",
        )
        for i in range(n)
    )
    return version


def train(world: Any, base: Any, train_version: Any, **kwargs: Any) -> TrainingRun:
    hp = dict(TINY_HP)
    hp.update(kwargs.pop("hyperparameters", {}))
    run = services.training_run_create(
        project=world.project,
        user=world.lead,
        base_model=base,
        train_version=train_version,
        val_version=kwargs.pop("val_version", None),
        method=kwargs.pop("method", "lora"),
        placement=kwargs.pop("placement", "attention"),
        hyperparameters=hp,
        **kwargs,
    )
    assert execute_job(run.job.pk) == "succeeded", Job.objects.get(pk=run.job.pk).error
    run.refresh_from_db()
    return run


def adapter_config(version: ModelVersion) -> dict[str, Any]:
    return json.loads((artifact_from_key(version.adapter_key) / "adapter_config.json").read_text())


def test_dpo_run_continues_the_parent_and_records_its_lineage(world: Any, tiny_base: Any) -> None:
    sft = train(world, tiny_base, make_version(world.project, product_rows(0, 12), split="train"))
    parent = ModelVersion.objects.get(training_run=sft)
    prefs = preference_version(world.project)
    run = train(
        world,
        tiny_base,
        prefs,
        objective="dpo",
        beta=0.2,
        parent_version=parent,
        hyperparameters={"rank": 8, "learning_rate": 5e-3},
        val_version=prefs,
    )
    assert run.objective == "dpo" and run.config["beta"] == 0.2
    version = ModelVersion.objects.get(training_run=run)
    assert version.parent == parent
    assert version.lineage["parent_version"] == parent.pk
    assert version.lineage["config"]["objective"] == "dpo" and version.lineage["config"]["beta"] == 0.2
    assert (
        version.lineage["datasets"][0]["version_id"] == prefs.pk
        and version.lineage["datasets"][0]["rows_used"] == 8
    )
    # The parent's adapter was continued (rank 4 from TINY_HP), not a fresh rank-8 one.
    assert adapter_config(version)["r"] == adapter_config(parent)["r"] == 4
    assert [p["step"] for p in run.loss_history if "train_loss" in p] == list(
        range(1, TINY_HP["max_steps"] + 1)
    )
    data = (artifact_from_key(run.output_key) / "data" / "train.jsonl").read_text().splitlines()
    row = json.loads(data[0])
    assert row["chosen"] == [{"role": "assistant", "content": "Made of steel, product 0."}]
    assert row["rejected"] == [{"role": "assistant", "content": "Product 0."}]


def test_sft_with_a_parent_continues_its_adapter(world: Any, tiny_base: Any) -> None:
    train_v = make_version(world.project, product_rows(0, 12), split="train")
    parent = ModelVersion.objects.get(training_run=train(world, tiny_base, train_v))
    child = ModelVersion.objects.get(
        training_run=train(world, tiny_base, train_v, parent_version=parent, hyperparameters={"rank": 8})
    )
    assert child.parent == parent and adapter_config(child)["r"] == 4


def refused(call: Any) -> dict[str, list[str]]:
    jobs, runs = Job.objects.count(), TrainingRun.objects.count()
    with pytest.raises(ValidationError) as info:
        call()
    assert (Job.objects.count(), TrainingRun.objects.count()) == (jobs, runs), "a refused run queues nothing"
    return info.value.message_dict


def test_dpo_refusals_name_the_field(world: Any, tiny_base: Any) -> None:
    examples = make_version(world.project, product_rows(0, 12), split="train")
    prefs = preference_version(world.project)

    def launch(**kw: Any) -> Any:
        args = {
            "project": world.project,
            "user": world.lead,
            "base_model": tiny_base,
            "train_version": prefs,
            "val_version": None,
            "method": "lora",
            "placement": "attention",
            "hyperparameters": dict(TINY_HP),
            "objective": "dpo",
        }
        args.update(kw)
        return services.training_run_create(**args)

    assert "preference" in refused(lambda: launch(train_version=examples))["train_version"][0]
    assert "beta" in refused(lambda: launch(beta=0))
    assert "LoRA-family" in " ".join(refused(lambda: launch(method="ia3", placement=None))["method"])
    assert "objective" in refused(lambda: launch(objective="ppo"))


def test_a_parent_whose_adapter_does_not_fit_is_refused(world: Any, tiny_base: Any) -> None:
    train_v = make_version(world.project, product_rows(0, 12), split="train")
    ia3 = ModelVersion.objects.get(
        training_run=train(world, tiny_base, train_v, method="ia3", placement=None)
    )
    errors = refused(
        lambda: services.training_run_create(
            project=world.project,
            user=world.lead,
            base_model=tiny_base,
            train_version=train_v,
            val_version=None,
            method="lora",
            placement="attention",
            hyperparameters=dict(TINY_HP),
            parent_version=ia3,
        )
    )
    assert "IA3 adapter" in errors["parent_version"][0]
