from django.db import migrations


def create_row(apps, schema_editor):
    apps.get_model("engine", "EngineState").objects.get_or_create(pk=1)


class Migration(migrations.Migration):
    dependencies = [("engine", "0001_initial")]

    operations = [migrations.RunPython(create_row, migrations.RunPython.noop)]
