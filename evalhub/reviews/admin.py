from django.contrib import admin

from evalhub.reviews.models import Adjudication, Campaign, Criterion, Rubric, RubricVersion


class CriterionInline(admin.TabularInline):
    model = Criterion
    extra = 0


@admin.register(Rubric)
class RubricAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "created_at"]
    list_filter = ["project"]


@admin.register(RubricVersion)
class RubricVersionAdmin(admin.ModelAdmin):
    list_display = ["rubric", "number", "created_at"]
    inlines = [CriterionInline]


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "status", "overlap", "item_count", "created_at"]
    list_filter = ["status", "project"]
    readonly_fields = ["guidelines_html", "item_count", "gold_count", "sampling"]


@admin.register(Adjudication)
class AdjudicationAdmin(admin.ModelAdmin):
    list_display = ["campaign", "status", "reviewer", "created_at", "resolved_at"]
    list_filter = ["status"]
