from __future__ import annotations

from rest_framework import serializers

from evalhub.jobs.models import Job


class JobSerializer(serializers.ModelSerializer):
    fraction = serializers.FloatField(read_only=True)
    eta_seconds = serializers.FloatField(read_only=True, allow_null=True)

    class Meta:
        model = Job
        fields = [
            "id", "kind", "status", "progress_current", "progress_total", "fraction", "eta_seconds", "message",
            "error", "attempts", "cancel_requested", "created_at", "started_at", "finished_at", "heartbeat_at",
        ]
        read_only_fields = fields
