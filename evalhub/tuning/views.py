"""Pages of the fine-tuning stage. Leads only: they launch runs and decide which version ships."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from evalhub.core.storage import artifact_from_key
from evalhub.datasets.models import DatasetVersion
from evalhub.projects.access import Access, project_view
from evalhub.projects.models import Role
from evalhub.tuning import charts, selectors, services
from evalhub.tuning.downloads import zip_folder
from evalhub.tuning.forms import BaseVersionForm, RunForm, SweepForm, apply_errors
from evalhub.tuning.models import BaseModel, ModelVersion, Sweep, TrainingRun

LEAD = Role.LEAD


def _first_error(exc: ValidationError) -> str:
    if hasattr(exc, "error_dict"):
        return "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items())
    return " ".join(exc.messages)


# --- training runs ----------------------------------------------------------------------------------------------


@project_view(min_role=LEAD)
def run_list(request: HttpRequest, access: Access) -> HttpResponse:
    return render(
        request,
        "tuning/run_list.html",
        {
            "runs": selectors.runs_of_project(access.project)[:200],
            "has_base_models": BaseModel.objects.exists(),
            "tab": "runs",
        },
    )


@project_view(min_role=LEAD)
def run_create(request: HttpRequest, access: Access) -> HttpResponse:
    if request.method == "POST":
        form = RunForm(access.project, request.POST)
        if form.is_valid():
            data = form.cleaned_data
            try:
                run = services.training_run_create(
                    project=access.project,
                    user=request.user,
                    base_model=data["base_model"],
                    train_version=data["train_version"],
                    val_version=data.get("val_version"),
                    method=data["method"],
                    placement=form.placement_value(),
                    hyperparameters=form.hyperparameters(),
                    name=data.get("name", ""),
                )
            except ValidationError as exc:
                apply_errors(form, exc)
            else:
                messages.success(request, f"Training run “{run.name}” is queued on the GPU queue.")
                return redirect("tuning:run-detail", project_id=access.project.pk, run_id=run.pk)
    else:
        initial = {**RunForm.initial_for(request.GET.get("method", "lora")), **_latest_splits(access)}
        form = RunForm(access.project, initial=initial)
    return render(
        request,
        "tuning/run_form.html",
        {
            "form": form,
            "defaults": services.method_defaults(),
            "has_base_models": BaseModel.objects.exists(),
            "workers_note": selectors.gpu_worker_note(),
            "tab": "launch",
        },
    )


def _latest_splits(access: Access) -> dict[str, int]:
    """Pre-select the newest train and validation splits (what a lead picks nine times out of ten)."""
    picked: dict[str, int] = {}
    for field, split in (("train_version", "train"), ("val_version", "validation")):
        version = (
            DatasetVersion.objects.filter(dataset__project=access.project, split_name=split)
            .order_by("-created_at", "-pk")
            .first()
        )
        if version is not None:
            picked[field] = version.pk
    return picked


def _run(access: Access, run_id: int) -> TrainingRun:
    return get_object_or_404(
        TrainingRun.objects.select_related(
            "job", "base_model", "train_version__dataset", "val_version__dataset", "sweep"
        ),
        project=access.project,
        pk=run_id,
    )


@project_view(min_role=LEAD)
def run_detail(request: HttpRequest, access: Access, run_id: int) -> HttpResponse:
    run = _run(access, run_id)
    series = services.loss_series(run)
    version = ModelVersion.objects.filter(training_run=run).first()
    config_rows = sorted((run.config or {}).items())
    return render(
        request,
        "tuning/run_detail.html",
        {
            "run": run,
            "job": run.job,
            "series": series,
            "loss_fig": charts.loss_chart(series),
            "config_rows": config_rows,
            "result": run.result or {},
            "version": version,
            "tab": "runs",
        },
    )


@project_view(min_role=LEAD)
def run_losses(request: HttpRequest, access: Access, run_id: int) -> JsonResponse:
    """Polled by the run page's live loss chart."""
    return JsonResponse(services.loss_series(_run(access, run_id)))


@project_view(min_role=LEAD)
@require_POST
def run_cancel(request: HttpRequest, access: Access, run_id: int) -> HttpResponse:
    run = _run(access, run_id)
    services.training_run_cancel(run)
    messages.info(
        request, "Cancel requested; a running job stops after its current step and keeps a checkpoint."
    )
    return redirect("tuning:run-detail", project_id=access.project.pk, run_id=run.pk)


@project_view(min_role=LEAD)
def compare(request: HttpRequest, access: Access) -> HttpResponse:
    include_trials = request.GET.get("trials") == "1"
    available = list(selectors.finished_runs(access.project, include_trials=include_trials)[:100])
    chosen_ids = {int(v) for v in request.GET.getlist("run") if v.isdigit()}
    runs = [r for r in available if r.pk in chosen_ids] if chosen_ids else available[:12]
    # The chart of validation curves needs the histories the list query deferred.
    histories = dict(
        TrainingRun.objects.filter(pk__in=[r.pk for r in runs]).values_list("pk", "loss_history")
    )
    for run in runs:
        run.loss_history = histories.get(run.pk, [])
    return render(
        request,
        "tuning/compare.html",
        {
            "runs": runs,
            "available": available,
            "chosen": {r.pk for r in runs},
            "include_trials": include_trials,
            "figs": charts.comparison_charts(runs) if runs else {},
            "tab": "compare",
        },
    )


# --- model versions ---------------------------------------------------------------------------------------------


@project_view(min_role=LEAD)
def model_list(request: HttpRequest, access: Access) -> HttpResponse:
    return render(
        request,
        "tuning/model_list.html",
        {
            "versions": selectors.versions_of_project(access.project),
            "base_form": BaseVersionForm(),
            "tab": "models",
        },
    )


@project_view(min_role=LEAD)
@require_POST
def model_create_base(request: HttpRequest, access: Access) -> HttpResponse:
    form = BaseVersionForm(request.POST)
    if form.is_valid():
        version = services.model_version_create_base(
            project=access.project,
            base_model=form.cleaned_data["base_model"],
            user=request.user,
            name=form.cleaned_data["name"],
        )
        messages.success(request, f"Created {version}.")
        return redirect("tuning:model-detail", project_id=access.project.pk, version_id=version.pk)
    messages.error(request, "Choose a base model and a name.")
    return redirect("tuning:model-list", project_id=access.project.pk)


def _version(access: Access, version_id: int) -> ModelVersion:
    return get_object_or_404(
        ModelVersion.objects.select_related("base_model", "training_run", "merge_job", "parent"),
        project=access.project,
        pk=version_id,
    )


@project_view(min_role=LEAD)
def model_detail(request: HttpRequest, access: Access, version_id: int) -> HttpResponse:
    version = _version(access, version_id)
    lineage = version.lineage or {}
    return render(
        request,
        "tuning/model_detail.html",
        {
            "version": version,
            "lineage": lineage,
            "config_rows": sorted((lineage.get("config") or {}).items()),
            "package_rows": sorted((lineage.get("package_versions") or {}).items()),
            "merge_job": version.merge_job,
            "tab": "models",
        },
    )


def _zip_response(folder: Any, filename: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(
        zip_folder(folder, arcroot=filename.removesuffix(".zip")), content_type="application/zip"
    )
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@project_view(min_role=LEAD)
def model_adapter(request: HttpRequest, access: Access, version_id: int) -> HttpResponse:
    """The adapter folder in PEFT's own format (PeftModel.from_pretrained loads the unzipped folder)."""
    version = _version(access, version_id)
    try:
        folder = services.adapter_dir(version)
    except ValidationError as exc:
        raise Http404(_first_error(exc)) from None
    return _zip_response(folder, f"{access.project.pk}-v{version.number}-adapter.zip")


@project_view(min_role=LEAD)
@require_POST
def model_export(request: HttpRequest, access: Access, version_id: int) -> HttpResponse:
    version = _version(access, version_id)
    try:
        services.model_version_export_merged(version, user=request.user)
    except ValidationError as exc:
        messages.error(request, _first_error(exc))
    else:
        messages.success(request, "Merging the adapter into the base model on a GPU worker.")
    return redirect("tuning:model-detail", project_id=access.project.pk, version_id=version.pk)


@project_view(min_role=LEAD)
def model_merged(request: HttpRequest, access: Access, version_id: int) -> HttpResponse:
    version = _version(access, version_id)
    folder = artifact_from_key(version.merged_key) if version.merged_key else None
    if folder is None or not folder.is_dir():
        raise Http404("No merged export yet")
    return _zip_response(folder, f"{access.project.pk}-v{version.number}-merged.zip")


# --- sweeps -----------------------------------------------------------------------------------------------------


@project_view(min_role=LEAD)
def sweep_list(request: HttpRequest, access: Access) -> HttpResponse:
    return render(
        request,
        "tuning/sweep_list.html",
        {"sweeps": selectors.sweeps_of_project(access.project), "tab": "sweeps"},
    )


@project_view(min_role=LEAD)
def sweep_create(request: HttpRequest, access: Access) -> HttpResponse:
    if request.method == "POST":
        form = SweepForm(access.project, request.POST)
        if form.is_valid():
            data = form.cleaned_data
            try:
                sweep = services.sweep_create(
                    project=access.project,
                    user=request.user,
                    name=data["name"],
                    base_model=data["base_model"],
                    train_version=data["train_version"],
                    val_version=data["val_version"],
                    method=data["method"],
                    hyperparameters=data.get("hyperparameters") or {},
                    search_space=data["search_space"],
                    n_trials=data["n_trials"],
                    seed=data["seed"],
                    initial_trials=data.get("initial_trials") or [],
                    pruner_startup_trials=data["pruner_startup_trials"],
                    pruner_warmup_steps=data["pruner_warmup_steps"],
                )
            except ValidationError as exc:
                apply_errors(form, exc)
            else:
                messages.success(request, f"Sweep “{sweep.name}” is queued on the GPU queue.")
                return redirect("tuning:sweep-detail", project_id=access.project.pk, sweep_id=sweep.pk)
    else:
        form = SweepForm(access.project, initial=_latest_splits(access))
    return render(
        request,
        "tuning/sweep_form.html",
        {
            "form": form,
            "has_base_models": BaseModel.objects.exists(),
            "tab": "sweeps",
        },
    )


def _sweep(access: Access, sweep_id: int) -> Sweep:
    return get_object_or_404(
        Sweep.objects.select_related(
            "job", "base_model", "best_run", "train_version__dataset", "val_version__dataset"
        ),
        project=access.project,
        pk=sweep_id,
    )


@project_view(min_role=LEAD)
def sweep_detail(request: HttpRequest, access: Access, sweep_id: int) -> HttpResponse:
    sweep = _sweep(access, sweep_id)
    trials = list(sweep.trials.order_by("trial_number", "pk"))
    result = sweep.result or {}
    importance = result.get("importance") or {}
    promoted = (
        ModelVersion.objects.filter(training_run_id=sweep.best_run_id).first() if sweep.best_run_id else None
    )
    return render(
        request,
        "tuning/sweep_detail.html",
        {
            "sweep": sweep,
            "job": sweep.job,
            "trials": trials,
            "params": list(sweep.search_space),
            "result": result,
            "importance": sorted(importance.items(), key=lambda kv: -kv[1]),
            "figs": charts.sweep_charts(trials, importance) if trials else {},
            "promoted": promoted,
            "min_importance_trials": services.MIN_TRIALS_FOR_IMPORTANCE,
            "tab": "sweeps",
        },
    )


@project_view(min_role=LEAD)
@require_POST
def sweep_promote(request: HttpRequest, access: Access, sweep_id: int) -> HttpResponse:
    sweep = _sweep(access, sweep_id)
    try:
        version = services.sweep_promote_best(sweep, user=request.user)
    except ValidationError as exc:
        messages.error(request, _first_error(exc))
        return redirect("tuning:sweep-detail", project_id=access.project.pk, sweep_id=sweep.pk)
    messages.success(request, f"The best trial is now {version}.")
    return redirect("tuning:model-detail", project_id=access.project.pk, version_id=version.pk)
