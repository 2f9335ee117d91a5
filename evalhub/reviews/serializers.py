"""Request and response shapes of the reviews API, for the OpenAPI schema. Validation itself happens in
`evalhub.reviews.services`, so the pages and the API reject the same input with the same field names."""

from __future__ import annotations

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


class SkipSerializer(serializers.Serializer):
    assignment = serializers.CharField()


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


class ProgressSerializer(serializers.Serializer):
    mine = serializers.IntegerField()
    my_share = serializers.IntegerField(allow_null=True)
    done = serializers.IntegerField()
    wanted = serializers.IntegerField()


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
