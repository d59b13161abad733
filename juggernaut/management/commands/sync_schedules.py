from django.core.management.base import BaseCommand

from juggernaut.schedules import schedules_sync


class Command(BaseCommand):
    help = (
        "Make django-q2's schedules match the SCHEDULES each app declares in its tasks.py "
        "(timers of unchanged ones are kept)."
    )

    def handle(self, *args, **options) -> None:
        result = schedules_sync()
        for key in ("created", "updated", "deleted", "unchanged"):
            if result[key]:
                self.stdout.write(f"{key}: {', '.join(result[key])}")
