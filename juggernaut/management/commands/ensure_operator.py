from django.conf import settings
from django.core.management.base import BaseCommand

from juggernaut.services import operator_ensure


class Command(BaseCommand):
    help = "Create the first operator if there is none (HQ_ADMIN_USER / HQ_ADMIN_PASSWORD, or generated)."

    def handle(self, *args, **options) -> None:
        name, generated = operator_ensure(
            username=settings.HQ_ADMIN_USER, password=settings.HQ_ADMIN_PASSWORD
        )
        if generated:
            self.stdout.write(
                self.style.WARNING(
                    f"Created operator '{name}' with password: {generated}\n"
                    "This password is shown once; change it under Admin → Users."
                )
            )
        else:
            self.stdout.write(f"Operator '{name}' is ready.")
