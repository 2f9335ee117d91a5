"""The launch form. It only parses input: the decoding settings are validated by the trainer library's
DecodeSettings (through `services.decode_settings`), whose errors name the field and are shown next to it."""

from __future__ import annotations

from typing import Any

from django import forms

from evalhub.datasets.models import DatasetVersion
from evalhub.projects.models import Project
from evalhub.tuning.models import ModelVersion

DECODE_FIELDS = ("do_sample", "temperature", "top_p", "max_new_tokens", "seed", "num_samples", "batch_size")


class GenerationRunForm(forms.Form):
    model_version = forms.ModelChoiceField(queryset=ModelVersion.objects.none(), help_text="Base model, or base + adapter.")
    eval_version = forms.ModelChoiceField(
        queryset=DatasetVersion.objects.none(), label="Eval set", help_text="A held-out dataset version (e.g. the eval split)."
    )
    do_sample = forms.TypedChoiceField(
        label="Decoding", choices=[("false", "Greedy"), ("true", "Sampling")], coerce=lambda v: v == "true", initial="false"
    )
    temperature = forms.FloatField(initial=1.0, required=False, help_text="Sampling only.")
    top_p = forms.FloatField(initial=1.0, required=False, label="Top-p", help_text="Sampling only.")
    max_new_tokens = forms.IntegerField(initial=128, label="Max new tokens")
    seed = forms.IntegerField(initial=0, help_text="Same settings and seed give the same outputs.")
    num_samples = forms.IntegerField(initial=1, label="Samples per prompt")
    batch_size = forms.IntegerField(initial=8, label="Batch size")

    def __init__(self, *args: Any, project: Project, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["model_version"].queryset = ModelVersion.objects.filter(project=project).select_related("base_model")
        self.fields["model_version"].label_from_instance = lambda mv: f"v{mv.number} · {mv.name} ({mv.base_model.name}{' + adapter' if mv.adapter_key else ''})"
        self.fields["eval_version"].queryset = (
            DatasetVersion.objects.filter(dataset__project=project).select_related("dataset").order_by("dataset__name", "-number")
        )
        self.fields["eval_version"].label_from_instance = lambda v: f"{v} · {v.row_count} rows{'' if v.has_reference else ' · no references'}"

    def decode_settings(self) -> dict[str, Any]:
        return {k: self.cleaned_data[k] for k in DECODE_FIELDS if self.cleaned_data.get(k) is not None}
