from django.contrib import admin

from logscrawler.models import AlertThresholds, ErrorFingerprint, LogService


@admin.register(LogService)
class LogServiceAdmin(admin.ModelAdmin):
    list_display = ["name", "railway_service_id", "railway_environment_id", "created_at"]
    search_fields = ["name"]


@admin.register(ErrorFingerprint)
class ErrorFingerprintAdmin(admin.ModelAdmin):
    list_display = ["template", "service", "exception_type", "status", "count", "last_seen"]
    list_filter = ["status", "service"]
    search_fields = ["template", "exception_type"]
    readonly_fields = ["key", "grouping_version", "tokens", "order", "merged_into", "first_seen", "last_seen"]


@admin.register(AlertThresholds)
class AlertThresholdsAdmin(admin.ModelAdmin):
    """One row; an empty field falls back to its setting (named under the field)."""

    def has_add_permission(self, request) -> bool:
        return not AlertThresholds.objects.exists()

    def save_model(self, request, obj, form, change) -> None:
        obj.pk = 1
        super().save_model(request, obj, form, change)
