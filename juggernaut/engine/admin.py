from django.contrib import admin, messages

from juggernaut.admin import AppendOnlyAdmin
from juggernaut.auth import actor_of
from juggernaut.engine import services
from juggernaut.engine.errors import EngineError
from juggernaut.engine.models import EngineState, Task, TaskEvent, Worker


class TaskEventInline(admin.TabularInline):
    model = TaskEvent
    extra = 0
    can_delete = False
    readonly_fields = ["at", "from_status", "to_status", "actor", "reason"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False


def _bulk(action, verb: str):
    def run(modeladmin, request, queryset) -> None:
        actor = actor_of(request.user)
        done = refused = 0
        for task_id in queryset.values_list("pk", flat=True):
            try:
                action(task_id, actor=actor)
                done += 1
            except EngineError:
                refused += 1
        messages.info(request, f"{done} task(s) {verb}; {refused} could not be (wrong status).")

    run.__name__ = f"tasks_{verb}"
    run.short_description = f"{verb.capitalize()} selected tasks"
    return run


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "title",
        "kind",
        "status",
        "priority",
        "attempts",
        "source",
        "lease_owner",
        "created_at",
    ]
    list_filter = ["status", "source", "kind", "needs_approval", "reason_code"]
    search_fields = ["title", "kind", "dedupe_key", "reason", "last_error"]
    list_select_related = ["lease_owner"]
    date_hierarchy = "created_at"
    # Status moves only through the actions, so every change is recorded and published.
    readonly_fields = [
        "status",
        "status_changed_at",
        "attempts",
        "lease_owner",
        "lease_incarnation",
        "lease_expires_at",
        "reason_code",
        "reason",
        "unblock_action",
        "approved_by",
        "approved_at",
        "last_error",
        "result",
        "created_at",
        "updated_at",
        "started_at",
        "finished_at",
    ]
    raw_id_fields = ["depends_on"]
    inlines = [TaskEventInline]
    actions = [
        _bulk(services.task_approve, "approved"),
        _bulk(services.task_retry, "retried"),
        _bulk(services.task_cancel, "cancelled"),
        _bulk(services.task_reassign, "reassigned"),
    ]


@admin.register(Worker)
class WorkerAdmin(admin.ModelAdmin):
    list_display = ["name", "capabilities", "concurrency", "last_heartbeat", "started_at", "stopped_at"]
    list_filter = ["stopped_at"]
    search_fields = ["name"]
    readonly_fields = ["incarnation", "last_heartbeat", "started_at", "stopped_at"]


@admin.register(TaskEvent)
class TaskEventAdmin(AppendOnlyAdmin):
    list_display = ["at", "task", "from_status", "to_status", "actor", "reason"]
    list_filter = ["to_status", "from_status"]
    search_fields = ["actor", "reason", "task__title"]
    raw_id_fields = ["task"]


@admin.register(EngineState)
class EngineStateAdmin(admin.ModelAdmin):
    list_display = ["__str__", "paused", "paused_by", "paused_at", "last_tick_at"]
    readonly_fields = ["paused", "paused_by", "paused_at", "reason", "findings", "last_tick_at"]
    actions = ["pause", "resume"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.action(description="Pause the engine")
    def pause(self, request, queryset) -> None:
        services.engine_pause(actor=actor_of(request.user), reason="paused from the admin")

    @admin.action(description="Resume the engine")
    def resume(self, request, queryset) -> None:
        services.engine_resume(actor=actor_of(request.user))
