from django.contrib import admin

from logscrawler.models import ErrorFingerprint, LogService


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
