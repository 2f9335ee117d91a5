"""API shapes of the arena. Annotator-facing shapes carry no contestant, run, output or model-version field."""

from __future__ import annotations

import math
from typing import Any

from rest_framework import serializers

from evalhub.arena.models import BothBadAs, Campaign, Choice, Contestant, Scheduling
from evalhub.arena.selectors import CriterionBoard, Progress


class ProgressSerializer(serializers.Serializer):
    my_votes = serializers.IntegerField()
    my_skips = serializers.IntegerField()
    votes = serializers.IntegerField()
    comparisons = serializers.IntegerField()
    slots = serializers.IntegerField()
    slots_open = serializers.IntegerField()
    pairs_total = serializers.IntegerField()
    pairs_decided = serializers.IntegerField()
    fraction = serializers.FloatField()

    @staticmethod
    def of(p: Progress) -> dict[str, Any]:
        return {**{k: getattr(p, k) for k in ("my_votes", "my_skips", "votes", "comparisons", "slots", "slots_open",
                                              "pairs_total", "pairs_decided")}, "fraction": p.fraction}


class CampaignSerializer(serializers.ModelSerializer):
    """What every member may see of a campaign."""

    class Meta:
        model = Campaign
        fields = ["id", "name", "kind", "status", "instructions", "criteria", "overlap", "scheduling",
                  "stop_when_decided", "confidence", "min_votes_to_decide", "both_bad_as", "created_at", "closed_at"]
        read_only_fields = fields


class ContestantSerializer(serializers.ModelSerializer):
    name = serializers.CharField(source="label")
    model_version_number = serializers.SerializerMethodField()

    class Meta:
        model = Contestant
        fields = ["index", "name", "model_version", "model_version_number", "generation_run", "external_name"]
        read_only_fields = fields

    def get_model_version_number(self, obj: Contestant) -> int | None:
        return obj.model_version.number if obj.model_version_id else None


class LeadCampaignSerializer(CampaignSerializer):
    """Leads also see who competes."""

    contestants = ContestantSerializer(many=True, read_only=True)
    annotators = serializers.SerializerMethodField()

    class Meta(CampaignSerializer.Meta):
        fields = [*CampaignSerializer.Meta.fields, "eval_version", "source_name", "seed", "claim_minutes",
                  "contestants", "annotators"]
        read_only_fields = fields

    def get_annotators(self, obj: Campaign) -> list[int]:
        return list(obj.annotators.values_list("pk", flat=True))


class _OptionsSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    instructions = serializers.CharField(required=False, allow_blank=True, default="")
    criteria = serializers.ListField(child=serializers.CharField(max_length=60), required=False, default=list, max_length=12)
    overlap = serializers.IntegerField(min_value=1, max_value=50, default=1)
    scheduling = serializers.ChoiceField(choices=Scheduling.choices, default=Scheduling.UNIFORM)
    stop_when_decided = serializers.BooleanField(default=True)
    confidence = serializers.FloatField(min_value=0.51, max_value=0.999, default=0.95)
    min_votes_to_decide = serializers.IntegerField(min_value=0, max_value=100_000, default=20)
    both_bad_as = serializers.ChoiceField(choices=BothBadAs.choices, default=BothBadAs.TIE)
    claim_minutes = serializers.IntegerField(min_value=1, max_value=24 * 60, default=30)
    seed = serializers.IntegerField(required=False, min_value=0, max_value=2**31 - 1)
    annotators = serializers.ListField(child=serializers.IntegerField(), required=False, default=list)


class CampaignCreateSerializer(_OptionsSerializer):
    runs = serializers.ListField(child=serializers.IntegerField(), min_length=2,
                                 help_text="ids of two or more finished generation runs over the same eval version")
    max_prompts = serializers.IntegerField(min_value=1, required=False, allow_null=True)


class ImportSerializer(_OptionsSerializer):
    file = serializers.FileField()
    chosen_name = serializers.CharField(max_length=200, default="chosen")
    rejected_name = serializers.CharField(max_length=200, default="rejected")
    record_labels = serializers.BooleanField(default=True)
    open_for_annotators = serializers.BooleanField(default=False)
    stop_when_decided = serializers.BooleanField(default=False)


class StatusSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["open", "closed"])


class VoteSerializer(serializers.Serializer):
    comparison = serializers.CharField(max_length=64, help_text="the token of a comparison served to you")
    choice = serializers.ChoiceField(choices=Choice.choices, help_text="a = the left response (A), b = the right (B)")
    criteria = serializers.DictField(child=serializers.CharField(allow_blank=True), required=False, default=dict)
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000, trim_whitespace=True)
    seconds = serializers.FloatField(required=False, default=0.0, min_value=0)


class SkipSerializer(serializers.Serializer):
    comparison = serializers.CharField(max_length=64)


class BlindSideSerializer(serializers.Serializer):
    text = serializers.CharField()


class BlindComparisonSerializer(serializers.Serializer):
    """Everything an annotator gets: a random token, the prompt, and texts A (left) and B (right)."""

    token = serializers.CharField()
    prompt = serializers.DictField()
    a = BlindSideSerializer()
    b = BlindSideSerializer()
    criteria = serializers.ListField(child=serializers.CharField())
    expires_at = serializers.CharField(allow_null=True)


class NextSerializer(serializers.Serializer):
    comparison = BlindComparisonSerializer(allow_null=True)
    detail = serializers.CharField()
    progress = ProgressSerializer()


class VoteResultSerializer(serializers.Serializer):
    comparison = serializers.CharField()
    choice = serializers.CharField()
    criteria = serializers.DictField()
    reason = serializers.CharField()
    created = serializers.BooleanField()


class CriterionVersionSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="the contestant's index")
    name = serializers.CharField()
    rating = serializers.FloatField(allow_null=True, help_text="Elo scale; null when the criterion has no votes")
    low = serializers.FloatField(allow_null=True)
    high = serializers.FloatField(allow_null=True)
    rank = serializers.IntegerField()
    wins = serializers.IntegerField()
    losses = serializers.IntegerField()
    ties = serializers.IntegerField()
    n = serializers.IntegerField(help_text="votes of this version that judged the criterion")
    win_rate = serializers.FloatField(allow_null=True, help_text="ties count half; null without votes")


class CriterionBoardSerializer(serializers.Serializer):
    """One rubric criterion: the leaderboard fit on the votes that judged it."""

    criterion = serializers.CharField()
    n_votes = serializers.IntegerField(help_text="votes that judged this criterion (0: no votes yet)")
    versions = CriterionVersionSerializer(many=True, help_text="best first")
    board = serializers.DictField(help_text="the full fit, shaped like the overall board")

    @staticmethod
    def of(c: CriterionBoard) -> dict[str, Any]:
        return {
            "criterion": c.criterion, "n_votes": c.n_votes, "board": c.board.as_dict(),
            "versions": [
                {"index": v.index, "name": v.name, "rating": _finite(v.rating), "low": _finite(v.low), "high": _finite(v.high),
                 "rank": v.rank, "wins": v.wins, "losses": v.losses, "ties": v.ties, "n": v.n, "win_rate": v.win_rate}
                for v in c.versions
            ],
        }


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None
