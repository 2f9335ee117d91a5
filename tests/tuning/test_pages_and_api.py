"""The tuning pages and API as a lead uses them: launch, watch, compare, download, export, sweep."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from django.urls import reverse

from evalhub.jobs.models import Job
from evalhub.jobs.tasks import execute_job
from evalhub.tuning import services
from evalhub.tuning.models import ModelVersion, Sweep, TrainingRun
from tests.tuning.conftest import TINY_HP

pytestmark = pytest.mark.django_db


def form_data(base: Any, train: Any, val: Any, **overrides: Any) -> dict[str, Any]:
    from evalhub.tuning.forms import RunForm

    data = {k: ("" if v is None else v) for k, v in RunForm.initial_for("lora").items()}
    data.update(
        base_model=base.pk,
        train_version=train.pk,
        val_version=val.pk,
        placement="attention",
        group_by_length="on",
        **TINY_HP,
    )
    data.update(overrides)
    data.pop("bf16", None)  # an unchecked box is absent from a real POST
    return data


def trained_run(world: Any, base: Any, versions: Any, **hp: Any) -> TrainingRun:
    run = services.training_run_create(
        project=world.project,
        user=world.lead,
        base_model=base,
        train_version=versions[0],
        val_version=versions[1],
        method=hp.pop("method", "lora"),
        placement="attention",
        hyperparameters={**TINY_HP, **hp},
    )
    assert execute_job(run.job.pk) == "succeeded"
    run.refresh_from_db()
    return run


def test_launch_form_prefills_defaults_and_queues_a_run(
    world: Any, tiny_base: Any, versions: Any, client_for: Any
) -> None:
    client = client_for(world.lead)
    url = reverse("tuning:run-create", kwargs={"project_id": world.project.pk})
    page = client.get(url + "?method=dora")
    assert page.status_code == 200
    form = page.context["form"]
    assert form.initial["learning_rate"] == 1e-4 and form.initial["method"] == "dora"
    assert b"method-defaults" in page.content  # per-method defaults for the method switcher

    response = client.post(url, form_data(tiny_base, *versions))
    run = TrainingRun.objects.get()
    assert response.status_code == 302 and response["Location"].endswith(f"/runs/{run.pk}/")
    assert run.job.queue == "gpu" and run.config["rank"] == 4 and run.config["bf16"] is False


def test_launch_form_shows_a_refusal_next_to_the_field(
    world: Any, tiny_base: Any, versions: Any, client_for: Any
) -> None:
    url = reverse("tuning:run-create", kwargs={"project_id": world.project.pk})
    page = client_for(world.lead).post(
        url, form_data(tiny_base, *versions, placement="custom", target_modules="q_proj, attention_dense")
    )
    assert page.status_code == 200
    assert "no module named 'attention_dense'" in " ".join(page.context["form"].errors["placement"])
    assert not Job.objects.exists()


def test_run_page_and_loss_endpoint_and_comparison_page(
    world: Any, tiny_base: Any, versions: Any, client_for: Any
) -> None:
    lora = trained_run(world, tiny_base, versions)
    ia3 = trained_run(world, tiny_base, versions, method="ia3", learning_rate=3e-3)
    client = client_for(world.lead)
    kwargs = {"project_id": world.project.pk, "run_id": lora.pk}
    page = client.get(reverse("tuning:run-detail", kwargs=kwargs))
    assert page.status_code == 200
    text = page.content.decode()
    assert "best val loss" in text and "tokens/s" in text and lora.job.log.splitlines()[0][:20] in text
    assert page.context["loss_fig"]["data"][0]["x"] == [1, 2, 3, 4, 5, 6]

    losses = client.get(reverse("tuning:run-losses", kwargs=kwargs)).json()
    assert losses["finished"] is True and losses["val"]["x"] == [3, 6]

    compare = client.get(reverse("tuning:compare", kwargs={"project_id": world.project.pk}))
    assert compare.status_code == 200
    assert {r.pk for r in compare.context["runs"]} == {lora.pk, ia3.pk}
    text = compare.content.decode()
    assert "lora" in text and "ia3" in text
    shares = {r.method: r.result["trainable_share"] for r in compare.context["runs"]}
    assert shares["ia3"] < shares["lora"], "IA3 trains fewer parameters than LoRA; the page shows both"
    assert set(compare.context["figs"]) == {"val_loss", "trade_off", "memory", "speed", "curves"}


def test_adapter_download_is_a_peft_folder_and_merged_export_matches_it(
    world: Any, tiny_base: Any, versions: Any, client_for: Any, tiny_model_dir: Path, tmp_path: Path
) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from trainer.models import ModelSource, load_base

    run = trained_run(world, tiny_base, versions)
    version = ModelVersion.objects.get(training_run=run)
    client = client_for(world.lead)
    kwargs = {"project_id": world.project.pk, "version_id": version.pk}
    assert client.get(reverse("tuning:model-detail", kwargs=kwargs)).status_code == 200
    response = client.get(reverse("tuning:model-adapter", kwargs=kwargs))
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    archive.extractall(tmp_path)
    (folder,) = list(tmp_path.iterdir())
    assert (folder / "adapter_config.json").is_file()

    base, tokenizer = load_base(
        ModelSource(kind="folder", path_or_id=str(tiny_model_dir)), tmp_path / "cache"
    )
    inputs = tokenizer("Describe the backpack.", return_tensors="pt")
    with torch.no_grad():
        adapted = PeftModel.from_pretrained(base, str(folder)).eval()(**inputs).logits

    assert client.post(reverse("tuning:model-export", kwargs=kwargs)).status_code == 302
    version.refresh_from_db()
    assert execute_job(version.merge_job.pk) == "succeeded"
    version.refresh_from_db()
    merged_zip = client.get(reverse("tuning:model-merged", kwargs=kwargs))
    assert merged_zip.status_code == 200
    out = tmp_path / "merged"
    zipfile.ZipFile(io.BytesIO(b"".join(merged_zip.streaming_content))).extractall(out)
    merged = AutoModelForCausalLM.from_pretrained(str(next(out.iterdir())), local_files_only=True).eval()
    with torch.no_grad():
        assert torch.allclose(merged(**inputs).logits, adapted, atol=1e-4)


def test_api_create_detail_losses_cancel_and_versions(
    world: Any, tiny_base: Any, versions: Any, api_for: Any
) -> None:
    api = api_for(world.lead)
    pid = world.project.pk
    assert [b["name"] for b in api.get(f"/api/projects/{pid}/base-models/").json()["results"]] == [
        "tiny-llama"
    ]
    body = {
        "base_model": tiny_base.pk,
        "train_version": versions[0].pk,
        "val_version": versions[1].pk,
        "method": "lora",
        "placement": ["q_proj", "v_proj"],
        "hyperparameters": TINY_HP,
    }
    bad = api.post(
        f"/api/projects/{pid}/training-runs/",
        {**body, "hyperparameters": {**TINY_HP, "rank": 0}},
        format="json",
    )
    assert bad.status_code == 400 and "rank" in bad.json() and not Job.objects.exists()
    foreign = api.post(
        f"/api/projects/{pid}/training-runs/", {**body, "train_version": 999_999}, format="json"
    )
    assert foreign.status_code == 400 and "train_version" in foreign.json()

    created = api.post(f"/api/projects/{pid}/training-runs/", body, format="json")
    assert created.status_code == 201, created.json()
    run_id = created.json()["id"]
    assert created.json()["config"]["placement"] == ["q_proj", "v_proj"]
    assert execute_job(created.json()["job"]["id"]) == "succeeded"
    detail = api.get(f"/api/projects/{pid}/training-runs/{run_id}/").json()
    assert detail["status"] == "succeeded" and detail["model_version"]
    losses = api.get(f"/api/projects/{pid}/training-runs/{run_id}/losses/").json()
    assert len(losses["train"]["y"]) == 6
    version = api.get(f"/api/projects/{pid}/model-versions/{detail['model_version']}/").json()
    assert version["lineage"]["datasets"][0]["version_id"] == versions[0].pk and not version["is_base_only"]
    assert api.post(f"/api/projects/{pid}/training-runs/{run_id}/cancel/").status_code == 200

    # A reviewer may not launch runs (403); an outsider does not even learn the project exists (404).
    assert (
        api_for(world.reviewer).post(f"/api/projects/{pid}/training-runs/", body, format="json").status_code
        == 403
    )
    assert api_for(world.outsider).get(f"/api/projects/{pid}/training-runs/{run_id}/").status_code == 404


def test_api_sweep_create_and_sweep_page(
    world: Any, tiny_base: Any, versions: Any, api_for: Any, client_for: Any
) -> None:
    pid = world.project.pk
    body = {
        "name": "small",
        "base_model": tiny_base.pk,
        "train_version": versions[0].pk,
        "val_version": versions[1].pk,
        "n_trials": 2,
        "pruner_startup_trials": 2,
        "hyperparameters": {**TINY_HP, "placement": "attention"},
        "search_space": {"learning_rate": {"low": 1e-3, "high": 1e-2, "log": True}},
    }
    created = api_for(world.lead).post(f"/api/projects/{pid}/sweeps/", body, format="json")
    assert created.status_code == 201, created.json()
    sweep = Sweep.objects.get()
    assert execute_job(sweep.job.pk) == "succeeded"
    detail = api_for(world.lead).get(f"/api/projects/{pid}/sweeps/{sweep.pk}/").json()
    assert [t["trial_state"] for t in detail["trials"]] == ["complete", "complete"]
    assert detail["best_run"] in {t["id"] for t in detail["trials"]}

    page = client_for(world.lead).get(
        reverse("tuning:sweep-detail", kwargs={"project_id": pid, "sweep_id": sweep.pk})
    )
    assert page.status_code == 200
    assert "★ best" in page.content.decode()
    assert {"objective", "curves"} <= set(page.context["figs"])
    promote = client_for(world.lead).post(
        reverse("tuning:sweep-promote", kwargs={"project_id": pid, "sweep_id": sweep.pk})
    )
    assert (
        promote.status_code == 302
        and ModelVersion.objects.filter(training_run_id=detail["best_run"]).exists()
    )


def test_schema_lists_the_tuning_api() -> None:
    from drf_spectacular.generators import SchemaGenerator
    from drf_spectacular.validation import validate_schema

    schema = SchemaGenerator().get_schema(request=None, public=True)
    validate_schema(schema)
    paths = set(schema["paths"])
    assert "/api/projects/{project_id}/training-runs/{run_id}/losses/" in paths
    assert "/api/projects/{project_id}/sweeps/" in paths
    assert (
        json.dumps(schema["paths"]["/api/projects/{project_id}/training-runs/"]["post"]).count(
            "TrainingRunCreate"
        )
        >= 1
    )


def test_launch_form_preselects_the_newest_splits(
    world: Any, tiny_base: Any, versions: Any, client_for: Any
) -> None:
    page = client_for(world.lead).get(reverse("tuning:run-create", kwargs={"project_id": world.project.pk}))
    assert page.context["form"].initial["train_version"] == versions[0].pk
    assert page.context["form"].initial["val_version"] == versions[1].pk
