from __future__ import annotations

from typing import Any

from rest_framework import serializers

from evalhub.jobs.serializers import JobSerializer
from evalhub.tuning.forms import METHOD_CHOICES
from evalhub.tuning.models import BaseModel, ModelVersion, Sweep, TrainingRun


class BaseModelSerializer(serializers.ModelSerializer):
    class Meta:
        model = BaseModel
        # The path on the workers' disks is the operator's business, not the API's.
        fields = [
            "id",
            "name",
            "source_kind",
            "architecture",
            "parameter_count",
            "has_chat_template",
            "notes",
            "created_at",
        ]
        read_only_fields = fields


class TrainingRunSerializer(serializers.ModelSerializer):
    status = serializers.CharField(read_only=True)
    job = JobSerializer(read_only=True, allow_null=True)
    model_version = serializers.SerializerMethodField()

    class Meta:
        model = TrainingRun
        fields = [
            "id",
            "name",
            "status",
            "objective",
            "method",
            "base_model",
            "parent_version",
            "train_version",
            "val_version",
            "config",
            "sweep",
            "trial_number",
            "trial_state",
            "job",
            "result",
            "model_version",
            "created_at",
        ]
        read_only_fields = fields

    def get_model_version(self, run: TrainingRun) -> int | None:
        version = getattr(run, "model_version", None)
        return version.pk if version is not None else None


class TrainingRunCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    base_model = serializers.IntegerField()
    train_version = serializers.IntegerField()
    val_version = serializers.IntegerField(required=False, allow_null=True, default=None)
    parent_version = serializers.IntegerField(required=False, allow_null=True, default=None)
    method = serializers.ChoiceField(choices=METHOD_CHOICES, default="lora")
    placement = serializers.JSONField(
        required=False,
        allow_null=True,
        default=None,
        help_text='"attention", "mlp", "all_linear", or a list of module names; default: the method\'s',
    )
    hyperparameters = serializers.DictField(
        required=False,
        default=dict,
        help_text="any trainer setting (learning_rate, rank, alpha, epochs, max_steps, batch_size, ...); the "
        "method's defaults fill the rest",
    )


class SeriesSerializer(serializers.Serializer):
    x = serializers.ListField(child=serializers.IntegerField())
    y = serializers.ListField(child=serializers.FloatField())


class LossHistorySerializer(serializers.Serializer):
    status = serializers.CharField()
    finished = serializers.BooleanField()
    step = serializers.FloatField(allow_null=True)
    total_steps = serializers.FloatField(allow_null=True)
    train = SeriesSerializer()
    val = SeriesSerializer()


class ModelVersionSerializer(serializers.ModelSerializer):
    is_base_only = serializers.BooleanField(read_only=True)
    has_merged_export = serializers.SerializerMethodField()

    class Meta:
        model = ModelVersion
        fields = [
            "id",
            "number",
            "name",
            "base_model",
            "training_run",
            "parent",
            "is_base_only",
            "lineage",
            "has_merged_export",
            "created_at",
        ]
        read_only_fields = fields

    def get_has_merged_export(self, version: ModelVersion) -> bool:
        return bool(version.merged_key)


class TrialSerializer(serializers.ModelSerializer):
    params = serializers.SerializerMethodField()
    best_val_loss = serializers.SerializerMethodField()

    class Meta:
        model = TrainingRun
        fields = ["id", "trial_number", "trial_state", "params", "best_val_loss"]
        read_only_fields = fields

    def get_params(self, run: TrainingRun) -> dict[str, Any]:
        return (run.result or {}).get("params", {})

    def get_best_val_loss(self, run: TrainingRun) -> float | None:
        return (run.result or {}).get("best_val_loss")


class SweepSerializer(serializers.ModelSerializer):
    status = serializers.CharField(read_only=True)
    job = JobSerializer(read_only=True, allow_null=True)
    trials = TrialSerializer(many=True, read_only=True)

    class Meta:
        model = Sweep
        fields = [
            "id",
            "name",
            "status",
            "base_model",
            "train_version",
            "val_version",
            "base_config",
            "search_space",
            "n_trials",
            "seed",
            "initial_trials",
            "pruner_startup_trials",
            "pruner_warmup_steps",
            "job",
            "best_run",
            "result",
            "trials",
            "created_at",
        ]
        read_only_fields = fields


class SweepCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    base_model = serializers.IntegerField()
    train_version = serializers.IntegerField()
    val_version = serializers.IntegerField()
    method = serializers.ChoiceField(choices=METHOD_CHOICES, default="lora")
    hyperparameters = serializers.DictField(
        required=False, default=dict, help_text="settings fixed for every trial"
    )
    search_space = serializers.DictField(
        required=False,
        allow_null=True,
        default=None,
        help_text='per parameter {"choices": [...]} or {"low": x, "high": y, "log": bool}; default: learning rate, '
        "rank, alpha and placement",
    )
    n_trials = serializers.IntegerField(min_value=1, max_value=200, default=8)
    seed = serializers.IntegerField(default=0)
    initial_trials = serializers.ListField(child=serializers.DictField(), required=False, default=list)
    pruner_startup_trials = serializers.IntegerField(min_value=0, default=3)
    pruner_warmup_steps = serializers.IntegerField(min_value=0, default=0)
