from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from evalhub.datasets.ingest import FORMATS, ColumnMapping
from evalhub.datasets.models import Dataset, DatasetVersion, Example, QualityReport
from evalhub.jobs.serializers import JobSerializer


class VersionBriefSerializer(serializers.ModelSerializer):
    class Meta:
        model = DatasetVersion
        fields = ["id", "number", "split_name", "source", "row_count", "parent", "content_hash", "created_at"]
        read_only_fields = fields


class DatasetSerializer(serializers.ModelSerializer):
    versions = VersionBriefSerializer(many=True, read_only=True)

    class Meta:
        model = Dataset
        fields = ["id", "name", "description", "created_at", "versions"]
        read_only_fields = fields


class VersionSerializer(serializers.ModelSerializer):
    dataset_name = serializers.CharField(source="dataset.name", read_only=True)
    children = serializers.SerializerMethodField()

    class Meta:
        model = DatasetVersion
        fields = [
            "id", "dataset", "dataset_name", "number", "parent", "children", "kind", "source", "split_name",
            "content_hash",
            "row_count", "file_name", "file_format", "mapping", "attribute_names", "has_reference", "has_label",
            "change_summary", "note", "created_at",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.ListField(child=serializers.IntegerField()))
    def get_children(self, version: DatasetVersion) -> list[int]:
        return list(version.children.order_by("number").values_list("pk", flat=True))


class ChatMessageSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=["system", "user", "assistant"])
    content = serializers.CharField()


class ExampleSerializer(serializers.ModelSerializer):
    messages = ChatMessageSerializer(many=True, read_only=True, allow_null=True)
    attributes = serializers.DictField(child=serializers.CharField(allow_blank=True), read_only=True)

    class Meta:
        model = Example
        fields = ["id", "index", "external_id", "prompt", "messages", "reference", "rejected", "label", "attributes",
                  "source_line"]
        read_only_fields = fields


class RowErrorSerializer(serializers.Serializer):
    file = serializers.CharField()
    line = serializers.IntegerField(allow_null=True)
    field = serializers.CharField(allow_null=True)
    message = serializers.CharField()
    unit = serializers.ChoiceField(choices=["line", "row"])
    text = serializers.CharField(help_text='The error as one sentence: file, line N, field "X": message.')


class ImportErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
    errors = RowErrorSerializer(many=True)
    truncated = serializers.BooleanField(help_text="True when there are more problems than listed.")


class UploadSerializer(serializers.Serializer):
    """Multipart upload. Leave the mapping out to map columns with common names (prompt, reference, label...)."""

    file = serializers.FileField(allow_empty_file=True)
    dataset = serializers.IntegerField(required=False, allow_null=True,
                                       help_text="Add a version to this dataset (id) ...")
    dataset_name = serializers.CharField(required=False, allow_blank=True, max_length=200,
                                         help_text="... or create a dataset with this name.")
    format = serializers.ChoiceField(choices=["", *FORMATS], required=False, allow_blank=True,
                                     help_text="Detected from the file when empty.")
    prompt = serializers.CharField(required=False, allow_blank=True, max_length=200)
    messages = serializers.CharField(required=False, allow_blank=True, max_length=200)
    reference = serializers.CharField(required=False, allow_blank=True, max_length=200)
    label = serializers.CharField(required=False, allow_blank=True, max_length=200)
    id = serializers.CharField(required=False, allow_blank=True, max_length=200)
    attributes = serializers.ListField(child=serializers.CharField(max_length=200), required=False,
                                       help_text="Attribute columns (repeat the field, or one comma-separated value).")
    note = serializers.CharField(required=False, allow_blank=True, max_length=2000)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("dataset") is None and not (attrs.get("dataset_name") or "").strip():
            raise serializers.ValidationError({"dataset_name": "Give a name for a new dataset or the id of one."})
        attrs["attributes"] = [a.strip() for v in attrs.get("attributes", []) for a in v.split(",") if a.strip()]
        return attrs

    def mapping(self, suggested: ColumnMapping | None) -> ColumnMapping:
        d = self.validated_data

        def col(key: str) -> str | None:
            return (d.get(key) or "").strip() or None

        keys = ("prompt", "messages", "reference", "label", "id")
        if not any(col(k) for k in keys) and not d.get("attributes") and suggested is not None:
            return suggested
        return ColumnMapping(prompt=col("prompt"), messages=col("messages"), reference=col("reference"),
                             label=col("label"), id=col("id"), attributes=list(d.get("attributes", [])))


class QualityReportSerializer(serializers.ModelSerializer):
    job = JobSerializer(read_only=True)
    report = serializers.JSONField(read_only=True, help_text="Empty until the job succeeds.")

    class Meta:
        model = QualityReport
        fields = ["id", "version", "compare_to", "job", "report", "created_at"]
        read_only_fields = fields


class QualityReportCreateSerializer(serializers.Serializer):
    compare_to = serializers.IntegerField(required=False, allow_null=True,
                                          help_text="Another version of this project, to measure leakage against.")
