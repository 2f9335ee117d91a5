"""Forms for launching runs and sweeps. They only parse input; every rule lives in services (and the trainer)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from evalhub.datasets.models import DatasetVersion
from evalhub.projects.models import Project
from evalhub.tuning.models import BaseModel
from evalhub.tuning.services import DEFAULT_SEARCH_SPACE, METHOD_LABELS, method_defaults

METHOD_CHOICES = [(m, label) for m, label in METHOD_LABELS.items()]
PLACEMENT_CHOICES = [
    ("attention", "Attention projections"),
    ("mlp", "MLP projections"),
    ("all_linear", "All linear layers"),
    ("custom", "Explicit module list"),
]

# Hyperparameter fields, in the order the form shows them. BASIC ones are always visible; the rest sit in the
# "advanced" section. Their names are TrainConfig's, so a service error for "rank" lands next to the rank field.
BASIC = ["rank", "alpha", "learning_rate", "epochs", "max_steps", "batch_size"]
ADVANCED = [
    "dropout",
    "num_virtual_tokens",
    "scheduler",
    "warmup_ratio",
    "grad_accum",
    "weight_decay",
    "optimizer",
    "max_grad_norm",
    "seed",
    "max_seq_len",
    "eval_every_steps",
    "early_stopping_patience",
    "save_every_steps",
    "keep_checkpoints",
    "bf16",
    "group_by_length",
]
HYPERPARAMETERS = BASIC + ADVANCED


class _VersionChoice(forms.ModelChoiceField):
    def label_from_instance(self, obj: DatasetVersion) -> str:
        return f"{obj.label} · {obj.row_count} rows"


def _versions(project: Project) -> Any:
    return (
        DatasetVersion.objects.filter(dataset__project=project)
        .select_related("dataset")
        .order_by("dataset__name", "-number")
    )


class RunForm(forms.Form):
    name = forms.CharField(
        max_length=200, required=False, help_text="Optional; a name is made from the method and data."
    )
    base_model = forms.ModelChoiceField(queryset=BaseModel.objects.all(), empty_label=None)
    train_version = _VersionChoice(queryset=DatasetVersion.objects.none(), label="Training data")
    val_version = _VersionChoice(
        queryset=DatasetVersion.objects.none(),
        required=False,
        label="Validation data",
        help_text="Validation loss during training, early stopping and the best checkpoint need it.",
    )
    method = forms.ChoiceField(choices=METHOD_CHOICES)
    placement = forms.ChoiceField(
        choices=PLACEMENT_CHOICES, required=False, help_text="Where LoRA-family and IA3 adapters go."
    )
    target_modules = forms.CharField(
        required=False,
        help_text="For an explicit list: module names separated by commas, e.g. q_proj, v_proj.",
    )
    rank = forms.IntegerField()
    alpha = forms.FloatField()
    learning_rate = forms.FloatField()
    epochs = forms.IntegerField()
    max_steps = forms.IntegerField(required=False, help_text="When set, overrides epochs.")
    batch_size = forms.IntegerField()
    dropout = forms.FloatField()
    num_virtual_tokens = forms.IntegerField(help_text="Prefix and prompt tuning.")
    scheduler = forms.ChoiceField(
        choices=[("cosine", "Cosine"), ("linear", "Linear"), ("constant", "Constant")]
    )
    warmup_ratio = forms.FloatField()
    grad_accum = forms.IntegerField(label="Gradient accumulation")
    weight_decay = forms.FloatField()
    optimizer = forms.ChoiceField(choices=[("adamw", "AdamW"), ("sgd", "SGD with momentum")])
    max_grad_norm = forms.FloatField(required=False, help_text="Empty disables gradient clipping.")
    seed = forms.IntegerField()
    max_seq_len = forms.IntegerField(
        label="Max sequence length", help_text="Longer examples are truncated (and counted)."
    )
    eval_every_steps = forms.IntegerField()
    early_stopping_patience = forms.IntegerField(
        required=False, help_text="Evaluations without improvement; empty disables."
    )
    save_every_steps = forms.IntegerField(label="Checkpoint every (steps)")
    keep_checkpoints = forms.IntegerField()
    bf16 = forms.BooleanField(required=False, label="bf16 mixed precision (GPU)")
    group_by_length = forms.BooleanField(required=False, label="Group batches by length")

    def __init__(self, project: Project, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["train_version"].queryset = _versions(project)  # type: ignore[attr-defined]
        self.fields["val_version"].queryset = _versions(project)  # type: ignore[attr-defined]

    @classmethod
    def initial_for(cls, method: str) -> dict[str, Any]:
        defaults = method_defaults().get(method) or method_defaults()["lora"]
        initial = {k: defaults[k] for k in HYPERPARAMETERS}
        placement = defaults["placement"]
        if isinstance(placement, list):
            initial.update(placement="custom", target_modules=", ".join(placement))
        else:
            initial["placement"] = placement
        initial["method"] = defaults["method"]
        return initial

    def placement_value(self) -> Any:
        data = self.cleaned_data
        if data.get("placement") == "custom":
            return data.get("target_modules", "")
        return data.get("placement") or None

    def hyperparameters(self) -> dict[str, Any]:
        return {k: self.cleaned_data.get(k) for k in HYPERPARAMETERS if k in self.cleaned_data}

    def main_fields(self) -> list[forms.BoundField]:
        return [
            self[name]
            for name in (
                "name",
                "base_model",
                "train_version",
                "val_version",
                "method",
                "placement",
                "target_modules",
            )
        ]

    def basic_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in BASIC]

    def advanced_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in ADVANCED]


def apply_errors(form: forms.Form, exc: ValidationError) -> None:
    """Show a service's field-keyed errors next to the matching form fields (others at the top)."""
    for field, messages in exc.message_dict.items():
        form.add_error(field if field in form.fields else None, messages)


class SweepForm(forms.Form):
    name = forms.CharField(max_length=200)
    base_model = forms.ModelChoiceField(queryset=BaseModel.objects.all(), empty_label=None)
    train_version = _VersionChoice(queryset=DatasetVersion.objects.none(), label="Training data")
    val_version = _VersionChoice(
        queryset=DatasetVersion.objects.none(),
        label="Validation data",
        help_text="Trials are compared on it.",
    )
    method = forms.ChoiceField(
        choices=[c for c in METHOD_CHOICES if c[0] in ("lora", "dora", "qlora", "ia3")]
    )
    n_trials = forms.IntegerField(min_value=1, max_value=200, initial=8, label="Trials")
    seed = forms.IntegerField(
        initial=0, help_text="Seeds the sampler; each trial trains with the config's seed."
    )
    search_space = forms.JSONField(
        initial=DEFAULT_SEARCH_SPACE,
        widget=forms.Textarea(attrs={"rows": 8, "class": "mono"}),
        help_text='Per parameter: {"choices": [...]} or {"low": x, "high": y, "log": true}. Searchable: '
        "learning_rate, rank, alpha, placement, epochs, weight_decay, batch_size.",
    )
    hyperparameters = forms.JSONField(
        initial={"epochs": 1, "eval_every_steps": 20},
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "class": "mono"}),
        label="Fixed settings",
        help_text="Any other training setting, the same for every trial (the method's defaults fill the rest).",
    )
    initial_trials = forms.JSONField(
        initial=[],
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "class": "mono"}),
        help_text='Parameter sets to try first, e.g. [{"learning_rate": 0.0002, "rank": 16}].',
    )
    pruner_startup_trials = forms.IntegerField(
        min_value=0, initial=3, help_text="Trials that always finish before the median pruner stops bad ones."
    )
    pruner_warmup_steps = forms.IntegerField(
        min_value=0, initial=0, help_text="Steps before a trial may be pruned."
    )

    def __init__(self, project: Project, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["train_version"].queryset = _versions(project)  # type: ignore[attr-defined]
        self.fields["val_version"].queryset = _versions(project)  # type: ignore[attr-defined]


class BaseVersionForm(forms.Form):
    base_model = forms.ModelChoiceField(queryset=BaseModel.objects.all(), empty_label=None)
    name = forms.CharField(max_length=200, initial="base")
