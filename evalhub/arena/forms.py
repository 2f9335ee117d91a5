"""Forms of the arena pages. They parse and check input; the services decide and store."""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.contrib.auth import get_user_model

from evalhub.arena.models import BothBadAs, Scheduling
from evalhub.arena.services import CampaignOptions
from evalhub.generation.models import GenerationRun, RunStatus
from evalhub.projects.models import Project


def split_criteria(text: str) -> list[str]:
    return [c.strip() for c in re.split(r"[,\n]", text or "") if c.strip()]


class _OptionsMixin(forms.Form):
    name = forms.CharField(max_length=200)
    instructions = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False,
                                   help_text="Shown to annotators above every comparison.")
    criteria = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Optional rubric criteria judged A / B / tie besides the overall vote, one per line or comma "
                  "separated (e.g. accuracy, persuasiveness).",
    )
    overlap = forms.IntegerField(min_value=1, max_value=50, initial=1,
                                 help_text="Votes wanted per comparison, each from a different annotator.")
    scheduling = forms.ChoiceField(choices=Scheduling.choices, initial=Scheduling.UNIFORM)
    stop_when_decided = forms.BooleanField(
        required=False, initial=True,
        help_text="Stop serving a pair of versions once the interval of their rating difference excludes zero.",
    )
    confidence = forms.FloatField(min_value=0.51, max_value=0.999, initial=0.95)
    min_votes_to_decide = forms.IntegerField(min_value=0, max_value=100_000, initial=20,
                                             help_text="Never call a pair decided on fewer votes between them.")
    both_bad_as = forms.ChoiceField(choices=BothBadAs.choices, initial=BothBadAs.TIE, label="“Both bad” votes")
    claim_minutes = forms.IntegerField(min_value=1, max_value=24 * 60, initial=30,
                                       help_text="How long a served comparison is kept for its annotator.")
    annotators = forms.ModelMultipleChoiceField(
        queryset=get_user_model().objects.none(), required=False, widget=forms.CheckboxSelectMultiple,
        help_text="Leave empty to let every project member vote.",
    )

    def __init__(self, *args: Any, project: Project, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.project = project
        self.fields["annotators"].queryset = get_user_model().objects.filter(memberships__project=project).order_by("username")

    def options(self) -> CampaignOptions:
        d = self.cleaned_data
        return CampaignOptions(
            name=d["name"], instructions=d.get("instructions") or "", scheduling=d["scheduling"], overlap=d["overlap"],
            stop_when_decided=bool(d.get("stop_when_decided")), confidence=d["confidence"],
            min_votes_to_decide=d["min_votes_to_decide"], criteria=tuple(split_criteria(d.get("criteria") or "")),
            both_bad_as=d["both_bad_as"], claim_minutes=d["claim_minutes"],
        )


class RunChoiceField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj: GenerationRun) -> str:
        return f"Run #{obj.pk} · {obj.model_version} · on {obj.eval_version}"


class CampaignForm(_OptionsMixin):
    runs = RunChoiceField(queryset=GenerationRun.objects.none(), widget=forms.CheckboxSelectMultiple,
                          help_text="Two or more finished runs over the same eval version, one per model version.")
    max_prompts = forms.IntegerField(min_value=1, required=False,
                                     help_text="Compare on a random sample of this many prompts (empty = all).")
    field_order = ["name", "runs", "max_prompts", "instructions", "criteria", "overlap", "scheduling",
                   "stop_when_decided", "confidence", "min_votes_to_decide", "both_bad_as", "claim_minutes",
                   "annotators"]

    def __init__(self, *args: Any, project: Project, **kwargs: Any) -> None:
        super().__init__(*args, project=project, **kwargs)
        self.fields["runs"].queryset = (
            GenerationRun.objects.filter(project=project, status=RunStatus.SUCCEEDED)
            .select_related("model_version", "eval_version__dataset").order_by("-created_at")
        )


class ImportForm(_OptionsMixin):
    file = forms.FileField(help_text="JSON Lines: {prompt, chosen, rejected} per line (TRL's preference format, "
                                     "text or message lists), or {chosen, rejected} full “Human: … Assistant: …” "
                                     "transcripts whose shared beginning is the prompt.")
    chosen_name = forms.CharField(max_length=200, initial="chosen", label="Name of the preferred source")
    rejected_name = forms.CharField(max_length=200, initial="rejected", label="Name of the other source")
    record_labels = forms.BooleanField(
        required=False, initial=True,
        help_text="Store the file's own preference as a vote (origin “import”), so the pairs feed the DPO export.",
    )
    open_for_annotators = forms.BooleanField(
        required=False, initial=False,
        help_text="Let the team judge the pairs blind too (their agreement with the file is then reported).",
    )
    field_order = ["file", "name", "chosen_name", "rejected_name", "record_labels", "open_for_annotators",
                   "instructions", "criteria", "overlap", "scheduling", "stop_when_decided", "confidence",
                   "min_votes_to_decide", "both_bad_as", "claim_minutes", "annotators"]

    def __init__(self, *args: Any, project: Project, **kwargs: Any) -> None:
        super().__init__(*args, project=project, **kwargs)
        self.fields["stop_when_decided"].initial = False
