"""Request and response shapes of the reviews API, for the OpenAPI schema. Validation itself happens in
`evalhub.reviews.services`, so the pages and the API reject the same input with the same field names."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers


class RatingSubmitSerializer(serializers.Serializer):
    assignment = serializers.CharField(help_text="the item's opaque token, as returned by `next`")
    values = serializers.DictField(help_text="{criterion name: value}: Likert 1..N, pass/fail 1/0, a label, a list of labels, or text")
    comment = serializers.CharField(required=False, allow_blank=True, help_text="at most 10,000 characters")
    corrected_text = serializers.CharField(required=False, allow_null=True, help_text="your edit of the output; omit to leave it")
    seconds_on_item = serializers.FloatField(required=False)
    submission_token = serializers.CharField(
        required=False, help_text="any unique string per submit; sending the same one again changes nothing"
    )


@extend_schema_serializer(component_name="ReviewSkip")
class SkipSerializer(serializers.Serializer):
    assignment = serializers.CharField()


@extend_schema_serializer(component_name="ReviewChoice")
class ChoiceSerializer(serializers.Serializer):
    key = serializers.CharField()
    value = serializers.CharField()
    text = serializers.CharField()


class CriterionOutSerializer(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField()
    scale = serializers.CharField()
    required = serializers.BooleanField()
    choices = ChoiceSerializer(many=True)


@extend_schema_serializer(component_name="ReviewItem")
class ItemSerializer(serializers.Serializer):
    assignment = serializers.CharField()
    status = serializers.CharField()
    prompt = serializers.ListField(child=serializers.DictField())
    reference = serializers.CharField(allow_null=True)
    output = serializers.CharField()
    corrected_text = serializers.CharField(allow_null=True)
    criteria = CriterionOutSerializer(many=True)
    values = serializers.DictField()
    comment = serializers.CharField()
    submission_token = serializers.CharField()


@extend_schema_serializer(component_name="ReviewProgress")
class ProgressSerializer(serializers.Serializer):
    mine = serializers.IntegerField()
    my_share = serializers.IntegerField(allow_null=True)
    done = serializers.IntegerField()
    wanted = serializers.IntegerField()


@extend_schema_serializer(component_name="ReviewNext")
class NextSerializer(serializers.Serializer):
    item = ItemSerializer(allow_null=True)
    progress = ProgressSerializer()


class CriterionInSerializer(serializers.Serializer):
    name = serializers.CharField()
    scale = serializers.ChoiceField(choices=["likert", "binary", "categorical", "multilabel", "text"])
    description = serializers.CharField(required=False, allow_blank=True)
    anchors = serializers.ListField(child=serializers.CharField(), required=False)
    options = serializers.ListField(child=serializers.CharField(), required=False)
    weight = serializers.FloatField(required=False)
    required = serializers.BooleanField(required=False)
    agreement_level = serializers.CharField(required=False, allow_blank=True)


class RubricInSerializer(serializers.Serializer):
    name = serializers.CharField(required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    criteria = CriterionInSerializer(many=True, required=False)
    template = serializers.CharField(required=False, help_text="copy a template instead: chatbot or content")


class CampaignOutSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    status = serializers.CharField()
    overlap = serializers.IntegerField()
    rubric = serializers.CharField()
    guidelines_html = serializers.CharField(help_text="sanitised HTML rendered from the lead's markdown")
    progress = ProgressSerializer()


class AgreementRowSerializer(serializers.Serializer):
    criterion = serializers.CharField()
    level = serializers.CharField(help_text="Krippendorff level: nominal, ordinal or interval")
    alpha = serializers.FloatField(allow_null=True)
    units = serializers.IntegerField()
    ratings = serializers.IntegerField()
    raters = serializers.ListField(child=serializers.CharField())
    kappa = serializers.ListField(child=serializers.ListField(child=serializers.FloatField(allow_null=True)))
    mean_kappa = serializers.FloatField(allow_null=True)


class ResultCellSerializer(serializers.Serializer):
    model_version = serializers.CharField()
    criterion = serializers.CharField()
    mean = serializers.FloatField(allow_null=True)
    low = serializers.FloatField(allow_null=True)
    high = serializers.FloatField(allow_null=True)
    n = serializers.IntegerField()
    adjudicated = serializers.IntegerField()


class ResultsSerializer(serializers.Serializer):
    cells = ResultCellSerializer(many=True)
    slice_by = serializers.CharField(allow_blank=True)
    slices = serializers.DictField(help_text="criterion -> slice value -> model version -> {mean, low, high, n}")


class RubricVersionOutSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    number = serializers.IntegerField()
    criteria = serializers.ListField(child=serializers.DictField())


class RubricOutSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    description = serializers.CharField(allow_blank=True)
    versions = RubricVersionOutSerializer(many=True)
