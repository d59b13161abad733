from django.contrib import admin

from routing.models import Budget, CatalogModel, CostTracking, Policy, Reservation, Usage


@admin.register(Policy)
class PolicyAdmin(admin.ModelAdmin):
    """Saving runs ``Policy.clean``: a policy whose models break its own caps is refused with the reason."""

    list_display = [
        "mode",
        "model",
        "fallback_models",
        "max_price_per_1k",
        "max_context_tokens",
        "max_iterations",
    ]
    search_fields = ["mode", "model"]


@admin.register(Budget)
class BudgetAdmin(admin.ModelAdmin):
    list_display = [
        "__str__",
        "scope",
        "mode",
        "session",
        "period",
        "limit_usd",
        "soft_limit_usd",
        "updated_at",
    ]
    list_filter = ["scope", "period"]


@admin.register(CatalogModel)
class CatalogModelAdmin(admin.ModelAdmin):
    list_display = [
        "model_id",
        "context_length",
        "prompt_per_1k",
        "completion_per_1k",
        "supports_tools",
        "synced_at",
    ]
    search_fields = ["model_id", "name"]
    readonly_fields = [f.name for f in CatalogModel._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False  # the catalog comes from the sync


class ReadOnly(admin.ModelAdmin):
    """Records of what happened: viewable, not editable."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Usage)
class UsageAdmin(ReadOnly):
    list_display = [
        "created_at",
        "mode",
        "session",
        "model_requested",
        "model_used",
        "prompt_tokens",
        "completion_tokens",
        "cost_usd",
        "cost_source",
        "finish_reason",
        "error_code",
    ]
    list_filter = ["mode", "finish_reason", "cost_source"]
    search_fields = ["session", "run", "model_used", "generation_id"]
    date_hierarchy = "created_at"


@admin.register(CostTracking)
class CostTrackingAdmin(ReadOnly):
    list_display = [
        "period",
        "period_start",
        "mode",
        "session",
        "calls",
        "errors",
        "cost_usd",
        "reserved_usd",
    ]
    list_filter = ["period", "mode"]
    search_fields = ["session"]


@admin.register(Reservation)
class ReservationAdmin(ReadOnly):
    list_display = ["created_at", "mode", "session", "model", "amount_usd", "max_tokens", "settled_at"]
    list_filter = ["mode"]
