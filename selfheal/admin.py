from django.contrib import admin

from selfheal.models import Execution, Playbook


@admin.register(Playbook)
class PlaybookAdmin(admin.ModelAdmin):
    list_display = ["name", "order", "enabled", "auto_run", "updated_at"]
    list_editable = ["order", "enabled", "auto_run"]


@admin.register(Execution)
class ExecutionAdmin(admin.ModelAdmin):
    list_display = ["id", "kind", "status", "trigger", "actor", "touched", "started_at", "duration_ms"]
    list_filter = ["kind", "status", "trigger"]
    readonly_fields = [f.name for f in Execution._meta.fields]
