from django.contrib import admin

from evalhub.feedback.models import FeedbackExport, RetrainPipeline


@admin.register(FeedbackExport)
class FeedbackExportAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "kind", "name", "version", "created_at"]
    list_filter = ["kind"]
    readonly_fields = ["version", "filters", "counts", "lineage", "held_out", "files"]


@admin.register(RetrainPipeline)
class RetrainPipelineAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "parent", "mode", "stage", "status", "new_version", "created_at"]
    list_filter = ["status", "mode"]
    readonly_fields = ["log"]
