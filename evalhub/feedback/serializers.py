from __future__ import annotations

from typing import Any

from django.urls import reverse
from rest_framework import serializers

from evalhub.feedback.builders import DPO_SOURCES, RELIABILITY_MODES, SFT_SOURCES
from evalhub.feedback.models import ExportKind, FeedbackExport, RetrainMode, RetrainPipeline


class FeedbackExportSerializer(serializers.ModelSerializer):
    version_label = serializers.CharField(source="version.label", read_only=True, default=None)
    downloads = serializers.SerializerMethodField()

    class Meta:
        model = FeedbackExport
        fields = [
            "id",
            "name",
            "kind",
            "sources",
            "filters",
            "counts",
            "lineage",
            "held_out",
            "version",
            "version_label",
            "downloads",
            "created_at",
        ]
        read_only_fields = fields

    def get_downloads(self, obj: FeedbackExport) -> dict[str, str]:
        url = reverse(
            "api-feedback-export-download", kwargs={"project_id": obj.project_id, "export_id": obj.pk}
        )
        return {fmt: f"{url}?file={fmt}" for fmt in (obj.files or {})}


class ExportOptionsSerializer(serializers.Serializer):
    """The filters of an export; see evalhub.feedback.builders for what each one does."""

    sources = serializers.ListField(
        child=serializers.ChoiceField(choices=[*SFT_SOURCES, *DPO_SOURCES]), allow_empty=False
    )
    review_campaign_ids = serializers.ListField(
        child=serializers.IntegerField(), required=False, allow_null=True, default=None
    )
    arena_campaign_ids = serializers.ListField(
        child=serializers.IntegerField(), required=False, allow_null=True, default=None
    )
    curation_queue_ids = serializers.ListField(
        child=serializers.IntegerField(), required=False, allow_null=True, default=None
    )
    criteria = serializers.ListField(child=serializers.CharField(), required=False, default=list)
    min_score = serializers.FloatField(required=False, default=0.75)
    margin = serializers.FloatField(required=False, default=0.25)
    max_pairs_per_prompt = serializers.IntegerField(required=False, default=3)
    include_ties = serializers.BooleanField(required=False, default=False)
    include_both_bad = serializers.BooleanField(required=False, default=False)
    include_imported = serializers.BooleanField(required=False, default=True)
    min_agreement = serializers.FloatField(required=False, default=0.0)
    adjudicated_only = serializers.BooleanField(required=False, default=False)
    min_gold_accuracy = serializers.FloatField(required=False, allow_null=True, default=None)
    reliability = serializers.ChoiceField(choices=list(RELIABILITY_MODES), required=False, default="ignore")
    min_reliability = serializers.FloatField(required=False, default=0.5)
    held_out_version_ids = serializers.ListField(
        child=serializers.IntegerField(), required=False, default=list
    )
    leakage_threshold = serializers.FloatField(required=False, default=0.8)


class ExportCreateSerializer(ExportOptionsSerializer):
    kind = serializers.ChoiceField(choices=ExportKind.values)
    name = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)
    formats = serializers.ListField(
        child=serializers.ChoiceField(choices=["jsonl", "parquet", "hf"]), required=False, default=list
    )


def options_dict(data: dict[str, Any], kind: str) -> dict[str, Any]:
    values = {k: v for k, v in data.items() if k not in ("name", "formats")}
    values["kind"] = kind
    for key in (
        "review_campaign_ids",
        "arena_campaign_ids",
        "curation_queue_ids",
        "criteria",
        "held_out_version_ids",
        "sources",
    ):
        if values.get(key) is not None:
            values[key] = tuple(values[key])
    return values


class RetrainCreateSerializer(serializers.Serializer):
    parent = serializers.IntegerField(help_text="id of the model version to retrain from")
    eval_version = serializers.IntegerField(help_text="dataset version to generate on and compare with")
    mode = serializers.ChoiceField(choices=RetrainMode.values)
    sft = ExportOptionsSerializer(
        required=False, allow_null=True, default=None, help_text="SFT export options"
    )
    dpo = ExportOptionsSerializer(
        required=False, allow_null=True, default=None, help_text="DPO export options"
    )
    hyperparameters = serializers.DictField(
        required=False,
        default=dict,
        help_text='{"sft": {...}, "dpo": {..., "beta": 0.1}} on top of the parent\'s',
    )
    decode = serializers.DictField(required=False, default=dict, help_text='e.g. {"max_new_tokens": 128}')
    metrics = serializers.ListField(
        child=serializers.CharField(), required=False, default=None, allow_null=True
    )


class RetrainPipelineSerializer(serializers.ModelSerializer):
    jobs = serializers.SerializerMethodField()

    class Meta:
        model = RetrainPipeline
        fields = [
            "id",
            "mode",
            "stage",
            "status",
            "error",
            "parent",
            "new_version",
            "eval_version",
            "sft_export",
            "dpo_export",
            "sft_run",
            "dpo_run",
            "new_generation",
            "parent_generation",
            "new_metrics",
            "parent_metrics",
            "arena_campaign",
            "settings",
            "log",
            "jobs",
            "created_at",
            "finished_at",
        ]
        read_only_fields = fields

    def get_jobs(self, obj: RetrainPipeline) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for name in (
            "sft_run",
            "dpo_run",
            "new_generation",
            "parent_generation",
            "new_metrics",
            "parent_metrics",
        ):
            job = getattr(getattr(obj, name), "job", None)
            if job is not None:
                out[name] = {
                    "id": job.pk,
                    "status": job.status,
                    "progress": job.fraction,
                    "message": job.message,
                }
        return out
