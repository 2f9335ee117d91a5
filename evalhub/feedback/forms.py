"""Forms of the feedback pages. They parse input into ExportOptions and retrain settings; the services decide."""

from __future__ import annotations

import json
import re
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from evalhub.datasets.models import DatasetVersion
from evalhub.feedback.builders import DPO_SOURCES, RELIABILITY_MODES, SFT_SOURCES, ExportOptions
from evalhub.feedback.models import ExportKind, RetrainMode
from evalhub.projects.models import Project

SOURCE_LABELS = {
    "rated": "Outputs rated at or above the threshold (SFT)",
    "corrections": "Annotators' corrections: the corrected text is the target (SFT)",
    "curated": "Accepted and fixed curated examples (SFT)",
    "arena": "Arena votes: winner chosen, loser rejected (DPO)",
    "rubric_pairs": "Same-prompt outputs whose rubric scores differ by the margin (DPO)",
}
RELIABILITY_LABELS = {
    "ignore": "Ignore",
    "weight": "Weight ratings and votes by it",
    "drop": "Leave out annotators below the minimum",
}


def _split(text: str) -> tuple[str, ...]:
    return tuple(c.strip() for c in re.split(r"[,\n]", text or "") if c.strip())


def _versions(project: Project) -> Any:
    return (
        DatasetVersion.objects.filter(dataset__project=project)
        .select_related("dataset")
        .order_by("dataset__name", "-number")
    )


class FilterFields(forms.Form):
    """The filters every export takes (the retrain form applies them to both of its exports)."""

    criteria = forms.CharField(
        required=False,
        help_text="Rubric criteria to judge by, comma separated; empty: every numeric criterion rated.",
    )
    min_score = forms.FloatField(
        min_value=0,
        max_value=1,
        initial=0.75,
        label="Minimum score (0–1)",
        help_text="Rated outputs: every chosen criterion, on a 0–1 scale (0.75 = 4 of 5; pass = 1).",
    )
    margin = forms.FloatField(
        min_value=0,
        max_value=1,
        initial=0.25,
        label="Rubric pair margin (0–1)",
        help_text="Rubric pairs: the score difference a pair needs (0.25 = one point of 5).",
    )
    max_pairs_per_prompt = forms.IntegerField(min_value=1, max_value=100, initial=3)
    include_ties = forms.BooleanField(
        required=False,
        help_text="Arena: count tie votes (they lower the winner's share; "
        "a comparison most called a tie gives no pair).",
    )
    include_both_bad = forms.BooleanField(
        required=False, label="Include “both bad” votes", help_text="Likewise."
    )
    include_imported = forms.BooleanField(
        required=False, initial=True, help_text="Arena: imported preference labels."
    )
    min_agreement = forms.FloatField(
        min_value=0,
        max_value=1,
        initial=0.0,
        label="Minimum agreement (0–1)",
        help_text="Ratings: 1 − spread; votes: the winner's share. A single rating or vote "
        "fails any minimum above 0.",
    )
    adjudicated_only = forms.BooleanField(required=False, help_text="Only values a reviewer adjudicated.")
    min_gold_accuracy = forms.FloatField(
        min_value=0,
        max_value=1,
        required=False,
        label="Minimum gold accuracy (0–1)",
        help_text="Leave out annotators below it (those without gold answers stay).",
    )
    reliability = forms.ChoiceField(
        choices=[(m, RELIABILITY_LABELS[m]) for m in RELIABILITY_MODES],
        initial="ignore",
        label="Annotator reliability",
        help_text="Agreement with the others' consensus.",
    )
    min_reliability = forms.FloatField(min_value=0, max_value=1, initial=0.5)
    leakage_threshold = forms.FloatField(
        min_value=0.01,
        max_value=1,
        initial=0.8,
        help_text="Prompts this similar (word Jaccard) to a held-out prompt are dropped.",
    )

    FILTER_NAMES = (
        "criteria",
        "min_score",
        "margin",
        "max_pairs_per_prompt",
        "include_ties",
        "include_both_bad",
        "include_imported",
        "min_agreement",
        "adjudicated_only",
        "min_gold_accuracy",
        "reliability",
        "min_reliability",
        "leakage_threshold",
    )

    def main_fields(self) -> list[forms.BoundField]:
        """Every field but the filters (the page shows those in their own group)."""
        return [self[name] for name in self.fields if name not in self.FILTER_NAMES]

    def filter_values(self) -> dict[str, Any]:
        d = self.cleaned_data
        return {
            "criteria": _split(d.get("criteria") or ""),
            "min_score": d["min_score"],
            "margin": d["margin"],
            "max_pairs_per_prompt": d["max_pairs_per_prompt"],
            "include_ties": bool(d.get("include_ties")),
            "include_both_bad": bool(d.get("include_both_bad")),
            "include_imported": bool(d.get("include_imported")),
            "min_agreement": d["min_agreement"],
            "adjudicated_only": bool(d.get("adjudicated_only")),
            "min_gold_accuracy": d.get("min_gold_accuracy"),
            "reliability": d["reliability"],
            "min_reliability": d["min_reliability"],
            "leakage_threshold": d["leakage_threshold"],
        }


class ExportForm(FilterFields):
    name = forms.CharField(max_length=200, required=False)
    kind = forms.ChoiceField(choices=ExportKind.choices, initial=ExportKind.DPO, widget=forms.RadioSelect)
    sources = forms.MultipleChoiceField(
        choices=[(s, SOURCE_LABELS[s]) for s in (*SFT_SOURCES, *DPO_SOURCES)],
        widget=forms.CheckboxSelectMultiple,
        help_text="Matching the kind.",
    )
    review_campaigns = forms.ModelMultipleChoiceField(
        queryset=None, required=False, help_text="Empty: all of them."
    )
    arena_campaigns = forms.ModelMultipleChoiceField(
        queryset=None, required=False, help_text="Empty: all of them."
    )
    curation_queues = forms.ModelMultipleChoiceField(
        queryset=None, required=False, help_text="Empty: all of them."
    )
    held_out_versions = forms.ModelMultipleChoiceField(
        queryset=None,
        required=False,
        help_text="Every eval and test split is always held out; add others here.",
    )
    formats = forms.MultipleChoiceField(
        choices=[("parquet", "Parquet"), ("hf", "Hugging Face datasets folder")],
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="JSONL is always written.",
    )

    field_order = ["name", "kind", "sources"]

    def __init__(self, *args: Any, project: Project, **kwargs: Any) -> None:
        from evalhub.arena.models import Campaign as ArenaCampaign
        from evalhub.datasets.models import CurationQueue
        from evalhub.reviews.models import Campaign as ReviewCampaign

        super().__init__(*args, **kwargs)
        self.project = project
        self.fields["review_campaigns"].queryset = ReviewCampaign.objects.filter(project=project)  # type: ignore[attr-defined]
        self.fields["arena_campaigns"].queryset = ArenaCampaign.objects.filter(project=project)  # type: ignore[attr-defined]
        self.fields["curation_queues"].queryset = CurationQueue.objects.filter(
            version__dataset__project=project
        )  # type: ignore[attr-defined]
        self.fields["held_out_versions"].queryset = _versions(project)  # type: ignore[attr-defined]

    def options(self) -> ExportOptions:
        d = self.cleaned_data

        def ids(name: str) -> tuple[int, ...] | None:
            chosen = d.get(name)
            return tuple(o.pk for o in chosen) if chosen else None

        return ExportOptions(
            kind=d["kind"],
            sources=tuple(d["sources"]),
            review_campaign_ids=ids("review_campaigns"),
            arena_campaign_ids=ids("arena_campaigns"),
            curation_queue_ids=ids("curation_queues"),
            held_out_version_ids=ids("held_out_versions") or (),
            **self.filter_values(),
        )


class JSONObjectField(forms.CharField):
    widget = forms.Textarea(attrs={"rows": 2})

    def to_python(self, value: Any) -> dict[str, Any]:
        text = super().to_python(value)
        if not text.strip():
            return {}
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValidationError(
                f"Not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})."
            ) from None
        if not isinstance(parsed, dict):
            raise ValidationError('Give an object, e.g. {"max_steps": 40, "learning_rate": 0.0001}.')
        return parsed


class RetrainForm(FilterFields):
    parent = forms.IntegerField(label="Retrain from", widget=forms.Select)
    eval_version = forms.ModelChoiceField(
        queryset=None,
        help_text="Both versions generate on it; metrics and the arena "
        "compare them there. Its prompts never enter the exports.",
    )
    mode = forms.ChoiceField(choices=RetrainMode.choices, initial=RetrainMode.DPO, widget=forms.RadioSelect)
    sft_sources = forms.MultipleChoiceField(
        choices=[(s, SOURCE_LABELS[s]) for s in SFT_SOURCES],
        required=False,
        initial=["rated", "corrections"],
        widget=forms.CheckboxSelectMultiple,
    )
    dpo_sources = forms.MultipleChoiceField(
        choices=[(s, SOURCE_LABELS[s]) for s in DPO_SOURCES],
        required=False,
        initial=["arena"],
        widget=forms.CheckboxSelectMultiple,
    )
    sft_hyperparameters = JSONObjectField(
        required=False,
        label="SFT settings (JSON)",
        help_text='On top of the parent\'s own settings, e.g. {"max_steps": 40}.',
    )
    dpo_hyperparameters = JSONObjectField(
        required=False,
        label="DPO settings (JSON)",
        help_text='e.g. {"max_steps": 40, "learning_rate": 5e-5, "beta": 0.1}.',
    )
    max_new_tokens = forms.IntegerField(min_value=1, max_value=4096, initial=128)
    metrics = forms.MultipleChoiceField(choices=[], widget=forms.CheckboxSelectMultiple)

    field_order = ["parent", "eval_version", "mode", "sft_sources", "dpo_sources"]

    def __init__(self, *args: Any, project: Project, **kwargs: Any) -> None:
        from evalhub.feedback.services import DEFAULT_METRICS
        from evalhub.tuning.models import ModelVersion
        from trainer.metrics import METRICS

        super().__init__(*args, **kwargs)
        self.project = project
        self.fields["parent"].widget.choices = [  # type: ignore[attr-defined]
            (v.pk, str(v)) for v in ModelVersion.objects.filter(project=project).order_by("-number")
        ]
        self.fields["eval_version"].queryset = _versions(project)  # type: ignore[attr-defined]
        # The project's newest held-out split: what a retrain is normally judged on.
        held_out = _versions(project).filter(split_name__in=("eval", "test")).order_by("-created_at", "-pk").first()
        if held_out is not None:
            self.fields["eval_version"].initial = held_out.pk
        self.fields["metrics"].choices = [(m, m) for m in METRICS]  # type: ignore[attr-defined]
        self.fields["metrics"].initial = DEFAULT_METRICS

    def export_options(self) -> tuple[ExportOptions | None, ExportOptions | None]:
        d = self.cleaned_data
        values = self.filter_values()
        sft = (
            ExportOptions(kind="sft", sources=tuple(d["sft_sources"]), **values)
            if d.get("sft_sources")
            else None
        )
        dpo = (
            ExportOptions(kind="dpo", sources=tuple(d["dpo_sources"]), **values)
            if d.get("dpo_sources")
            else None
        )
        return sft, dpo
