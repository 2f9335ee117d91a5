from django.contrib import admin

from evalhub.jobs.models import Job, WorkerNode


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "kind", "status", "attempts", "created_at", "finished_at"]
    list_filter = ["status", "kind", "queue"]
    readonly_fields = [f.name for f in Job._meta.fields]


@admin.register(WorkerNode)
class WorkerNodeAdmin(admin.ModelAdmin):
    # Written by the workers themselves; an admin edit would only be overwritten by the next report.
    list_display = ["hostname", "queues", "cuda", "bitsandbytes", "torch_version", "last_seen", "stopped_at"]
    list_filter = ["cuda", "bitsandbytes"]
    search_fields = ["hostname"]
    readonly_fields = [f.name for f in WorkerNode._meta.fields]
