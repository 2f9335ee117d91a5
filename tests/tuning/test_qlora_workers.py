"""QLoRA availability follows the GPU workers' reports, not the web process; the launch page says what they have."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from evalhub.jobs.models import Job, WorkerNode
from evalhub.tuning import services
from evalhub.tuning.models import TrainingRun
from tests.tuning.test_pages_and_api import form_data

pytestmark = pytest.mark.django_db

H100 = {"name": "NVIDIA H100 80GB HBM3", "memory_bytes": 85_899_345_920, "bf16": True}
MESSAGE = (
    "QLoRA needs a CUDA GPU with bitsandbytes: no worker on the gpu queue with one has reported in the last "
    "10 minutes, and this server has none"
)


@pytest.fixture(autouse=True)
def _web_process_without_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    # The production web server: whatever machine runs the tests, this process has no CUDA + bitsandbytes.
    monkeypatch.setattr(services, "this_process_has_qlora", lambda: False)


def gpu_node(hostname: str = "celery@gpu-1", *, age: timedelta = timedelta(minutes=1), **fields: Any) -> WorkerNode:
    seen = timezone.now() - age
    values: dict[str, Any] = {
        "queues": ["gpu"],
        "cuda": True,
        "cuda_devices": [H100],
        "bitsandbytes": True,
        "started_at": seen,
        "last_seen": seen,
        **fields,
    }
    return WorkerNode.objects.create(hostname=hostname, **values)


def test_qlora_is_supported_when_a_fresh_gpu_worker_has_cuda_and_bitsandbytes() -> None:
    gpu_node()
    assert services.qlora_supported() is True


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"age": timedelta(minutes=11)}, id="stale"),
        pytest.param({"cuda": False, "cuda_devices": []}, id="cpu-only"),
        pytest.param({"bitsandbytes": False}, id="no-bitsandbytes"),
        pytest.param({"queues": ["default"]}, id="not-on-the-gpu-queue"),
        pytest.param({"stopped_at": timezone.now()}, id="stopped"),
    ],
)
def test_qlora_is_refused_without_a_live_capable_gpu_worker(fields: dict[str, Any]) -> None:
    gpu_node(**fields)
    assert services.qlora_supported() is False


def test_a_single_node_with_its_own_gpu_still_runs_qlora(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(services, "this_process_has_qlora", lambda: True)
    assert services.qlora_supported() is True


def test_launch_form_and_api_refuse_qlora_saying_why(
    world: Any, tiny_base: Any, versions: Any, client_for: Any, api_for: Any
) -> None:
    gpu_node(age=timedelta(hours=2))  # a GPU worker that went away long ago does not count
    url = reverse("tuning:run-create", kwargs={"project_id": world.project.pk})
    page = client_for(world.lead).post(url, form_data(tiny_base, *versions, method="qlora"))
    assert page.status_code == 200
    assert page.context["form"].errors["method"] == [MESSAGE]
    assert MESSAGE in page.content.decode()

    body = {
        "base_model": tiny_base.pk,
        "train_version": versions[0].pk,
        "val_version": versions[1].pk,
        "method": "qlora",
        "hyperparameters": {"max_steps": 6},
    }
    answer = api_for(world.lead).post(f"/api/projects/{world.project.pk}/training-runs/", body, format="json")
    assert answer.status_code == 400 and answer.json() == {"method": [MESSAGE]}
    assert not TrainingRun.objects.exists() and not Job.objects.exists()


def launch_page(world: Any, client_for: Any) -> str:
    page = client_for(world.lead).get(reverse("tuning:run-create", kwargs={"project_id": world.project.pk}))
    assert page.status_code == 200
    return page.content.decode()


def test_launch_page_says_when_no_gpu_worker_has_reported(world: Any, client_for: Any) -> None:
    gpu_node(age=timedelta(minutes=30))
    assert "Workers: none on the gpu queue has reported in the last 10 minutes; runs wait in the queue" in launch_page(
        world, client_for
    )


def test_launch_page_names_the_gpu_workers_devices(world: Any, client_for: Any) -> None:
    gpu_node("celery@gpu-1")
    gpu_node("celery@gpu-2")
    gpu_node("celery@cpu-1", cuda=False, cuda_devices=[])
    gpu_node("celery@cpu-only-queue", queues=["default"], cuda=False, cuda_devices=[])
    assert (
        "Workers: 3 on the gpu queue, 2 with CUDA: 2× NVIDIA H100 80GB HBM3 (80.0 GiB, bf16)."
        in launch_page(world, client_for)
    )


def test_launch_page_says_when_gpu_workers_have_no_cuda_or_no_bitsandbytes(world: Any, client_for: Any) -> None:
    node = gpu_node(cuda=False, cuda_devices=[])
    assert "Workers: 1 on the gpu queue, none with CUDA; runs train on CPU." in launch_page(world, client_for)

    t4 = {"name": "Tesla T4", "memory_bytes": 16_106_127_360, "bf16": False}
    WorkerNode.objects.filter(pk=node.pk).update(cuda=True, cuda_devices=[t4], bitsandbytes=False)
    assert (
        "Workers: 1 on the gpu queue, 1 with CUDA: Tesla T4 (15.0 GiB, no bf16); none has bitsandbytes, so no QLoRA."
        in launch_page(world, client_for)
    )


def test_launch_page_escapes_what_a_worker_reported(world: Any, client_for: Any) -> None:
    gpu_node(cuda_devices=[{"name": "<script>alert(1)</script>", "memory_bytes": 0, "bf16": False}])
    html = launch_page(world, client_for)
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
