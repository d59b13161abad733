from django.core.management.base import BaseCommand, CommandError

from routing import services
from routing.errors import RoutingError


class Command(BaseCommand):
    help = "Fetch OpenRouter's model list (prices, context lengths, parameters) into the catalog, and check the key."

    def handle(self, *args, **options) -> None:
        try:
            count = services.catalog_sync()
        except RoutingError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(f"synced {count} models")
        state = services.key_check()
        if state.key_error:
            self.stderr.write(f"key: {state.key_error}")
        else:
            self.stdout.write("key: ok")
