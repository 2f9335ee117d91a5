from __future__ import annotations

from typing import Any

from django import forms

from evalhub.datasets.ingest import FORMATS, ColumnMapping
from evalhub.datasets.models import CurationItem, Dataset, DatasetVersion

FORMAT_CHOICES = [("", "Detect from the file"), *[(f, {"jsonl": "JSON Lines", "csv": "CSV / TSV", "parquet": "Parquet",
                                                       "hf_folder": "Hugging Face dataset folder (.zip)"}[f])
                                                   for f in FORMATS]]
MAPPING_FIELDS = ("prompt", "messages", "reference", "label", "id")


def _split_list(text: str) -> list[str]:
    return [part.strip() for part in text.replace("\n", ",").split(",") if part.strip()]


class UploadForm(forms.Form):
    file = forms.FileField(required=False, allow_empty_file=True, help_text="JSON Lines, CSV/TSV, Parquet, or a zipped Hugging Face "
                                                     "dataset folder (save_to_disk).")
    staged = forms.CharField(required=False, widget=forms.HiddenInput)
    dataset = forms.ModelChoiceField(queryset=Dataset.objects.none(), required=False, empty_label="— a new dataset —",
                                     label="Add a version to")
    dataset_name = forms.CharField(required=False, max_length=200, label="New dataset name")
    fmt = forms.ChoiceField(choices=FORMAT_CHOICES, required=False, label="Format")
    prompt = forms.CharField(required=False, max_length=200, label="Prompt column")
    messages = forms.CharField(required=False, max_length=200, label="Chat messages column",
                               help_text='Instead of a prompt: a list of {"role", "content"} turns.')
    reference = forms.CharField(required=False, max_length=200, label="Reference output column")
    label = forms.CharField(required=False, max_length=200, label="Label column")
    id = forms.CharField(required=False, max_length=200, label="Id column")
    attributes = forms.CharField(required=False, max_length=2000, label="Attribute columns",
                                 help_text="Comma-separated, e.g. category, audience, language.")
    note = forms.CharField(required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args: Any, project: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["dataset"].queryset = Dataset.objects.filter(project=project)  # type: ignore[attr-defined]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if not data.get("file") and not data.get("staged"):
            self.add_error("file", "Choose a file to upload.")
        if data.get("dataset") is None and not (data.get("dataset_name") or "").strip() and not self.errors:
            self.add_error("dataset_name", "Name the new dataset, or choose an existing one to add a version to.")
        if data.get("dataset") is not None and (data.get("dataset_name") or "").strip():
            self.add_error("dataset_name", "Leave the name empty when adding a version to an existing dataset.")
        return data

    def has_mapping(self) -> bool:
        data = self.cleaned_data
        return any((data.get(f) or "").strip() for f in (*MAPPING_FIELDS, "attributes"))

    def mapping(self, suggested: ColumnMapping | None) -> ColumnMapping:
        """The mapping typed in; when the user typed none, the one suggested from the file's column names."""
        if not self.has_mapping() and suggested is not None:
            return suggested
        data = self.cleaned_data
        return ColumnMapping(
            prompt=(data.get("prompt") or "").strip() or None,
            messages=(data.get("messages") or "").strip() or None,
            reference=(data.get("reference") or "").strip() or None,
            label=(data.get("label") or "").strip() or None,
            id=(data.get("id") or "").strip() or None,
            attributes=_split_list(data.get("attributes") or ""),
        )


def mapping_initial(mapping: ColumnMapping) -> dict[str, str]:
    return {"prompt": mapping.prompt or "", "messages": mapping.messages or "", "reference": mapping.reference or "",
            "label": mapping.label or "", "id": mapping.id or "", "attributes": ", ".join(mapping.attributes)}


class SplitForm(forms.Form):
    train = forms.IntegerField(min_value=0, max_value=100, initial=80, label="Train %")
    validation = forms.IntegerField(min_value=0, max_value=100, initial=10, label="Validation %")
    eval = forms.IntegerField(min_value=0, max_value=100, initial=10, label="Held-out eval %")
    seed = forms.IntegerField(min_value=0, initial=0)
    stratify_by = forms.ChoiceField(required=False, label="Stratify by")

    def __init__(self, *args: Any, version: DatasetVersion, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["stratify_by"].choices = [("", "— none —")] + [(a, a) for a in version.attribute_names or []]  # type: ignore[attr-defined]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        parts = [data.get(k) for k in ("train", "validation", "eval")]
        if all(p is not None for p in parts) and sum(parts) != 100:  # type: ignore[arg-type]
            raise forms.ValidationError("The three parts must add up to 100 %.")
        return data

    def fractions(self) -> dict[str, float]:
        return {k: self.cleaned_data[k] / 100 for k in ("train", "validation", "eval") if self.cleaned_data[k] > 0}


class RebalanceForm(forms.Form):
    attribute = forms.ChoiceField(label="Balance over")
    mode = forms.ChoiceField(choices=[("down", "Down-sample to the rarest value"),
                                      ("up", "Up-sample to the most common value (with replacement)")])
    seed = forms.IntegerField(min_value=0, initial=0)

    def __init__(self, *args: Any, version: DatasetVersion, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choices = [(a, a) for a in version.attribute_names or []]
        if version.has_label:
            choices.append(("label", "label"))
        self.fields["attribute"].choices = choices  # type: ignore[attr-defined]


class QualityForm(forms.Form):
    compare_to = forms.ModelChoiceField(queryset=DatasetVersion.objects.none(), required=False,
                                        empty_label="— no comparison —", label="Check leakage against")

    def __init__(self, *args: Any, version: DatasetVersion, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        qs = (DatasetVersion.objects.filter(dataset__project_id=version.dataset.project_id)
              .exclude(pk=version.pk).select_related("dataset").order_by("dataset__name", "number"))
        self.fields["compare_to"].queryset = qs  # type: ignore[attr-defined]


class CurationQueueForm(forms.Form):
    name = forms.CharField(max_length=200)
    instructions = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}),
                                   help_text="What to accept, reject or fix; shown above every example.")
    label_choices = forms.CharField(required=False, max_length=2000, label="Labels",
                                    help_text="Comma-separated, at most 9 (keys 1-9). Leave empty for no labels.")
    sample_size = forms.IntegerField(required=False, min_value=1, label="Sample size",
                                     help_text="Leave empty to queue every example.")
    seed = forms.IntegerField(min_value=0, initial=0)
    claim_minutes = forms.IntegerField(min_value=1, max_value=24 * 60, initial=15, label="Claim minutes")

    def labels(self) -> list[str]:
        return _split_list(self.cleaned_data.get("label_choices") or "")


class DecisionForm(forms.Form):
    item = forms.IntegerField()
    decision = forms.ChoiceField(choices=[(d, d) for d in (CurationItem.Decision.ACCEPT, CurationItem.Decision.REJECT,
                                                          CurationItem.Decision.FIX)])
    label = forms.CharField(required=False, max_length=200)
    fixed_prompt = forms.CharField(required=False, strip=False)
    fixed_reference = forms.CharField(required=False, strip=False)
    comment = forms.CharField(required=False, max_length=2000)
    seconds = forms.FloatField(required=False, min_value=0)
