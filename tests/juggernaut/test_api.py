"""The API's shared behaviour: health, the error shape, the schema and docs."""

from unittest import mock

import pytest
from django.db import DatabaseError


@pytest.mark.django_db
def test_it_reports_health_without_auth(client):
    response = client.get("/api/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["database"] == "ok" and body["version"]


@pytest.mark.django_db
def test_it_reports_503_when_the_database_is_unreachable(client):
    with mock.patch("juggernaut.api.connection.cursor", side_effect=DatabaseError("connection refused")):
        response = client.get("/api/health")
    assert response.status_code == 503
    assert response.json()["database"].startswith("unreachable")


@pytest.mark.django_db
def test_it_answers_unknown_api_paths_with_json_404(client):
    response = client.get("/api/no/such/thing")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.django_db
def test_it_answers_malformed_json_with_422_and_changes_nothing(alice_client):
    from juggernaut.models import ApiToken

    for body in ["{not json", '{"name": 1}', "[]", '{"name": "x", "scopes": "read"}']:
        response = alice_client.post("/api/tokens", body, content_type="application/json")
        assert response.status_code == 422, body
        assert response.json()["error"]["code"] == "validation_error"
        assert set(response.json()["error"]) == {"code", "message", "details"}
    assert ApiToken.objects.count() == 0


@pytest.mark.django_db
def test_it_serves_the_openapi_schema_with_every_router(alice_client):
    schema = alice_client.get("/api/openapi.json").json()
    assert schema["info"]["title"] == "Juggernaut HQ API"
    for path in ["/api/health", "/api/events/{topic}", "/api/events/{topic}/stream", "/api/tokens"]:
        assert path in schema["paths"], path
    assert "AG-UI" in schema["info"]["description"]


@pytest.mark.django_db
def test_it_serves_the_docs_page_without_external_assets(alice_client):
    page = alice_client.get("/api/docs").content.decode()
    assert "swagger" in page.lower()
    assert "cdn." not in page and "unpkg" not in page


@pytest.mark.django_db
def test_it_answers_a_wrong_method_in_the_error_shape(alice_client):
    response = alice_client.put("/api/health")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert "GET" in response.json()["error"]["details"]["allowed"]


def test_no_two_api_schemas_share_a_name():
    """The OpenAPI document names a component by its class name: two apps' ``TaskOut`` would make one
    operation be documented (and checked) with the other's shape."""
    from collections import Counter

    from ninja import Schema

    import juggernaut.api  # noqa: F401 - mounts every app's router, importing its schemas

    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    ours = {
        c
        for c in subclasses(Schema)
        if c.__module__.split(".")[0]
        in {"juggernaut", "chat", "selfheal", "logscrawler", "codehealth", "routing"}
    }
    twice = [name for name, n in Counter(c.__name__ for c in ours).items() if n > 1]
    assert twice == [], twice
