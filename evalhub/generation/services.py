"""Every state change of generation runs and outputs.

`generation_run_create` validates and queues; `generation_run_execute` is the body of the `generation.generate` job:
it loads the base model once per worker process (several adapters share it, see `generator_for`), generates in
chunks, and stores each chunk's outputs before the next one, so a resumed attempt skips what is already stored.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.conf import settings as django_settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Sum

from evalhub.datasets.models import DatasetVersion, Example
from evalhub.generation.files import adapter_dir, model_version_problems
from evalhub.generation.models import GenerationRun, Output, RunStatus
from evalhub.jobs.services import job_create
from evalhub.projects.models import Project
from evalhub.tuning.models import BaseModel, ModelVersion
from evalhub.tuning.services import base_model_source

if TYPE_CHECKING:
    from evalhub.jobs.context import JobContext
    from trainer.generate import DecodeSettings, Generation, Generator

JOB_KIND = "generation.generate"
# Outputs are written to the database after every chunk of prompts: the unit of progress and of resumption.
# Large enough that the library's length-sorted batching has something to sort, small enough to lose little on a crash.
CHUNK_PROMPTS = 32
# A runaway model can emit megabytes; we keep far more than any page shows, but not unbounded rows.
MAX_STORED_CHARS = 1_000_000
_SURROGATES = re.compile("[\ud800-\udfff]")


# --- decoding settings ----------------------------------------------------------------------------------------


def decode_settings(data: dict[str, Any]) -> DecodeSettings:
    """Build the library's DecodeSettings from JSON; a refused value raises ValidationError naming its field."""
    from trainer.errors import ConfigError
    from trainer.generate import DecodeSettings

    if not isinstance(data, dict):
        raise ValidationError({"settings": "Decoding settings must be an object."})
    try:
        return DecodeSettings.from_dict(data)
    except ConfigError as exc:
        raise ValidationError({exc.field: exc.message}) from None
    except (TypeError, ValueError) as exc:
        raise ValidationError({"settings": str(exc)}) from None


# --- text hygiene ---------------------------------------------------------------------------------------------


def clean_text(text: str | bytes | None) -> tuple[str, list[str]]:
    """Text safe to store in any database and render anywhere, plus the flags describing what was done to it.

    Bytes that are not UTF-8 and lone surrogates (a tokenizer can split a multi-byte character between two tokens)
    become U+FFFD, and so does NUL, which PostgreSQL text columns refuse. The text is otherwise kept as it is:
    markup stays markup and is escaped when shown.
    """
    flags: list[str] = []
    if text is None:
        text = ""
    if isinstance(text, bytes):
        decoded = text.decode("utf-8", errors="replace")
        if decoded.encode("utf-8") != text:
            flags.append("repaired")
        text = decoded
    cleaned = _SURROGATES.sub("\ufffd", text).replace("\x00", "\ufffd")
    if cleaned != text and "repaired" not in flags:
        flags.append("repaired")
    if len(cleaned) > MAX_STORED_CHARS:
        cleaned = cleaned[:MAX_STORED_CHARS]
        flags.append("clipped")
    if not cleaned.strip():
        flags.append("empty")
    return cleaned, flags


# --- create ---------------------------------------------------------------------------------------------------


def eval_versions_for(project: Project) -> Iterable[DatasetVersion]:
    return DatasetVersion.objects.filter(dataset__project=project).select_related("dataset").order_by("dataset__name", "-number")


def generation_run_create(
    *,
    project: Project,
    model_version: ModelVersion,
    eval_version: DatasetVersion,
    settings: dict[str, Any],
    created_by: AbstractBaseUser | None = None,
) -> GenerationRun:
    """Validate and queue a generation run. Raises ValidationError keyed by the field at fault."""
    if model_version.project_id != project.pk:
        raise ValidationError({"model_version": "This model version belongs to another project."})
    if eval_version.dataset.project_id != project.pk:
        raise ValidationError({"eval_version": "This dataset version belongs to another project."})
    if not eval_version.examples.exists():
        raise ValidationError({"eval_version": f"{eval_version} has no examples to generate from."})
    problems = model_version_problems(model_version)
    if problems:
        raise ValidationError({"model_version": problems})
    decoded = decode_settings(settings)
    with transaction.atomic():
        run = GenerationRun.objects.create(
            project=project, model_version=model_version, eval_version=eval_version,
            settings=decoded.to_dict(), created_by=created_by,
        )
        run.job = job_create(
            project=project, kind=JOB_KIND, params={"run_id": run.pk}, created_by=created_by,
            message=f"Waiting for a GPU worker to generate {eval_version.row_count} prompts",
        )
        run.save(update_fields=["job"])
    return run


# --- the loaded models ----------------------------------------------------------------------------------------


_GENERATORS: OrderedDict[str, Generator] = OrderedDict()
_LOCK = threading.Lock()


def _base_key(base: BaseModel) -> str:
    return f"{base.pk}|{base.source_kind}|{base.path_or_id}|{base.gguf_file}"


def max_cached_bases() -> int:
    """How many base models one worker keeps loaded. One by default: a GPU worker serves one base at a time, and
    every adapter of that base is served from the same loaded copy."""
    return max(1, int(getattr(django_settings, "GENERATION_CACHED_BASES", 1)))


def _device() -> str | None:
    """The GPU on a GPU worker (the `gpu` queue's whole point); None leaves the model where it was loaded (CPU)."""
    import torch

    return "cuda" if torch.cuda.is_available() else None


def generator_for(version: ModelVersion) -> tuple[Generator, str | None]:
    """(the process-wide Generator of the version's base, the adapter name to pass to `generate`, None for the base).

    The first call for a base loads it; later calls for any version on that base reuse it, attaching the version's
    adapter once (again only if its folder changed).
    """
    from trainer.generate import Generator

    base = version.base_model
    key = _base_key(base)
    with _LOCK:
        generator = _GENERATORS.get(key)
        if generator is None:
            while len(_GENERATORS) >= max_cached_bases():
                _GENERATORS.popitem(last=False)
            generator = Generator(
                base_model_source(base),
                cache_dir=django_settings.MODEL_CACHE_DIR,
                allow_downloads=django_settings.ALLOW_MODEL_DOWNLOADS,
                device=_device(),
            )
            _GENERATORS[key] = generator
        _GENERATORS.move_to_end(key)
        folder = adapter_dir(version)
        if folder is None:
            return generator, None
        name = f"mv{version.pk}"
        if generator.adapters.get(name) != str(folder):
            generator.add_adapter(name, folder)
        return generator, name


def generators_clear() -> None:
    with _LOCK:
        _GENERATORS.clear()


# --- execute (job body) ---------------------------------------------------------------------------------------


def _set_status(run: GenerationRun, status: str, **fields: Any) -> None:
    GenerationRun.objects.filter(pk=run.pk).update(status=status, **fields)
    run.status = status
    for name, value in fields.items():
        setattr(run, name, value)


@dataclass(frozen=True)
class Failed:
    """A prompt the model could not generate for (the error is stored on its output rows)."""

    error: str
    prompt_tokens: int = 0


def outputs_store(run: GenerationRun, items: Sequence[tuple[Example, int, Generation | Failed]]) -> int:
    """Store (example, sample index, generation or failure) triples; existing (run, example, sample) rows are kept.

    Returns how many rows were new. `ignore_conflicts` makes a redelivered chunk a no-op at the database level too.
    """
    rows = []
    for example, sample_index, gen in items:
        if isinstance(gen, Failed):
            rows.append(Output(run=run, example=example, sample_index=sample_index, error=gen.error[:5000], flags=["error"]))
            continue
        text, flags = clean_text(gen.text)
        if gen.finish_reason == "length":
            flags.append("length")
        rows.append(
            Output(
                run=run, example=example, sample_index=sample_index, text=text,
                prompt_tokens=max(0, int(gen.prompt_tokens or 0)), output_tokens=max(0, int(gen.output_tokens or 0)),
                latency_s=max(0.0, float(gen.latency_s or 0.0)), finish_reason=str(gen.finish_reason or "")[:20],
                flags=flags,
            )
        )
    before = Output.objects.filter(run=run).count()
    Output.objects.bulk_create(rows, ignore_conflicts=True, batch_size=500)
    return Output.objects.filter(run=run).count() - before


def _generate_chunk(
    generator: Generator, adapter: str | None, chunk: list[Example], decode: DecodeSettings,
    progress: Callable[[int, int], None],
) -> list[Generation | Failed]:
    """The chunk's generations, prompt-major. When the batch fails (a prompt the template refuses, out of memory
    on one very long prompt), retry prompt by prompt so one bad example becomes one failed output, not a failed run;
    if every prompt fails on its own too, the problem is the model, and the error propagates."""
    from trainer.errors import TrainerError

    prompts = [e.chat_messages() for e in chunk]
    try:
        return list(generator.generate(prompts, adapter=adapter, settings=decode, progress=progress))
    except (TrainerError, RuntimeError, ValueError):
        out: list[Generation | Failed] = []
        failures = 0
        for i, prompt in enumerate(prompts):
            try:
                out.extend(generator.generate([prompt], adapter=adapter, settings=decode))
            except (TrainerError, RuntimeError, ValueError) as exc:
                failures += 1
                out.extend([Failed(error=f"{type(exc).__name__}: {exc}")] * decode.num_samples)
            progress(i + 1, len(prompts))
        if failures == len(prompts):
            raise  # the batch's own error: every prompt fails alone too, so the model is the problem
        return out


def _summary(run: GenerationRun, generation_seconds: float) -> dict[str, Any]:
    outputs = Output.objects.filter(run=run)
    totals = outputs.aggregate(prompt=Sum("prompt_tokens"), output=Sum("output_tokens"))
    output_tokens = int(totals["output"] or 0)
    flags = [f or [] for f in outputs.values_list("flags", flat=True)]
    return {
        "outputs": len(flags),
        "prompt_tokens": int(totals["prompt"] or 0),
        "output_tokens": output_tokens,
        "generation_seconds": round(generation_seconds, 3),
        "tokens_per_second": round(output_tokens / generation_seconds, 2) if generation_seconds > 0 else None,
        "empty_outputs": sum("empty" in f for f in flags),
        "repaired_outputs": sum("repaired" in f for f in flags),
        "hit_max_tokens": sum("length" in f for f in flags),
        "errors": outputs.exclude(error="").count(),
    }


def generation_run_execute(*, run: GenerationRun, ctx: JobContext) -> dict[str, Any]:
    """Generate every (example, sample) of the run not stored yet. Safe to call again after a crash: each chunk's
    outputs are committed before the next chunk starts, and a resumed attempt skips what is stored."""
    from evalhub.jobs.context import JobCancelled, JobError
    from trainer.errors import TrainerError

    run = GenerationRun.objects.select_related("model_version__base_model", "eval_version").get(pk=run.pk)
    _set_status(run, RunStatus.RUNNING, error="")
    problems = model_version_problems(run.model_version)
    if problems:
        raise JobError(" ".join(problems))
    decode = decode_settings(run.settings)
    n_samples = decode.num_samples
    examples = list(Example.objects.filter(version=run.eval_version).order_by("index"))
    done = set(Output.objects.filter(run=run).values_list("example_id", "sample_index"))
    todo = [e for e in examples if any((e.pk, s) not in done for s in range(n_samples))]
    total = len(examples)
    ctx.progress(total - len(todo), total, f"{total - len(todo)} of {total} prompts already done", force=True)
    generation_seconds = float((run.summary or {}).get("generation_seconds", 0.0))

    try:
        if todo:
            ctx.log(f"loading {run.model_version} (base {run.model_version.base_model})")
            try:
                generator, adapter = generator_for(run.model_version)
            except (TrainerError, OSError, ValueError, RuntimeError) as exc:
                raise JobError(f"Could not load model version {run.model_version}: {exc}") from exc
        for start in range(0, len(todo), CHUNK_PROMPTS):
            ctx.raise_if_cancelled()
            chunk = todo[start : start + CHUNK_PROMPTS]
            base_done = total - len(todo) + start
            label = f"generating with {'adapter of ' + str(run.model_version) if adapter else 'the base model'}"

            def on_progress(
                done_prompts: int, _total: int, _base: int = base_done, _n: int = len(chunk), _label: str = label
            ) -> None:
                ctx.progress(_base + min(done_prompts, _n), total, _label)

            began = time.perf_counter()
            try:
                generations = _generate_chunk(generator, adapter, chunk, decode, on_progress)
            except (TrainerError, RuntimeError, ValueError) as exc:
                raise JobError(f"Generation failed: {type(exc).__name__}: {exc}") from exc
            generation_seconds += time.perf_counter() - began
            if len(generations) != len(chunk) * n_samples:
                raise JobError(f"the generator returned {len(generations)} outputs for {len(chunk)} prompts x {n_samples} samples")
            items = [
                (example, s, generations[i * n_samples + s])
                for i, example in enumerate(chunk)
                for s in range(n_samples)
                if (example.pk, s) not in done
            ]
            with transaction.atomic():
                outputs_store(run, items)
                summary = {**(run.summary or {}), "generation_seconds": round(generation_seconds, 3)}
                GenerationRun.objects.filter(pk=run.pk).update(summary=summary)
                run.summary = summary
            ctx.progress(base_done + len(chunk), total, f"{base_done + len(chunk)} of {total} prompts", force=True)
    except JobCancelled:
        _set_status(run, RunStatus.CANCELLED)
        raise
    summary = _summary(run, generation_seconds)
    _set_status(run, RunStatus.SUCCEEDED, summary=summary)
    return summary


def generation_run_mark_failed(run_id: int, error: str) -> None:
    GenerationRun.objects.filter(pk=run_id).update(status=RunStatus.FAILED, error=error[:5000])
