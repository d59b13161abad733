"""Stored fingerprints carried over to grouping version 3 (traces group by their messages too)."""

from django.db import migrations


def forward(apps, schema_editor):
    from logscrawler.regroup import fingerprints_regroup

    fingerprints_regroup(
        apps.get_model("logscrawler", "ErrorFingerprint"),
        apps.get_model("logscrawler", "ErrorOccurrence"),
        apps.get_model("logscrawler", "LogLine"),
        apps.get_model("logscrawler", "ErrorMinute"),
    )


class Migration(migrations.Migration):
    dependencies = [("logscrawler", "0007_crawl_heartbeat")]

    operations = [migrations.RunPython(forward, migrations.RunPython.noop)]
