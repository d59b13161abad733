from django.contrib import admin

from chat.models import ChatBudget, ChatMessage, ChatRun, ChatSession, ToolExecution


class ReadOnly(admin.ModelAdmin):
    """Records of what happened (messages, runs, tool executions, run budgets): viewable, not editable."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class MessageInline(admin.TabularInline):
    model = ChatMessage
    fields = ["created_at", "role", "content", "tool_call_id", "run"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ChatSession)
class ChatSessionAdmin(admin.ModelAdmin):
    """Title and mode are editable; what the runs did is not."""

    list_display = ["id", "title", "mode", "status", "owner", "cost_usd", "last_stop_reason", "updated_at"]
    list_filter = ["status", "mode", "last_stop_reason"]
    search_fields = ["title", "owner__username"]
    readonly_fields = [
        "status",
        "cost_usd",
        "steps_used",
        "last_stop_reason",
        "last_stop_detail",
        "last_stop_action",
        "guardrails",
        "created_at",
        "updated_at",
    ]
    inlines = [MessageInline]


class ToolExecutionInline(admin.TabularInline):
    model = ToolExecution
    fields = ["tool_call_id", "tool", "status", "iteration", "duration_ms", "error"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ChatRun)
class ChatRunAdmin(ReadOnly):
    list_display = [
        "id",
        "session",
        "status",
        "phase",
        "stop_reason",
        "iterations",
        "tool_calls",
        "created_at",
        "ended_at",
    ]
    list_filter = ["status", "stop_reason", "mode"]
    inlines = [ToolExecutionInline]


@admin.register(ChatMessage)
class ChatMessageAdmin(ReadOnly):
    list_display = ["id", "session", "role", "__str__", "created_at"]
    list_filter = ["role"]
    search_fields = ["content"]


@admin.register(ToolExecution)
class ToolExecutionAdmin(ReadOnly):
    list_display = ["id", "run", "tool", "status", "iteration", "duration_ms", "created_at"]
    list_filter = ["status", "tool"]
    search_fields = ["tool", "tool_call_id", "call_fingerprint", "failure_fingerprint"]


@admin.register(ChatBudget)
class ChatBudgetAdmin(admin.ModelAdmin):
    """A session's override row (no run) is editable; a run's budget is a record."""

    list_display = [
        "__str__",
        "max_steps",
        "max_iterations",
        "max_wall_seconds",
        "max_cost_usd",
        "max_retries",
        "steps_used",
        "cost_usd_used",
    ]
    readonly_fields = ["steps_used", "wall_seconds_used", "cost_usd_used", "retries_used", "run"]

    def has_change_permission(self, request, obj=None) -> bool:
        return obj is None or obj.run_id is None
