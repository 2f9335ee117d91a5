from __future__ import annotations

from typing import Any

from rest_framework import serializers

from evalhub.generation.models import GenerationRun, Output
from evalhub.jobs.serializers import JobSerializer


class GenerationRunSerializer(serializers.ModelSerializer):
    model_version_label = serializers.CharField(source="model_version.__str__", read_only=True)
    eval_version_label = serializers.CharField(source="eval_version.__str__", read_only=True)
    job = JobSerializer(read_only=True)

    class Meta:
        model = GenerationRun
        fields = [
            "id", "model_version", "model_version_label", "eval_version", "eval_version_label", "settings", "status",
            "error", "summary", "job", "created_at",
        ]
        read_only_fields = fields


class GenerationRunCreateSerializer(serializers.Serializer):
    model_version = serializers.IntegerField(help_text="id of a model version of this project")
    eval_version = serializers.IntegerField(help_text="id of a dataset version of this project (the held-out eval set)")
    settings = serializers.DictField(
        required=False, default=dict,
        help_text="decoding settings: do_sample, temperature, top_p, max_new_tokens, seed, num_samples, batch_size",
    )


class OutputSerializer(serializers.ModelSerializer):
    example_index = serializers.IntegerField(source="example.index", read_only=True)
    external_id = serializers.CharField(source="example.external_id", read_only=True)
    attributes = serializers.JSONField(source="example.attributes", read_only=True)
    prompt = serializers.CharField(source="example.prompt_text", read_only=True)
    reference = serializers.CharField(source="example.reference", read_only=True)
    scores = serializers.SerializerMethodField()

    class Meta:
        model = Output
        fields = [
            "id", "example", "example_index", "external_id", "sample_index", "attributes", "prompt", "reference", "text",
            "prompt_tokens", "output_tokens", "latency_s", "finish_reason", "error", "flags", "scores",
        ]
        read_only_fields = fields

    def get_scores(self, output: Output) -> dict[str, float | None]:
        """Scores of the metric run named in the request (`metric_run`), else empty."""
        scores: dict[int, dict[str, Any]] = self.context.get("scores", {})
        return scores.get(output.pk, {})
