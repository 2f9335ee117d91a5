from django.contrib import admin

from evalhub.reviews.models import Adjudication, Campaign, Criterion, Rubric, RubricVersion


class CriterionInline(admin.TabularInline):
    """Read-only: criteria change only through `rubric_update`, which versions them (campaigns cache them too)."""

    model = Criterion
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False


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
