"""Base models are installation-wide, so the operator registers them here (paths on the workers' disks)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError

from evalhub.tuning import services
from evalhub.tuning.models import BaseModel, ModelVersion, Sweep, TrainingRun


class BaseModelForm(forms.ModelForm):
    class Meta:
        model = BaseModel
        fields = ["name", "source_kind", "path_or_id", "gguf_file", "notes"]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.errors:
            return data
        candidate = BaseModel(**{k: data.get(k, "") for k in self.Meta.fields})
        try:
            inspected = services.base_model_inspect(candidate)
        except ValidationError as exc:
            raise forms.ValidationError(exc.messages) from exc
        for key, value in inspected.items():
            setattr(self.instance, key, value)
        return data


@admin.register(BaseModel)
class BaseModelAdmin(admin.ModelAdmin):
    form = BaseModelForm
    list_display = ["name", "source_kind", "architecture", "parameter_count", "created_at"]
    readonly_fields = ["architecture", "parameter_count", "has_chat_template"]


@admin.register(TrainingRun)
class TrainingRunAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "name", "method", "sweep", "trial_state", "created_at"]
    list_filter = ["method"]
    readonly_fields = [f.name for f in TrainingRun._meta.fields]


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "number", "name", "base_model", "created_at"]
    readonly_fields = [f.name for f in ModelVersion._meta.fields]


@admin.register(Sweep)
class SweepAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "name", "n_trials", "created_at"]
    readonly_fields = [f.name for f in Sweep._meta.fields]
