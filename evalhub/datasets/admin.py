from django.contrib import admin

from evalhub.datasets.models import CurationQueue, Dataset, DatasetVersion


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "created_at"]
    search_fields = ["name"]


@admin.register(DatasetVersion)
class DatasetVersionAdmin(admin.ModelAdmin):
    list_display = ["__str__", "source", "row_count", "content_hash", "created_at"]
    list_filter = ["source"]

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False  # versions are immutable


@admin.register(CurationQueue)
class CurationQueueAdmin(admin.ModelAdmin):
    list_display = ["name", "version", "status", "created_at"]
