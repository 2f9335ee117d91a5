from django.contrib import admin

from evalhub.generation.models import GenerationRun, Output


@admin.register(GenerationRun)
class GenerationRunAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "model_version", "eval_version", "status", "created_at"]
    list_filter = ["status", "project"]
    raw_id_fields = ["model_version", "eval_version", "job", "created_by"]


@admin.register(Output)
class OutputAdmin(admin.ModelAdmin):
    list_display = ["id", "run", "example", "sample_index", "output_tokens", "finish_reason"]
    raw_id_fields = ["run", "example"]
    search_fields = ["text"]
