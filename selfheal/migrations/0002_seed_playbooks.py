from django.db import migrations

PLAYBOOKS = [
    ("DiagnoseSystem", 1, False, "Every read-only check, concurrently.",
     ["workers", "queue", "jobs", "errors", "database", "openrouter", "railway", "github", "budgets"]),
    ("RepairCommonIssues", 2, True, "The safe repairs; auto-heal runs only those marked auto-safe.",
     ["release_expired_leases", "reset_blocked", "requeue_failed", "restart_schedules", "clear_stale_pause",
      "investigate_new_errors", "prune_events"]),
]


def seed(apps, schema_editor):
    Playbook = apps.get_model("selfheal", "Playbook")
    for name, order, auto_run, description, steps in PLAYBOOKS:
        Playbook.objects.get_or_create(name=name, defaults={
            "order": order, "auto_run": auto_run, "description": description,
            "steps": [{"name": s, "params": {}} for s in steps]})


class Migration(migrations.Migration):
    dependencies = [("selfheal", "0001_initial")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
