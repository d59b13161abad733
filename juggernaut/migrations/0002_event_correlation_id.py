"""``Event.run_id`` becomes the generic ``correlation_id`` (the column is renamed; rows keep their values)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("juggernaut", "0001_initial"),
    ]

    operations = [
        migrations.RenameField(model_name="event", old_name="run_id", new_name="correlation_id"),
    ]
