"""Every state change of the tuning app: base models, training runs, model versions, merged exports, sweeps.

Refusals happen here, before anything is queued: a config that cannot work raises Django's ValidationError keyed
by the field at fault (the trainer's own `ConfigError(field, message)` is translated), so a form shows the message
next to the field and the API answers 400 naming it. The long work itself (training, merging, sweeps) runs in job
handlers (see jobs.py) that call the `*_execute` functions below on a GPU worker.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import importlib.util
import json
import logging
import platform
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Max

from evalhub.core.storage import artifact_dir, artifact_from_key, artifact_key, artifact_path
from evalhub.datasets.models import DatasetVersion, Example
from evalhub.jobs import services as job_services
from evalhub.jobs import workers as job_workers
from evalhub.jobs.models import FINISHED, Job
from evalhub.projects.models import Project
from evalhub.tuning.models import BaseModel, ModelVersion, Sweep, TrainingRun, TrialState

if TYPE_CHECKING:
    from evalhub.jobs.context import JobContext
    from trainer.config import TrainConfig
    from trainer.models import ModelSource
    from trainer.train import TrainResult

logger = logging.getLogger(__name__)

METHOD_LABELS: dict[str, str] = {
    "lora": "LoRA",
    "qlora": "QLoRA",
    "dora": "DoRA",
    "ia3": "IA3",
    "prefix": "Prefix tuning",
    "prompt": "Prompt tuning",
    "full": "Full fine-tune",
}
QLORA_UNAVAILABLE = (
    "QLoRA needs a CUDA GPU with bitsandbytes: no worker on the gpu queue with one has reported in the last "
    f"{job_workers.LIVE_WITHIN.total_seconds() / 60:.0f} minutes, and this server has none"
)
LOSS_FLUSH_EVERY_S = 2.0

TRAIN_KIND = "tuning.train"
MERGE_KIND = "tuning.export_merged"
SWEEP_KIND = "tuning.sweep"


# --- environment ------------------------------------------------------------------------------------------------


def qlora_supported() -> bool:
    """Whether a QLoRA run can train here: a CUDA GPU with bitsandbytes where it will run. Tests monkeypatch this.

    Runs train on the workers of the gpu queue, which report what they have (evalhub/jobs/workers.py); the web
    process that asks usually has no GPU. A live such worker says yes; failing that, this very process having both
    says yes too (one node, or an embedded setup that trains in-process without workers).
    """
    if job_workers.gpu_workers_with_cuda(job_workers.LIVE_WITHIN):
        return True
    return this_process_has_qlora()


def this_process_has_qlora() -> bool:
    if importlib.util.find_spec("bitsandbytes") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


def model_cache_dir() -> Path:
    return Path(settings.MODEL_CACHE_DIR)


@functools.lru_cache(maxsize=1)
def code_revision() -> str:
    """The git commit the code runs from, else the installed package version (a wheel has no .git)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=settings.BASE_DIR,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        rev = out.stdout.strip()
        if out.returncode == 0 and len(rev) == 40:
            return rev
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        return f"evalhub {version('evalhub')}"
    except PackageNotFoundError:
        return "unknown"


def _runtime_versions() -> dict[str, str]:
    from trainer.train import package_versions

    versions = package_versions()
    versions["python"] = platform.python_version()
    for name in ("django", "optuna", "evalhub"):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            continue
    return versions


# --- base models ------------------------------------------------------------------------------------------------


def base_model_source(base_model: BaseModel) -> ModelSource:
    from trainer.models import ModelSource

    return ModelSource(
        kind=base_model.source_kind,  # type: ignore[arg-type]
        path_or_id=base_model.path_or_id,
        gguf_file=base_model.gguf_file or None,
    )


@functools.lru_cache(maxsize=16)
def _meta_model_cached(
    kind: str, path_or_id: str, gguf_file: str, cache_dir: str, allow_downloads: bool
) -> Any:
    from trainer.models import ModelSource, meta_model

    source = ModelSource(kind=kind, path_or_id=path_or_id, gguf_file=gguf_file or None)  # type: ignore[arg-type]
    return meta_model(source, Path(cache_dir), allow_downloads=allow_downloads)


def base_model_meta(base_model: BaseModel) -> Any:
    """The architecture on the meta device (no weights). Converts a GGUF once (~15 s), then milliseconds."""
    from trainer.errors import ModelLoadError

    try:
        return _meta_model_cached(
            base_model.source_kind,
            base_model.path_or_id,
            base_model.gguf_file,
            str(model_cache_dir()),
            bool(settings.ALLOW_MODEL_DOWNLOADS),
        )
    except ModelLoadError as exc:
        raise ValidationError({"base_model": f"{base_model.name}: {exc}"}) from exc
    except (OSError, ValueError) as exc:
        raise ValidationError({"base_model": f"{base_model.name} cannot be read: {exc}"}) from exc


def base_model_inspect(base_model: BaseModel) -> dict[str, Any]:
    """Read the architecture (converting a GGUF into the model cache once): refuses a path that is not a causal
    LM, and makes the first launch on this base fast. Works on an unsaved row."""
    meta = base_model_meta(base_model)
    has_template = True
    if base_model.source_kind != "hub":
        from trainer.models import resolve_local_dir

        folder = resolve_local_dir(base_model_source(base_model), model_cache_dir())
        tokenizer_config = folder / "tokenizer_config.json"
        if tokenizer_config.is_file():
            has_template = "chat_template" in json.loads(tokenizer_config.read_text()) or any(
                p.name.startswith("chat_template") for p in folder.iterdir()
            )
    return {
        "architecture": type(meta).__name__,
        "parameter_count": sum(p.numel() for p in meta.parameters()),
        "has_chat_template": has_template,
    }


def base_model_register(
    *, name: str, source: ModelSource, notes: str = "", inspect: bool = True
) -> BaseModel:
    """Register (or update, by name) an installation-wide base model; nothing is saved if it cannot be read."""
    fields: dict[str, Any] = {
        "source_kind": source.kind,
        "path_or_id": source.path_or_id,
        "gguf_file": source.gguf_file or "",
        "notes": notes,
    }
    if inspect:
        fields.update(base_model_inspect(BaseModel(name=name, **fields)))
    base, _ = BaseModel.objects.update_or_create(name=name, defaults=fields)
    return base


# --- configs ----------------------------------------------------------------------------------------------------


def _config_fields() -> dict[str, dataclasses.Field[Any]]:
    from trainer.config import TrainConfig

    return {f.name: f for f in dataclasses.fields(TrainConfig)}


def _coerce(name: str, type_text: str, value: Any) -> Any:
    """Turn a form/API value into the type TrainConfig declares (its annotations are strings: `int | None` ...)."""
    optional = "None" in type_text
    if value is None or (isinstance(value, str) and not value.strip()):
        if optional:
            return None
        raise ValidationError({name: "this setting needs a value"})
    try:
        if name == "placement":
            if isinstance(value, (list, tuple)):
                return [str(v).strip() for v in value]
            text = str(value).strip()
            from trainer.config import PLACEMENTS

            if text in PLACEMENTS:
                return text
            return [part.strip() for part in text.replace("\n", ",").split(",") if part.strip()]
        if type_text.startswith("bool"):
            if isinstance(value, bool):
                return value
            lowered = str(value).strip().lower()
            if lowered in {"1", "true", "yes", "on"}:
                return True
            if lowered in {"0", "false", "no", "off"}:
                return False
            raise ValueError(value)
        if type_text.startswith("int"):
            if isinstance(value, bool):
                raise ValueError(value)
            number = float(value)
            if not number.is_integer():
                raise ValueError(value)
            return int(number)
        if type_text.startswith("float"):
            if isinstance(value, bool):
                raise ValueError(value)
            return float(value)
        return str(value)
    except (TypeError, ValueError):
        kind = type_text.split("|")[0].strip()
        raise ValidationError({name: f"{value!r} is not a valid {kind}"}) from None


def build_config(
    method: str, placement: Any = None, hyperparameters: dict[str, Any] | None = None
) -> TrainConfig:
    """The method's defaults with the given settings on top, each coerced to its type. Unknown names are refused."""
    from trainer.config import METHODS, TrainConfig

    if method not in METHODS:
        raise ValidationError({"method": f"unknown method {method!r}; choose one of {', '.join(METHODS)}"})
    fields = _config_fields()
    values: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    given = dict(hyperparameters or {})
    if placement not in (None, "", []):
        given["placement"] = placement
    for key, raw in given.items():
        if key == "method":
            continue
        if key not in fields:
            errors.setdefault(key, []).append(f"unknown setting {key!r}")
            continue
        try:
            values[key] = _coerce(key, str(fields[key].type), raw)
        except ValidationError as exc:
            for field_name, messages in exc.message_dict.items():
                errors.setdefault(field_name, []).extend(messages)
    if errors:
        raise ValidationError(errors)
    return TrainConfig.defaults_for(method, **values)


def method_defaults() -> dict[str, dict[str, Any]]:
    """Every method's default settings, for pre-filling forms."""
    from trainer.config import METHODS, TrainConfig

    return {m: TrainConfig.defaults_for(m).to_dict() for m in METHODS}


def config_validate(config: TrainConfig, base_model: BaseModel) -> None:
    """Refuse a config that cannot work on this base model, naming the field. Nothing is loaded but the
    architecture (meta device)."""
    from trainer.config import validate
    from trainer.errors import ConfigError

    if config.method == "qlora" and not qlora_supported():
        raise ValidationError({"method": QLORA_UNAVAILABLE})
    meta = base_model_meta(base_model)
    try:
        validate(config, meta, has_cuda=config.method == "qlora")
    except ConfigError as exc:
        raise ValidationError({exc.field: exc.message}) from exc


# --- dataset versions -------------------------------------------------------------------------------------------


def _example_messages(example: Example, system_prompt: str) -> list[dict[str, str]] | None:
    """One example as TRL conversational messages, or None when it has no answer to learn from."""
    if example.messages:
        messages = [
            {"role": str(m.get("role")), "content": str(m.get("content", ""))} for m in example.messages
        ]
    else:
        messages = [{"role": "user", "content": example.prompt}]
    if example.reference:
        if messages and messages[-1]["role"] == "assistant":
            messages = messages[:-1]
        messages.append({"role": "assistant", "content": example.reference})
    elif not (messages and messages[-1]["role"] == "assistant"):
        return None
    if system_prompt and not any(m["role"] == "system" for m in messages):
        messages.insert(0, {"role": "system", "content": system_prompt})
    return messages


def _usable_rows(version: DatasetVersion) -> int:
    with_reference = version.examples.exclude(reference="").count()
    # Chat rows may carry the answer as their last assistant turn instead of a reference column.
    chat_only = version.examples.filter(reference="", messages__isnull=False).only("messages")
    with_turn = sum(
        1
        for e in chat_only.iterator(chunk_size=2000)
        if e.messages and isinstance(e.messages[-1], dict) and e.messages[-1].get("role") == "assistant"
    )
    return with_reference + with_turn


def _check_version_of_project(
    project: Project, version: DatasetVersion | None, field: str, *, required: bool
) -> bool:
    """The checks every training-data field shares. False: no version given and none needed (nothing to check)."""
    if version is None:
        if required:
            raise ValidationError({field: "choose a dataset version"})
        return False
    if version.dataset.project_id != project.pk:
        raise ValidationError({field: "that dataset version belongs to another project"})
    return True


def check_sft_version(
    project: Project, version: DatasetVersion | None, field: str, *, required: bool = True
) -> None:
    if not _check_version_of_project(project, version, field, required=required):
        return
    assert version is not None
    if _usable_rows(version) == 0:
        raise ValidationError(
            {
                field: f"{version.label} has no reference answers (no reference column and no assistant turn), so "
                "supervised fine-tuning has nothing to learn from; import it with a reference column",
            }
        )


def check_preference_version(
    project: Project, version: DatasetVersion | None, field: str, *, required: bool = True
) -> None:
    """DPO learns from preference versions (prompt, chosen = reference, rejected), e.g. a feedback export."""
    from evalhub.datasets.models import VersionKind

    if not _check_version_of_project(project, version, field, required=required):
        return
    assert version is not None
    if (
        version.kind != VersionKind.PREFERENCE
        or not version.examples.exclude(reference="").exclude(rejected="").exists()
    ):
        raise ValidationError(
            {
                field: f"{version.label} holds no preference pairs (chosen and rejected answers); DPO needs a preference "
                "version, such as a feedback export of arena votes"
            }
        )


def export_preference_jsonl(
    version: DatasetVersion, dest: Path, *, system_prompt: str = ""
) -> dict[str, Any]:
    """Write a preference version as TRL conversational preference JSONL (prompt messages, chosen, rejected)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    written = skipped = 0
    tmp = dest.with_name(f".{dest.name}.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for example in version.examples.order_by("index").iterator(chunk_size=2000):
            if not example.reference or not example.rejected or example.reference == example.rejected:
                skipped += 1
                continue
            prompt = example.chat_messages()
            if system_prompt and not any(m.get("role") == "system" for m in prompt):
                prompt = [{"role": "system", "content": system_prompt}, *prompt]
            row = {
                "prompt": prompt,
                "chosen": [{"role": "assistant", "content": example.reference}],
                "rejected": [{"role": "assistant", "content": example.rejected}],
            }
            line = json.dumps(row, ensure_ascii=False) + "\n"
            fh.write(line)
            digest.update(line.encode("utf-8"))
            written += 1
    tmp.replace(dest)
    return {
        "version_id": version.pk,
        "label": version.label,
        "content_hash": version.content_hash,
        "rows": written,
        "skipped_without_answer": skipped,
        "file_sha256": digest.hexdigest(),
    }


def _peft_type_of(method: str) -> str:
    return {"ia3": "IA3", "prefix": "PREFIX_TUNING", "prompt": "PROMPT_TUNING"}.get(method, "LORA")


def parent_adapter_problems(parent: ModelVersion, project: Project, method: str) -> list[str]:
    """Why a run cannot continue `parent`'s adapter (empty when it can; a base-only parent always can)."""
    if parent.project_id != project.pk:
        return ["that model version belongs to another project"]
    if parent.is_base_only:
        return []
    folder = artifact_from_key(parent.adapter_key)
    config_file = folder / "adapter_config.json"
    if not config_file.is_file():
        return [
            f"{parent}'s adapter files are missing from storage (or it is a full fine-tune, which has no adapter)"
        ]
    peft_type = str(json.loads(config_file.read_text()).get("peft_type", "")).upper()
    if peft_type != _peft_type_of(method):
        return [f"{parent} has a {peft_type or 'unknown'} adapter; a {method} run cannot continue it"]
    return []


def export_sft_jsonl(version: DatasetVersion, dest: Path, *, system_prompt: str = "") -> dict[str, Any]:
    """Write `version` as TRL conversational JSONL (system = the project's task instructions, user = prompt,
    assistant = reference). Rows without an answer are skipped and counted."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    written = skipped = 0
    tmp = dest.with_name(f".{dest.name}.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for example in version.examples.order_by("index").iterator(chunk_size=2000):
            messages = _example_messages(example, system_prompt)
            if messages is None:
                skipped += 1
                continue
            line = json.dumps({"messages": messages}, ensure_ascii=False) + "\n"
            fh.write(line)
            digest.update(line.encode("utf-8"))
            written += 1
    tmp.replace(dest)
    return {
        "version_id": version.pk,
        "label": version.label,
        "content_hash": version.content_hash,
        "rows": written,
        "skipped_without_answer": skipped,
        "file_sha256": digest.hexdigest(),
    }


# --- training runs ----------------------------------------------------------------------------------------------


def run_dir(run: TrainingRun) -> Path:
    return artifact_dir("tuning", "runs", run.pk)


def run_output_dir(run: TrainingRun) -> Path:
    return run_dir(run) / "output"


def _check_base_model(base_model: BaseModel | None) -> BaseModel:
    if base_model is None:
        raise ValidationError({"base_model": "choose a base model"})
    return base_model


def training_run_create(
    *,
    project: Project,
    user: AbstractBaseUser | None,
    base_model: BaseModel | None,
    train_version: DatasetVersion | None,
    val_version: DatasetVersion | None,
    method: str,
    placement: Any = None,
    hyperparameters: dict[str, Any] | None = None,
    name: str = "",
    parent_version: ModelVersion | None = None,
    objective: str = TrainingRun.Objective.SFT,
    beta: float | None = None,
) -> TrainingRun:
    """Validate, export the data and queue a training run on the `gpu` queue. Raises ValidationError (keyed by
    field) and queues nothing when the config, the base model or the data cannot work.

    `objective="dpo"` trains on a preference version with `trainer.dpo` (beta defaults to its DEFAULT_BETA). With a
    `parent_version` that has an adapter, training continues that adapter (SFT and DPO alike)."""
    base_model = _check_base_model(base_model)
    errors: dict[str, list[str]] = {}
    config: TrainConfig | None = None
    try:
        config = build_config(method, placement, hyperparameters)
        config_validate(config, base_model)
    except ValidationError as exc:
        errors.update(exc.message_dict)
    is_dpo = objective == TrainingRun.Objective.DPO
    if objective not in TrainingRun.Objective.values:
        errors["objective"] = [f"unknown objective {objective!r}; choose sft or dpo"]
    check_version = check_preference_version if is_dpo else check_sft_version
    for field, chosen, required in (
        ("train_version", train_version, True),
        ("val_version", val_version, False),
    ):
        try:
            check_version(project, chosen, field, required=required)
        except ValidationError as exc:
            errors.update(exc.message_dict)
    if is_dpo:
        from trainer.config import LORA_FAMILY
        from trainer.dpo import DEFAULT_BETA

        beta = DEFAULT_BETA if beta is None else beta
        if not isinstance(beta, (int, float)) or isinstance(beta, bool) or not 0 < float(beta) <= 10:
            errors["beta"] = [f"beta must be a number in (0, 10], got {beta!r}"]
        if config is not None and config.method not in LORA_FAMILY:
            errors.setdefault("method", []).append("DPO trains a LoRA-family adapter (lora, dora or qlora)")
    if parent_version is not None and (problems := parent_adapter_problems(parent_version, project, method)):
        errors["parent_version"] = problems
    if errors or config is None:
        raise ValidationError(errors)
    assert train_version is not None

    stored_config = {**config.to_dict(), **({"beta": float(beta)} if is_dpo else {})}  # type: ignore[arg-type]
    with (
        _staged_data(project, train_version, val_version, objective=objective) as staged,
        transaction.atomic(),
    ):
        run = TrainingRun.objects.create(
            project=project,
            name=(
                name.strip() or f"{METHOD_LABELS.get(config.method, config.method)} · {train_version.label}"
            )[:200],
            base_model=base_model,
            parent_version=parent_version,
            objective=objective,
            method=config.method,
            config=stored_config,
            train_version=train_version,
            val_version=val_version,
            result={"data": staged.data},
            created_by=user,
        )
        folder = staged.adopt(artifact_path("tuning", "runs", run.pk))
        job = job_services.job_create(
            project=project,
            kind=TRAIN_KIND,
            params={"training_run_id": run.pk},
            created_by=user,
        )
        TrainingRun.objects.filter(pk=run.pk).update(output_key=artifact_key(folder), job=job)
    run.refresh_from_db()
    return run


class _Staged:
    """Data exported into a staging folder, then moved into the new row's folder by `adopt`."""

    def __init__(self, staging: Path, data: dict[str, Any]) -> None:
        self.staging = staging
        self.data = data
        self.adopted: Path | None = None

    def adopt(self, folder: Path) -> Path:
        shutil.rmtree(folder, ignore_errors=True)  # a leftover of a rolled-back attempt that had the same id
        folder.parent.mkdir(parents=True, exist_ok=True)
        self.staging.rename(folder)
        self.adopted = folder
        return folder


@contextlib.contextmanager
def _staged_data(
    project: Project,
    train_version: DatasetVersion,
    val_version: DatasetVersion | None,
    *,
    objective: str = "sft",
) -> Iterator[_Staged]:
    """Export before the caller's transaction (writing a large version out must not hold the database's write
    lock); if anything fails afterwards, the files go too, wherever they were moved."""
    staging = artifact_dir("tuning", "staging", uuid.uuid4().hex)
    staged: _Staged | None = None
    try:
        staged = _Staged(
            staging,
            _export_run_data(project, train_version, val_version, staging / "data", objective=objective),
        )
        yield staged
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if staged is not None and staged.adopted is not None:
            shutil.rmtree(staged.adopted, ignore_errors=True)
        raise


def _export_run_data(
    project: Project,
    train_version: DatasetVersion,
    val_version: DatasetVersion | None,
    folder: Path,
    *,
    objective: str = "sft",
) -> dict[str, Any]:
    system_prompt = project.task_instructions.strip()
    export = export_preference_jsonl if objective == TrainingRun.Objective.DPO else export_sft_jsonl
    data = {"train": export(train_version, folder / "train.jsonl", system_prompt=system_prompt)}
    if val_version is not None:
        data["validation"] = export(val_version, folder / "val.jsonl", system_prompt=system_prompt)
    data["system_prompt"] = system_prompt
    return data


def training_run_cancel(run: TrainingRun) -> TrainingRun:
    if run.job is not None:
        job_services.job_request_cancel(run.job)
    run.refresh_from_db()
    return run


def loss_series(run: TrainingRun) -> dict[str, Any]:
    """Train and validation loss as x/y arrays (what the run page's chart polls)."""
    train_x: list[int] = []
    train_y: list[float] = []
    val_x: list[int] = []
    val_y: list[float] = []
    for point in run.loss_history or []:
        if "train_loss" in point:
            train_x.append(point["step"])
            train_y.append(point["train_loss"])
        if "val_loss" in point:
            val_x.append(point["step"])
            val_y.append(point["val_loss"])
    job = run.job
    return {
        "status": run.status,
        "finished": run.status not in ("queued", "running"),
        "step": job.progress_current if job else None,
        "total_steps": job.progress_total if job else None,
        "train": {"x": train_x, "y": train_y},
        "val": {"x": val_x, "y": val_y},
    }


def _history_from(
    loss_history: Iterable[dict[str, Any]], val_history: Iterable[dict[str, Any]]
) -> list[dict[str, Any]]:
    points = [{"step": int(p["step"]), "train_loss": float(p["train_loss"])} for p in loss_history]
    points += [{"step": int(p["step"]), "val_loss": float(p["val_loss"])} for p in val_history]
    # Stable sort: at an evaluation step the train point comes first, as it happened.
    return sorted(points, key=lambda p: p["step"])


class LossRecorder:
    """The trainer's progress callback: job progress, the run's loss history (written at most every
    LOSS_FLUSH_EVERY_S, and at every evaluation), and log lines. `on_eval(step, val_loss)` lets a sweep report to
    Optuna (and prune)."""

    def __init__(
        self,
        run: TrainingRun,
        ctx: JobContext,
        *,
        message_prefix: str = "",
        progress_span: tuple[float, float] | None = None,
        on_eval: Callable[[int, float], None] | None = None,
    ) -> None:
        self.run = run
        self.ctx = ctx
        self.prefix = message_prefix
        self.span = progress_span  # (offset, total) when this run is one part of a larger job (a sweep)
        self.on_eval = on_eval
        self.history: list[dict[str, Any]] = list(run.loss_history or [])
        self._last_flush = 0.0
        self._dirty = False

    def resume_from(self, output_dir: Path) -> None:
        """Points recorded after the last checkpoint will be replayed by the resumed run: drop them."""
        from trainer.train import latest_checkpoint

        checkpoint = latest_checkpoint(output_dir)
        if checkpoint is None:
            self.history = []
        else:
            loop = json.loads((checkpoint / "state.json").read_text())["loop"]
            self.history = _history_from(loop.get("loss_history", []), loop.get("val_history", []))
        self.flush()

    def flush(self) -> None:
        TrainingRun.objects.filter(pk=self.run.pk).update(loss_history=self.history)
        self.run.loss_history = self.history
        self._last_flush = time.monotonic()
        self._dirty = False

    def _progress(self, step: float, total: float, message: str, *, force: bool = False) -> None:
        from evalhub.jobs.context import JobCancelled

        if self.span is not None:
            offset, span_total = self.span
            step, total = offset + (step / max(total, 1)), span_total
        try:
            self.ctx.progress(step, total, f"{self.prefix}{message}", force=force)
        except JobCancelled:
            # The trainer sees should_stop() at the end of this step and writes a checkpoint before stopping;
            # raising here would skip that.
            pass

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "step":
            self.history.append({"step": int(event["step"]), "train_loss": float(event["train_loss"])})
            self._dirty = True
            self._progress(
                event["step"],
                event["total_steps"],
                f"step {event['step']}/{event['total_steps']} · train loss {event['train_loss']:.4f}",
            )
            if time.monotonic() - self._last_flush >= LOSS_FLUSH_EVERY_S:
                self.flush()
        elif kind == "eval":
            self.history.append({"step": int(event["step"]), "val_loss": float(event["val_loss"])})
            self.flush()
            self.ctx.log(f"{self.prefix}step {event['step']}: validation loss {event['val_loss']:.4f}")
            if self.on_eval is not None:
                self.on_eval(int(event["step"]), float(event["val_loss"]))
        elif kind == "log":
            self.ctx.log(f"{self.prefix}{event.get('message', '')}")
        elif kind == "done":
            if self._dirty:
                self.flush()
            self._progress(
                event["step"], max(event["total_steps"], 1), f"finished ({event['status']})", force=True
            )


def _train(
    run: TrainingRun,
    ctx: JobContext,
    recorder: LossRecorder,
    *,
    train_file: Path,
    val_file: Path | None,
) -> TrainResult:
    """Call the trainer, translating its errors into user-facing job failures."""
    from evalhub.jobs.context import JobError
    from trainer.config import TrainConfig
    from trainer.errors import TrainerError, TrainingFailed
    from trainer.train import train_sft

    output_dir = run_output_dir(run)
    recorder.resume_from(output_dir)
    parent = run.parent_version
    parent_adapter = adapter_dir(parent) if parent is not None and not parent.is_base_only else None
    try:
        if run.objective == TrainingRun.Objective.DPO:
            from trainer.dpo import train_dpo

            settings_ = dict(run.config)
            beta = float(settings_.pop("beta"))
            return train_dpo(
                TrainConfig.from_dict(settings_),
                base=base_model_source(run.base_model),
                parent_adapter=parent_adapter,
                train_file=train_file,
                val_file=val_file,
                output_dir=output_dir,
                cache_dir=model_cache_dir(),
                beta=beta,
                progress=recorder,
                should_stop=ctx.should_stop,
                allow_downloads=bool(settings.ALLOW_MODEL_DOWNLOADS),
            )
        return train_sft(
            TrainConfig.from_dict(run.config),
            init_adapter=parent_adapter,
            base=base_model_source(run.base_model),
            train_file=train_file,
            val_file=val_file,
            output_dir=output_dir,
            cache_dir=model_cache_dir(),
            progress=recorder,
            should_stop=ctx.should_stop,
            allow_downloads=bool(settings.ALLOW_MODEL_DOWNLOADS),
        )
    except TrainingFailed as exc:
        recorder.flush()
        _record_failure(run, str(exc), exc.last_checkpoint)
        raise JobError(str(exc)) from exc
    except TrainerError as exc:
        recorder.flush()
        _record_failure(run, str(exc), None)
        raise JobError(str(exc)) from exc


def _record_failure(run: TrainingRun, error: str, last_checkpoint: str | None) -> None:
    from trainer.train import latest_checkpoint

    if last_checkpoint is None and run.output_key:
        found = latest_checkpoint(run_output_dir(run))
        last_checkpoint = str(found) if found else None
    result = dict(TrainingRun.objects.get(pk=run.pk).result or {})
    result["error"] = error
    result["last_checkpoint"] = artifact_key(Path(last_checkpoint)) if last_checkpoint else None
    TrainingRun.objects.filter(pk=run.pk).update(result=result)


def training_run_failed(job: Job) -> None:
    """Job failure hook (any cause, also a crash or a worker that died too often): keep the reason and the last
    good checkpoint on the run."""
    run = TrainingRun.objects.filter(job=job).first()
    if run is not None and "error" not in (run.result or {}):
        _record_failure(run, job.error, None)


def _store_result(run: TrainingRun, result: TrainResult) -> None:
    stored = result.to_dict()
    stored.pop("loss_history", None)
    stored.pop("val_history", None)
    for kept in ("data", "params"):  # what the run was given, recorded at creation
        if kept in (run.result or {}):
            stored[kept] = run.result[kept]
    run.result = stored
    run.loss_history = _history_from(result.loss_history, result.val_history)
    TrainingRun.objects.filter(pk=run.pk).update(result=run.result, loss_history=run.loss_history)


def training_run_execute(run: TrainingRun, ctx: JobContext) -> dict[str, Any]:
    """The `tuning.train` job: train (resuming from the run's last checkpoint), then record the model version."""
    from evalhub.jobs.context import JobCancelled

    folder = run_dir(run)
    val_file = folder / "data" / "val.jsonl"
    recorder = LossRecorder(run, ctx)
    result = _train(
        run,
        ctx,
        recorder,
        train_file=folder / "data" / "train.jsonl",
        val_file=val_file if run.val_version_id else None,
    )
    if result.status == "cancelled":
        recorder.flush()
        ctx.raise_if_cancelled()
        raise JobCancelled()
    _store_result(run, result)
    ctx.log(
        f"{result.status}: {result.steps_done} steps, best validation loss "
        f"{_fmt(result.best_val_loss)} at step {result.best_step}, {result.tokens_per_s:.0f} tokens/s"
    )
    version = model_version_from_run(run, user=run.created_by)
    return {"training_run_id": run.pk, "model_version_id": version.pk, "status": result.status}


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


# --- model versions ---------------------------------------------------------------------------------------------


def _create_version(project: Project, **fields: Any) -> ModelVersion:
    """Next number in the project; two creators racing for the same number retry instead of failing."""
    for _ in range(10):
        number = (ModelVersion.objects.filter(project=project).aggregate(n=Max("number"))["n"] or 0) + 1
        try:
            with transaction.atomic():
                return ModelVersion.objects.create(project=project, number=number, **fields)
        except IntegrityError:
            continue
    raise RuntimeError("could not allocate a model version number")


def model_version_create_base(
    *, project: Project, base_model: BaseModel, user: AbstractBaseUser | None = None, name: str = "base"
) -> ModelVersion:
    """A version that is the base model alone (the reference point every adapter is compared against)."""
    return _create_version(
        project,
        name=name,
        base_model=base_model,
        created_by=user,
        lineage={
            "base_model": _base_lineage(base_model),
            "package_versions": _runtime_versions(),
            "code_revision": code_revision(),
        },
    )


def _base_lineage(base_model: BaseModel) -> dict[str, Any]:
    return {
        "id": base_model.pk,
        "name": base_model.name,
        "source": base_model_source(base_model).to_dict(),
        "architecture": base_model.architecture,
        "parameter_count": base_model.parameter_count,
    }


def model_version_from_run(
    run: TrainingRun, *, user: AbstractBaseUser | None = None, name: str = ""
) -> ModelVersion:
    """The model version a finished run produced (created once; calling again returns it)."""
    existing = ModelVersion.objects.filter(training_run=run).first()
    if existing is not None:
        return existing
    result = run.result or {}
    if result.get("status") not in ("completed", "early_stopped"):
        raise ValidationError({"training_run": "this run has not finished training"})
    output = run_output_dir(run)
    adapter = output / "best"
    if not adapter.is_dir():
        adapter = output / "final"
    if not adapter.is_dir():
        raise ValidationError({"training_run": "the run's trained weights are missing from storage"})
    data = result.get("data", {})
    datasets = []
    for role, version_obj in (("train", run.train_version), ("validation", run.val_version)):
        if version_obj is None:
            continue
        exported = data.get(role, {})
        datasets.append(
            {
                "role": role,
                "version_id": version_obj.pk,
                "label": version_obj.label,
                "content_hash": version_obj.content_hash,
                "rows_used": exported.get("rows"),
                "rows_skipped_without_answer": exported.get("skipped_without_answer"),
                "exported_file_sha256": exported.get("file_sha256"),
            }
        )
    config = result.get("config") or run.config
    versions = {**_runtime_versions(), **(result.get("package_versions") or {})}
    lineage = {
        "training_run": run.pk,
        "sweep": run.sweep_id,
        "trial_number": run.trial_number,
        "base_model": _base_lineage(run.base_model),
        "parent_version": run.parent_version_id,
        "datasets": datasets,
        "system_prompt": data.get("system_prompt", ""),
        "method": run.method,
        "config": config,
        "seed": config.get("seed"),
        "package_versions": versions,
        "code_revision": code_revision(),
        **{
            key: result.get(key)
            for key in (
                "status",
                "steps_done",
                "total_steps",
                "trainable_params",
                "total_params",
                "trainable_share",
                "peak_memory_bytes",
                "peak_memory_kind",
                "wall_time_s",
                "tokens_seen",
                "tokens_per_s",
                "final_train_loss",
                "final_val_loss",
                "best_val_loss",
                "best_step",
                "train_examples",
                "val_examples",
                "truncated_examples",
                "dropped_examples",
                "resumed_from_step",
            )
        },
        "weights": "best" if adapter.name == "best" else "final",
    }
    try:
        return _create_version(
            run.project,
            name=(name or METHOD_LABELS.get(run.method, run.method))[:200],
            base_model=run.base_model,
            training_run=run,
            parent=run.parent_version,
            adapter_key=artifact_key(adapter),
            lineage=lineage,
            created_by=user,
        )
    except IntegrityError:  # another caller recorded it first (one version per run)
        return ModelVersion.objects.get(training_run=run)


def adapter_dir(version: ModelVersion) -> Path:
    if version.is_base_only:
        raise ValidationError({"adapter": "this version is the base model alone; it has no adapter"})
    path = artifact_from_key(version.adapter_key)
    if not path.is_dir():
        raise ValidationError({"adapter": "the adapter files are missing from storage"})
    return path


def model_version_export_merged(version: ModelVersion, *, user: AbstractBaseUser | None = None) -> Job:
    """Queue a job that writes base + adapter merged into one plain model folder."""
    folder = adapter_dir(version)
    config_file = folder / "adapter_config.json"
    if not config_file.is_file():
        raise ValidationError(
            {"adapter": "this version holds a fully fine-tuned model already; download it as it is"}
        )
    peft_type = str(json.loads(config_file.read_text()).get("peft_type", "")).upper()
    if not any(kind in peft_type for kind in ("LORA", "IA3")):
        raise ValidationError(
            {
                "adapter": f"{peft_type or 'this'} adapters add virtual tokens instead of changing weights, so they "
                "cannot be merged; serve them as adapters",
            }
        )
    if version.merge_job is not None and version.merge_job.status not in FINISHED:
        return version.merge_job
    with transaction.atomic():
        job = job_services.job_create(
            project=version.project,
            kind=MERGE_KIND,
            params={"model_version_id": version.pk},
            created_by=user,
        )
        ModelVersion.objects.filter(pk=version.pk).update(merge_job=job)
    version.merge_job = job
    return job


def model_version_merge_execute(version: ModelVersion, ctx: JobContext) -> dict[str, Any]:
    from evalhub.jobs.context import JobError
    from trainer.errors import TrainerError
    from trainer.train import merge_adapter

    ctx.progress(0, 2, "loading the base model and the adapter", force=True)
    out = artifact_path("tuning", "merged", version.pk)
    try:
        merge_adapter(base_model_source(version.base_model), adapter_dir(version), out, model_cache_dir())
    except (TrainerError, ValidationError) as exc:
        raise JobError(str(exc)) from exc
    ModelVersion.objects.filter(pk=version.pk).update(merged_key=artifact_key(out))
    ctx.progress(2, 2, "merged", force=True)
    return {"model_version_id": version.pk, "merged_key": artifact_key(out)}


# --- sweeps -----------------------------------------------------------------------------------------------------

# What a sweep may search over, with each value's type.
SEARCHABLE: dict[str, type] = {
    "learning_rate": float,
    "rank": int,
    "alpha": float,
    "placement": str,
    "epochs": int,
    "weight_decay": float,
    "batch_size": int,
}
DEFAULT_SEARCH_SPACE: dict[str, dict[str, Any]] = {
    "learning_rate": {"low": 5e-5, "high": 1e-3, "log": True},
    "rank": {"choices": [4, 8, 16, 32]},
    "alpha": {"choices": [8, 16, 32, 64]},
    "placement": {"choices": ["attention", "mlp", "all_linear"]},
}


def _search_space_values(name: str, spec: Any) -> list[Any]:
    """Check one search-space entry and return the values to test against the config rules (its extremes)."""
    kind = SEARCHABLE[name]
    if not isinstance(spec, dict):
        raise ValueError('must be an object: {"choices": [...]} or {"low": ..., "high": ...}')  # noqa: TRY004 - shown to the user as a field error
    if "choices" in spec:
        choices = spec["choices"]
        if set(spec) - {"choices"} or not isinstance(choices, list) or not choices:
            raise ValueError('"choices" must be a non-empty list (and nothing else)')
        for value in choices:
            ok = (
                isinstance(value, str)
                if kind is str
                else isinstance(value, (int, float)) and not isinstance(value, bool)
            )
            if not ok or (kind is int and float(value) != int(value)):
                raise ValueError(f"choice {value!r} is not a valid {kind.__name__}")
        return [kind(v) for v in choices]
    if kind is str:
        raise ValueError('takes {"choices": [...]}')
    if set(spec) - {"low", "high", "log", "step"} or "low" not in spec or "high" not in spec:
        raise ValueError('a range needs "low" and "high" (optionally "log" or "step")')
    low, high = spec["low"], spec["high"]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)):
        raise ValueError("low and high must be numbers")
    if low > high:
        raise ValueError(f"low ({low}) is above high ({high})")
    if spec.get("log") and low <= 0:
        raise ValueError("a log-scale range needs low > 0")
    if spec.get("log") and spec.get("step"):
        raise ValueError("choose log or step, not both")
    if kind is int and (float(low) != int(low) or float(high) != int(high)):
        raise ValueError("low and high must be integers")
    return [kind(low), kind(high)]


def _config_value(name: str, value: Any) -> Any:
    """Optuna's categorical values are scalars, so an explicit module list is searched as "q_proj,v_proj"."""
    if name == "placement":
        return _coerce("placement", "str | list[str]", value)
    return value


def _suggest(trial: Any, name: str, spec: dict[str, Any]) -> Any:
    kind = SEARCHABLE[name]
    if "choices" in spec:
        return trial.suggest_categorical(name, [kind(v) for v in spec["choices"]])
    if kind is int:
        return trial.suggest_int(
            name,
            int(spec["low"]),
            int(spec["high"]),
            log=bool(spec.get("log")),
            step=int(spec.get("step") or 1),
        )
    return trial.suggest_float(
        name, float(spec["low"]), float(spec["high"]), log=bool(spec.get("log")), step=spec.get("step")
    )


def sweep_create(
    *,
    project: Project,
    user: AbstractBaseUser | None,
    name: str,
    base_model: BaseModel | None,
    train_version: DatasetVersion | None,
    val_version: DatasetVersion | None,
    method: str = "lora",
    hyperparameters: dict[str, Any] | None = None,
    search_space: dict[str, Any] | None = None,
    n_trials: int = 8,
    seed: int = 0,
    initial_trials: list[dict[str, Any]] | None = None,
    pruner_startup_trials: int = 3,
    pruner_warmup_steps: int = 0,
) -> Sweep:
    """Validate and queue an Optuna sweep; its trials become child TrainingRuns of the sweep."""
    from trainer.config import LORA_FAMILY, MODULE_METHODS

    base_model = _check_base_model(base_model)
    space = DEFAULT_SEARCH_SPACE if search_space is None else search_space
    errors: dict[str, list[str]] = {}

    def add(field: str, message: str) -> None:
        errors.setdefault(field, []).append(message)

    if not name.strip():
        add("name", "give the sweep a name")
    if not 1 <= int(n_trials) <= 200:
        add("n_trials", "between 1 and 200 trials")
    config: TrainConfig | None = None
    try:
        config = build_config(method, None, hyperparameters)
        config_validate(config, base_model)
    except ValidationError as exc:
        for field, messages in exc.message_dict.items():
            for message in messages:
                add(field, message)
    if not isinstance(space, dict) or not space:
        add("search_space", "give at least one parameter to search")
        space = {}
    extremes: dict[str, list[Any]] = {}
    for param, spec in space.items():
        if param not in SEARCHABLE:
            add("search_space", f"{param}: cannot be searched; choose from {', '.join(SEARCHABLE)}")
            continue
        if param in ("rank", "alpha") and method not in LORA_FAMILY:
            add("search_space", f"{param}: only LoRA-family methods have a {param}")
            continue
        if param == "placement" and method not in MODULE_METHODS:
            add("search_space", f"placement: {method} does not wrap modules")
            continue
        try:
            extremes[param] = _search_space_values(param, spec)
        except ValueError as exc:
            add("search_space", f"{param}: {exc}")
    if config is not None and not errors:
        # Every extreme value must pass the same rules a single run does (a rank of 0, a negative rate, a
        # placement the architecture lacks...), so no trial is doomed before the sweep starts.
        from trainer.config import TrainConfig

        for param, values in extremes.items():
            for value in values:
                try:
                    probe = TrainConfig.from_dict({**config.to_dict(), param: _config_value(param, value)})
                    config_validate(probe, base_model)
                except ValidationError as exc:
                    for field, messages in exc.message_dict.items():
                        add("search_space", f"{param}={value!r}: {'; '.join(messages)}")
    initial = list(initial_trials or [])
    for i, params in enumerate(initial):
        if not isinstance(params, dict) or not params or set(params) - set(space):
            add(
                "initial_trials",
                f"trial {i + 1}: give values only for the searched parameters ({', '.join(space)})",
            )
    if val_version is None:
        add(
            "val_version",
            "a sweep needs a validation version: trials are compared (and pruned) on validation loss",
        )
    for field, version_obj, required in (
        ("train_version", train_version, True),
        ("val_version", val_version, True),
    ):
        if version_obj is None:
            continue
        try:
            check_sft_version(project, version_obj, field, required=required)
        except ValidationError as exc:
            for message in exc.message_dict[field]:
                add(field, message)
    if train_version is None:
        add("train_version", "choose a dataset version")
    if errors or config is None:
        raise ValidationError(errors)
    assert train_version is not None and val_version is not None

    with _staged_data(project, train_version, val_version) as staged, transaction.atomic():
        sweep = Sweep.objects.create(
            project=project,
            name=name.strip()[:200],
            base_model=base_model,
            train_version=train_version,
            val_version=val_version,
            base_config=config.to_dict(),
            search_space=space,
            n_trials=int(n_trials),
            seed=int(seed),
            initial_trials=initial,
            pruner_startup_trials=int(pruner_startup_trials),
            pruner_warmup_steps=int(pruner_warmup_steps),
            result={"data": staged.data},
            created_by=user,
        )
        staged.adopt(artifact_path("tuning", "sweeps", sweep.pk))
        job = job_services.job_create(
            project=project,
            kind=SWEEP_KIND,
            params={"sweep_id": sweep.pk},
            created_by=user,
        )
        Sweep.objects.filter(pk=sweep.pk).update(job=job)
    sweep.refresh_from_db()
    return sweep


def sweep_dir(sweep: Sweep) -> Path:
    return artifact_dir("tuning", "sweeps", sweep.pk)


def _study(sweep: Sweep) -> Any:
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # A journal file next to the sweep's artifacts: a resumed sweep (new worker) continues the same study.
    storage = JournalStorage(JournalFileBackend(str(sweep_dir(sweep) / "optuna-journal.log")))
    return optuna.create_study(
        study_name=f"sweep-{sweep.pk}",
        storage=storage,
        direction="minimize",
        sampler=optuna.samplers.TPESampler(seed=sweep.seed),
        pruner=optuna.pruners.MedianPruner(
            n_startup_trials=sweep.pruner_startup_trials, n_warmup_steps=sweep.pruner_warmup_steps
        ),
        load_if_exists=True,
    )


def sweep_execute(sweep: Sweep, ctx: JobContext) -> dict[str, Any]:
    """The `tuning.sweep` job: ask Optuna for parameters, train each trial as a child run, report validation loss
    at every evaluation so the median pruner can stop bad trials early, and mark the best trial."""
    import optuna
    from optuna.trial import TrialState as OptunaState

    from evalhub.jobs.context import JobCancelled, JobError

    study = _study(sweep)
    if not study.trials:
        for params in sweep.initial_trials:
            study.enqueue_trial(params)
    # A worker that died mid-trial leaves it RUNNING in the study: close it and queue the same parameters again,
    # pointing at the same child run so its training resumes from its checkpoint.
    for stale in study.get_trials(deepcopy=False, states=(OptunaState.RUNNING,)):
        study._storage.set_trial_state_values(stale._trial_id, state=OptunaState.FAIL)
        study.enqueue_trial(stale.params, user_attrs={"resume_run_id": stale.user_attrs.get("run_id")})
        ctx.log(f"trial {stale.number} was interrupted; running it again from its last checkpoint")

    data_dir = sweep_dir(sweep) / "data"
    base_config = dict(sweep.base_config)
    finished_states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAILED)
    while (done := sweep.trials.filter(trial_state__in=finished_states).count()) < sweep.n_trials:
        trial = study.ask()
        params = {name: _suggest(trial, name, spec) for name, spec in sweep.search_space.items()}
        run = _trial_run(sweep, trial, params, base_config)
        trial.set_user_attr("run_id", run.pk)
        label = f"trial {done + 1}/{sweep.n_trials} · "
        ctx.log(f"{label}#{trial.number} {json.dumps(params)}")

        reported: dict[str, Any] = {}

        def report(
            step: int, val_loss: float, trial: Any = trial, reported: dict[str, Any] = reported
        ) -> None:
            reported.update(step=step, val_loss=val_loss)
            trial.report(val_loss, step)
            if trial.should_prune():
                raise optuna.TrialPruned(
                    f"validation loss {val_loss:.4f} at step {step} is worse than the median"
                )

        recorder = LossRecorder(
            run, ctx, message_prefix=label, progress_span=(done, sweep.n_trials), on_eval=report
        )
        try:
            result = _train(
                run, ctx, recorder, train_file=data_dir / "train.jsonl", val_file=data_dir / "val.jsonl"
            )
        except optuna.TrialPruned as exc:
            recorder.flush()
            study.tell(trial, state=OptunaState.PRUNED)
            run.result = {**(run.result or {}), "pruned_at": dict(reported)}
            TrainingRun.objects.filter(pk=run.pk).update(trial_state=TrialState.PRUNED, result=run.result)
            shutil.rmtree(run_output_dir(run) / "checkpoints", ignore_errors=True)  # never resumed
            ctx.log(f"{label}pruned: {exc}")
            continue
        except JobError as exc:
            # One bad corner of the search space (NaN at a high learning rate) fails its trial, not the sweep.
            study.tell(trial, state=OptunaState.FAIL)
            TrainingRun.objects.filter(pk=run.pk).update(trial_state=TrialState.FAILED)
            ctx.log(f"{label}failed: {exc}")
            continue
        if result.status == "cancelled":
            ctx.raise_if_cancelled()
            raise JobCancelled()
        _store_result(run, result)
        value = result.best_val_loss if result.best_val_loss is not None else result.final_train_loss
        study.tell(trial, value)
        TrainingRun.objects.filter(pk=run.pk).update(trial_state=TrialState.COMPLETE)
        ctx.log(f"{label}best validation loss {_fmt(value)}")
        _mark_best(sweep, study)
    summary = _sweep_summary(sweep, study)
    result_data = {**(sweep.result or {}), **summary}
    Sweep.objects.filter(pk=sweep.pk).update(result=result_data)
    _mark_best(sweep, study)
    ctx.progress(sweep.n_trials, sweep.n_trials, "sweep finished", force=True)
    return {
        "sweep_id": sweep.pk,
        "best_run_id": summary.get("best_run_id"),
        "best_value": summary.get("best_value"),
    }


def _trial_run(sweep: Sweep, trial: Any, params: dict[str, Any], base_config: dict[str, Any]) -> TrainingRun:
    resume_id = trial.user_attrs.get("resume_run_id")
    if resume_id:
        run = TrainingRun.objects.filter(pk=resume_id, sweep=sweep).first()
        if run is not None:
            TrainingRun.objects.filter(pk=run.pk).update(
                trial_number=trial.number, trial_state=TrialState.RUNNING
            )
            run.trial_number, run.trial_state = trial.number, TrialState.RUNNING
            return run
    config = {**base_config, **{name: _config_value(name, value) for name, value in params.items()}}
    run = TrainingRun.objects.create(
        project=sweep.project,
        name=f"{sweep.name} · trial {trial.number}",
        base_model=sweep.base_model,
        method=config["method"],
        config=config,
        train_version=sweep.train_version,
        val_version=sweep.val_version,
        sweep=sweep,
        trial_number=trial.number,
        trial_state=TrialState.RUNNING,
        created_by=sweep.created_by,
    )
    run.output_key = artifact_key(run_dir(run))
    run.result = {"data": (sweep.result or {}).get("data", {}), "params": params}
    TrainingRun.objects.filter(pk=run.pk).update(output_key=run.output_key, result=run.result)
    return run


def _mark_best(sweep: Sweep, study: Any) -> None:
    try:
        best = study.best_trial
    except ValueError:  # no completed trial yet
        return
    run_id = best.user_attrs.get("run_id")
    if run_id:
        Sweep.objects.filter(pk=sweep.pk).update(best_run_id=run_id)
        sweep.best_run_id = run_id


def _sweep_summary(sweep: Sweep, study: Any) -> dict[str, Any]:
    from optuna.trial import TrialState as OptunaState

    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == OptunaState.COMPLETE]
    summary: dict[str, Any] = {
        "n_complete": len(complete),
        "n_pruned": sum(1 for t in trials if t.state == OptunaState.PRUNED),
        "n_failed": sweep.trials.filter(trial_state=TrialState.FAILED).count(),
        "importance": param_importance(study),
    }
    if complete:
        best = study.best_trial
        summary.update(
            best_value=best.value,
            best_params=best.params,
            best_trial=best.number,
            best_run_id=best.user_attrs.get("run_id"),
        )
    return summary


MIN_TRIALS_FOR_IMPORTANCE = 4


def param_importance(study: Any) -> dict[str, float]:
    """Optuna's parameter importance (fANOVA with scikit-learn, else PED-ANOVA); {} below MIN_TRIALS_FOR_IMPORTANCE
    complete trials, where a forest fitted to two or three points would rank parameters by noise."""
    import optuna
    from optuna.trial import TrialState as OptunaState

    complete = study.get_trials(deepcopy=False, states=(OptunaState.COMPLETE,))
    varied = [
        name
        for name in (complete[0].params if complete else {})
        if len({repr(t.params.get(name)) for t in complete}) > 1
    ]
    if len(complete) < MIN_TRIALS_FOR_IMPORTANCE or not varied:
        return {}
    evaluator: Any
    if importlib.util.find_spec("sklearn") is not None:
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
    else:
        evaluator = optuna.importance.PedAnovaImportanceEvaluator()
    try:
        scores = optuna.importance.get_param_importances(study, evaluator=evaluator, params=varied)
    except (ValueError, RuntimeError) as exc:  # e.g. all objective values equal
        logger.info("parameter importance unavailable: %s", exc)
        return {}
    return {name: float(score) for name, score in scores.items()}


def sweep_promote_best(sweep: Sweep, *, user: AbstractBaseUser | None = None) -> ModelVersion:
    run = sweep.best_run
    if run is None or run.trial_state != TrialState.COMPLETE:
        raise ValidationError({"best_run": "the sweep has no completed trial yet"})
    return model_version_from_run(
        run, user=user, name=f"{METHOD_LABELS.get(run.method, run.method)} (sweep {sweep.name})"
    )
