"""Forms of the lead's pages (rubrics, campaigns). Rating forms are read by `rating_values_from_post`, because
their fields follow the rubric."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.http import QueryDict

from evalhub.generation.models import GenerationRun, RunStatus
from evalhub.reviews.models import AgreementLevel, Criterion, RubricVersion, Scale


class RubricForm(forms.Form):
    name = forms.CharField(max_length=200)
    description = forms.CharField(required=False, max_length=5000, widget=forms.Textarea(attrs={"rows": 2}))
    note = forms.CharField(
        required=False, max_length=300, label="What changed",
        help_text="Recorded on the new version when campaigns already use this rubric.",
    )


class CriterionForm(forms.Form):
    name = forms.CharField(max_length=100)
    description = forms.CharField(required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))
    # N is only known once the levels are typed (the Levels help says how), so the narrow select just names the kind.
    scale = forms.ChoiceField(
        choices=[(v, "Likert scale" if v == Scale.LIKERT else label) for v, label in Scale.choices]
    )
    anchors = forms.CharField(
        required=False, max_length=5000, widget=forms.Textarea(attrs={"rows": 5}), label="Levels",
        help_text="Likert: one line per level, level 1 first (2 to 9 lines). Pass/fail: the pass text, then the fail text.",
    )
    options = forms.CharField(
        required=False, max_length=5000, widget=forms.Textarea(attrs={"rows": 4}), label="Labels",
        help_text="Labels (one per line, 2 to 9) for 'one label' and 'any labels' criteria.",
    )
    weight = forms.FloatField(min_value=0, initial=1.0)
    required = forms.BooleanField(required=False, initial=True)
    agreement_level = forms.ChoiceField(choices=AgreementLevel.choices, required=False, label="Agreement level")

    def spec(self) -> dict[str, Any]:
        d = self.cleaned_data
        return {
            "name": d["name"], "description": d.get("description", ""), "scale": d["scale"],
            "anchors": d.get("anchors", ""), "options": d.get("options", ""), "weight": d.get("weight", 1.0),
            "required": d.get("required", False), "agreement_level": d.get("agreement_level", ""),
        }


CriterionFormSet = forms.formset_factory(CriterionForm, extra=1, can_delete=True, max_num=30, validate_max=True)


def criterion_initial(c: Criterion) -> dict[str, Any]:
    return {
        "name": c.name, "description": c.description, "scale": c.scale, "anchors": "\n".join(c.anchors),
        "options": "\n".join(c.options), "weight": c.weight, "required": c.required,
        "agreement_level": c.agreement_level,
    }


class MemberChoiceField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return obj.get_username()


class CampaignForm(forms.Form):
    name = forms.CharField(max_length=200)
    rubric_version = forms.ModelChoiceField(queryset=RubricVersion.objects.none(), label="Rubric version")
    runs = forms.ModelMultipleChoiceField(
        queryset=GenerationRun.objects.none(), label="Generation runs",
        help_text="Outputs of every chosen run are mixed and shuffled; raters never learn which model wrote what.",
    )
    sample_size = forms.IntegerField(
        required=False, min_value=1, label="Examples to sample",
        help_text="Empty: every example. Each chosen run's output for a sampled example is rated.",
    )
    stratify_by = forms.CharField(
        required=False, max_length=100, label="Stratify by attribute",
        help_text="Keep each value's share of the examples, e.g. category.",
    )
    seed = forms.IntegerField(initial=0, min_value=0)
    overlap = forms.IntegerField(initial=3, min_value=1, max_value=50, label="Ratings per output (k)")
    annotators = MemberChoiceField(
        queryset=get_user_model().objects.none(), required=False,
        help_text="Nobody chosen (and no group): every project member may rate.",
    )
    groups = forms.ModelMultipleChoiceField(queryset=Group.objects.all(), required=False)
    guidelines = forms.CharField(
        required=False, max_length=50_000, widget=forms.Textarea(attrs={"rows": 8}),
        help_text="Markdown. Shown above every item; scripts and unsafe HTML are removed.",
    )
    show_reference = forms.BooleanField(required=False, label="Show the reference answer to raters")
    assignment_minutes = forms.IntegerField(initial=30, min_value=1, max_value=1440, label="Minutes to rate one item")
    likert_threshold = forms.FloatField(
        initial=1.0, min_value=0, label="Send to a reviewer when Likert ratings span more than",
    )
    nominal_threshold = forms.FloatField(
        initial=0.34, min_value=0, max_value=1, label="…or when label ratings disagree more than",
        help_text="1 - share of the most common label: 0.34 flags a three-way split but not 2 against 1.",
    )

    def __init__(self, *args: Any, project: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["rubric_version"].queryset = (  # type: ignore[attr-defined]
            RubricVersion.objects.filter(rubric__project=project).select_related("rubric").order_by("rubric__name", "-number")
        )
        self.fields["runs"].queryset = (  # type: ignore[attr-defined]
            GenerationRun.objects.filter(project=project, status=RunStatus.SUCCEEDED).select_related("model_version")
        )
        self.fields["annotators"].queryset = (  # type: ignore[attr-defined]
            get_user_model().objects.filter(memberships__project=project).order_by("username")
        )


class GuidelinesForm(forms.Form):
    guidelines = forms.CharField(required=False, max_length=50_000, widget=forms.Textarea(attrs={"rows": 10}))


class ThresholdForm(forms.Form):
    likert_threshold = forms.FloatField(min_value=0)
    nominal_threshold = forms.FloatField(min_value=0, max_value=1)


def field_name(c: Criterion) -> str:
    """Form field of a criterion on the rating page: by position, so names with spaces need no escaping."""
    return f"c{c.position}"


def rating_values_from_post(criteria: list[Criterion], data: QueryDict) -> dict[str, Any]:
    """{criterion name: raw value} from a rating form (multi-label criteria send several values)."""
    out: dict[str, Any] = {}
    for c in criteria:
        key = field_name(c)
        if c.scale == Scale.MULTILABEL:
            values = data.getlist(key)
            if values:
                out[c.name] = values
        elif key in data:
            out[c.name] = data.get(key)
    return out
