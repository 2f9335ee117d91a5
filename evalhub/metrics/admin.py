from django.contrib import admin

from evalhub.metrics.models import MetricRun, MetricScore


@admin.register(MetricRun)
class MetricRunAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "generation_run", "status", "created_at"]
    list_filter = ["status", "project"]
    raw_id_fields = ["generation_run", "job", "created_by"]


@admin.register(MetricScore)
class MetricScoreAdmin(admin.ModelAdmin):
    list_display = ["id", "metric_run", "output", "metric", "value"]
    list_filter = ["metric"]
    raw_id_fields = ["metric_run", "output"]
