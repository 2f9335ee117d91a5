from __future__ import annotations

from typing import Any

from django import forms

from evalhub.generation.models import GenerationRun, RunStatus
from evalhub.generation.selectors import attribute_names
from evalhub.metrics.models import MetricRun
from evalhub.projects.models import Project


def _metric_choices() -> list[tuple[str, str]]:
    from evalhub.metrics.services import available_metrics

    return [(m, m) for m in available_metrics()]


class MetricRunForm(forms.Form):
    generation_run = forms.ModelChoiceField(queryset=GenerationRun.objects.none(), help_text="A finished generation run.")
    metrics = forms.MultipleChoiceField(choices=(), widget=forms.CheckboxSelectMultiple)
    bertscore_model = forms.CharField(
        required=False, label="BERTScore model",
        help_text="A local model folder; empty = the bundled all-MiniLM-L6-v2.",
    )
    bertscore_layer = forms.IntegerField(required=False, min_value=1, label="BERTScore layer", help_text="Empty = the model's default.")

    def __init__(self, *args: Any, project: Project, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["generation_run"]
        field.queryset = GenerationRun.objects.filter(project=project, status=RunStatus.SUCCEEDED).select_related(
            "model_version", "eval_version__dataset"
        )
        field.label_from_instance = lambda r: f"#{r.pk} · {r.model_version} on {r.eval_version}"
        self.fields["metrics"].choices = _metric_choices()

    def options(self) -> dict[str, Any]:
        bert: dict[str, Any] = {}
        if self.cleaned_data.get("bertscore_model"):
            bert["model_path"] = self.cleaned_data["bertscore_model"].strip()
        if self.cleaned_data.get("bertscore_layer"):
            bert["num_layers"] = self.cleaned_data["bertscore_layer"]
        return {"bertscore": bert} if bert else {}


class CompareForm(forms.Form):
    a = forms.ModelChoiceField(queryset=MetricRun.objects.none(), label="Version A (baseline)")
    b = forms.ModelChoiceField(queryset=MetricRun.objects.none(), label="Version B (candidate)")
    slice = forms.ChoiceField(
        required=False, label="Slice by", choices=[("", "none")], widget=forms.Select(attrs={"class": "compact"})
    )

    def __init__(self, *args: Any, project: Project, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        runs = MetricRun.objects.filter(project=project, status=RunStatus.SUCCEEDED).select_related(
            "generation_run__model_version", "generation_run__eval_version__dataset"
        )
        for name in ("a", "b"):
            self.fields[name].queryset = runs
            self.fields[name].label_from_instance = (
                lambda r: f"{r.generation_run.model_version} · {r.generation_run.eval_version} · metric run #{r.pk}"
            )
        # Both sides must share an eval set, so either chosen run's attributes are the ones that can be sliced by.
        chosen = self._chosen_run(runs)
        names = attribute_names(chosen.generation_run) if chosen else []
        self.fields["slice"].choices = [("", "none"), *((n, n) for n in names)]

    def _chosen_run(self, runs: Any) -> MetricRun | None:
        source = self.data if self.is_bound else self.initial
        for name in ("a", "b"):
            value = source.get(name)
            pk = value.pk if isinstance(value, MetricRun) else value
            if str(pk or "").isdigit():
                run = runs.filter(pk=int(pk)).first()
                if run is not None:
                    return run
        return None
