"""Keep the API's one error shape for the few answers django-ninja makes outside its handlers."""

from asgiref.sync import iscoroutinefunction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.decorators import sync_and_async_middleware

from juggernaut.errors import HQError


def _reshape(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    if response.status_code != 405 or not request.path.startswith("/api/"):
        return response
    allowed = response.get("Allow", "")
    error = HQError(
        "method_not_allowed",
        f"{request.method} is not allowed here",
        details={"allowed": [m.strip() for m in allowed.split(",") if m.strip()]},
    )
    shaped = JsonResponse(error.as_dict(), status=405)
    if allowed:
        shaped["Allow"] = allowed
    return shaped


@sync_and_async_middleware
def api_error_shape(get_response):
    if iscoroutinefunction(get_response):

        async def middleware(request: HttpRequest):
            return _reshape(request, await get_response(request))

    else:

        def middleware(request: HttpRequest):
            return _reshape(request, get_response(request))

    return middleware
