from django.contrib import admin

from evalhub.arena.models import Campaign, Comparison, Contestant, Vote


class ContestantInline(admin.TabularInline):
    model = Contestant
    extra = 0
    raw_id_fields = ["model_version", "generation_run"]


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "kind", "status", "scheduling", "overlap", "created_at"]
    list_filter = ["kind", "status", "project"]
    search_fields = ["name"]
    inlines = [ContestantInline]
    exclude = ["state"]


@admin.register(Comparison)
class ComparisonAdmin(admin.ModelAdmin):
    list_display = ["token", "campaign", "pair_lo", "pair_hi", "n_taken", "n_votes"]
    raw_id_fields = ["campaign", "prompt", "left", "right", "pair_lo", "pair_hi"]
    search_fields = ["token"]


@admin.register(Vote)
class VoteAdmin(admin.ModelAdmin):
    list_display = ["id", "campaign", "annotator", "origin", "choice", "created_at"]
    list_filter = ["origin", "choice"]
    raw_id_fields = ["campaign", "comparison", "annotator", "assignment"]
