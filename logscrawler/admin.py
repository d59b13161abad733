from django.contrib import admin

from logscrawler.models import AlertThresholds, CrawlRun, ErrorFingerprint, LogService


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


@admin.register(CrawlRun)
class CrawlRunAdmin(admin.ModelAdmin):
    """What each crawl read and spent; a record of what happened, so nobody edits it."""

    list_display = [
        "started_at",
        "status",
        "window_start",
        "window_end",
        "lines",
        "new_fingerprints",
        "requests",
        "budget",
        "error_summary",
    ]
    list_filter = ["status"]
    date_hierarchy = "started_at"

    @admin.display(description="errors")
    def error_summary(self, run: CrawlRun) -> str:
        return "; ".join(run.errors)[:160]

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.is_active and request.user.is_staff  # every operator may read it

    def has_module_permission(self, request) -> bool:
        return self.has_view_permission(request)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
