"""Errors raised by the trainer library.

Callers (the Django app, Celery tasks) turn these into user-facing messages, so each one carries a message written
for a person, and `ConfigError` names the config field at fault so a form can show it next to that field.
"""

from __future__ import annotations


class TrainerError(Exception):
    """Base class for everything the trainer library raises on purpose."""


class ConfigError(TrainerError, ValueError):
    """A training config that cannot work; raised before any training starts."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


class ModelLoadError(TrainerError):
    """A base model that cannot be loaded (missing file, hub id without downloads allowed, ...)."""


class DataError(TrainerError, ValueError):
    """Training data that cannot be used (bad JSON, missing columns, no assistant turn)."""

    def __init__(self, message: str, *, line: int | None = None) -> None:
        self.line = line
        super().__init__(f"line {line}: {message}" if line is not None else message)


class TrainingFailed(TrainerError):
    """A run that failed mid-way (NaN loss, out of memory); the last good checkpoint is kept on disk."""

    def __init__(self, message: str, *, step: int | None = None, last_checkpoint: str | None = None) -> None:
        self.step = step
        self.last_checkpoint = last_checkpoint
        super().__init__(message)
