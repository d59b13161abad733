"""ASGI entry point: HTTP through Django, websockets through Channels (daphne serves both)."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "juggernaut.settings")

from django.core.asgi import get_asgi_application

django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from juggernaut.auth import WebsocketAuthMiddleware  # noqa: E402
from juggernaut.events.consumers import EventsConsumer, HQConsumer  # noqa: E402
from juggernaut.middleware import BodyLimit  # noqa: E402

websocket_urlpatterns = [
    path("ws/events/", EventsConsumer.as_asgi()),
    path("ws/hq/", HQConsumer.as_asgi()),
]

application = ProtocolTypeRouter(
    {
        "http": BodyLimit(django_asgi_app),
        "websocket": AuthMiddlewareStack(WebsocketAuthMiddleware(URLRouter(websocket_urlpatterns))),
    }
)
