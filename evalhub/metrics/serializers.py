from __future__ import annotations

from rest_framework import serializers

from evalhub.jobs.serializers import JobSerializer
from evalhub.metrics.models import MetricRun


class MetricRunSerializer(serializers.ModelSerializer):
    model_version = serializers.IntegerField(source="generation_run.model_version_id", read_only=True)
    eval_version = serializers.IntegerField(source="generation_run.eval_version_id", read_only=True)
    job = JobSerializer(read_only=True)

    class Meta:
        model = MetricRun
        fields = [
            "id", "generation_run", "model_version", "eval_version", "metrics", "options", "status", "error", "refused",
            "corpus", "summary", "job", "created_at",
        ]
        read_only_fields = fields


class MetricRunCreateSerializer(serializers.Serializer):
    generation_run = serializers.IntegerField(help_text="id of a succeeded generation run of this project")
    metrics = serializers.ListField(
        child=serializers.CharField(), allow_empty=False,
        help_text="metric names, e.g. rouge, bleu, chrf, bertscore, exact_match, token_f1, output_length",
    )
    options = serializers.DictField(required=False, default=dict, help_text="per metric, e.g. {\"bertscore\": {\"num_layers\": 6}}")


class AggregateSerializer(serializers.Serializer):
    metric = serializers.CharField()
    slice = serializers.CharField(allow_null=True, help_text="null = all examples")
    mean = serializers.FloatField(allow_null=True)
    low = serializers.FloatField(allow_null=True)
    high = serializers.FloatField(allow_null=True)
    confidence = serializers.FloatField()
    n_examples = serializers.IntegerField()
    n_outputs = serializers.IntegerField()
    n_missing = serializers.IntegerField(help_text="outputs with no value for the metric (left out, not counted as 0)")


class AggregatesSerializer(serializers.Serializer):
    metric_run = serializers.IntegerField()
    slice_by = serializers.CharField(allow_null=True)
    slice_names = serializers.ListField(child=serializers.CharField())
    refused = serializers.DictField(child=serializers.CharField())
    corpus = serializers.DictField(child=serializers.FloatField(allow_null=True))
    rows = AggregateSerializer(many=True)


class ComparisonRowSerializer(serializers.Serializer):
    metric = serializers.CharField()
    slice = serializers.CharField(allow_null=True)
    mean_a = serializers.FloatField(allow_null=True)
    mean_b = serializers.FloatField(allow_null=True)
    delta = serializers.FloatField(allow_null=True, help_text="mean(B) - mean(A) over paired examples")
    low = serializers.FloatField(allow_null=True)
    high = serializers.FloatField(allow_null=True)
    p_value = serializers.FloatField(allow_null=True)
    confidence = serializers.FloatField()
    significant = serializers.BooleanField()
    verdict = serializers.CharField()
    n_pairs = serializers.IntegerField()
    n_dropped = serializers.IntegerField()
    n_unmatched = serializers.IntegerField()
    method = serializers.CharField()


class ComparisonSerializer(serializers.Serializer):
    a = serializers.IntegerField()
    b = serializers.IntegerField()
    slice_by = serializers.CharField(allow_null=True)
    rows = ComparisonRowSerializer(many=True)
