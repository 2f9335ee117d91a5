from django.contrib import admin

from evalhub.datasets.models import CurationItem, CurationQueue, Dataset, DatasetVersion, QualityReport


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "created_at"]
    search_fields = ["name"]
    list_filter = ["project"]


@admin.register(DatasetVersion)
class DatasetVersionAdmin(admin.ModelAdmin):
    list_display = ["__str__", "source", "row_count", "content_hash", "created_at"]
    list_filter = ["source"]
    search_fields = ["dataset__name", "content_hash"]

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False  # versions are immutable


@admin.register(QualityReport)
class QualityReportAdmin(admin.ModelAdmin):
    list_display = ["id", "version", "compare_to", "job", "created_at"]
    raw_id_fields = ["version", "compare_to", "job"]


@admin.register(CurationQueue)
class CurationQueueAdmin(admin.ModelAdmin):
    list_display = ["name", "version", "status", "created_at"]
    list_filter = ["status"]
    raw_id_fields = ["version", "result_version"]


@admin.register(CurationItem)
class CurationItemAdmin(admin.ModelAdmin):
    # Items can number in the thousands per queue: a filtered list, not an inline on the queue.
    list_display = ["queue", "position", "decision", "label", "decided_by", "decided_at", "seconds_spent"]
    list_filter = ["decision", "queue"]
    raw_id_fields = ["queue", "example", "claimed_by", "decided_by"]
