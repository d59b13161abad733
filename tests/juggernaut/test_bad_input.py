"""Bad input anywhere in the JSON API gets a clean answer in the error shape, never a 500; an HTML page
with an impossible id in its path is a 404 page."""

import re

import pytest
from django.test import Client
from django.urls import URLResolver, get_resolver
from django.urls.resolvers import RoutePattern

from juggernaut.engine.models import Task
from juggernaut.models import ApiToken

HUGE = "99999999999999999999999"
BODIES = [
    "",
    "null",
    "{}",
    "[]",
    "1",
    '"x"',
    "{not json",
    "\ufffe",
    '{"title": null}',
    '{"title": "x", "priority": "high"}',
    '{"title": "x", "kind": "noop", "payload": "not an object"}',
    '{"title": "' + "x" * 100_000 + '", "kind": "noop"}',
    '{"worker": "abc", "incarnation": "zz", "limit": -1}',
    '{"worker": ' + HUGE + ', "incarnation": "00000000-0000-0000-0000-000000000000"}',
    '{"title": "x", "kind": "noop", "required_capabilities": [1, 2]}',
    '{"title": "x", "kind": "noop", "depends_on": ' + HUGE + "}",
    '{"title": "x", "kind": "noop", "priority": 1e308}',
    '{"name": "", "scopes": ["read"]}',
    '{"name": "x", "scopes": ["read"], "days": -4}',
]
POSTS = [
    "/api/engine/tasks",
    "/api/engine/claim",
    "/api/engine/workers",
    "/api/engine/tasks/1/complete",
    "/api/engine/tasks/1/fail",
    "/api/engine/tasks/1/heartbeat",
    f"/api/engine/tasks/{HUGE}/complete",
    "/api/engine/tasks/1/approve",
    "/api/engine/tasks/1/retry",
    "/api/engine/tasks/1/cancel",
    "/api/engine/tasks/1/reassign",
    "/api/engine/workers/1/heartbeat",
    f"/api/engine/workers/{HUGE}/heartbeat",
    "/api/tokens",
]
GETS = [
    "/api/engine/tasks?status=bogus",
    "/api/engine/tasks?limit=-5",
    "/api/engine/tasks?offset=abc",
    "/api/engine/tasks/abc",
    f"/api/engine/tasks/{HUGE}",
    "/api/events/hq?after_seq=-5",
    f"/api/events/hq?after_seq={HUGE}",
    "/api/events/" + "a" * 500,
    f"/api/tokens/{HUGE}",
]


@pytest.fixture
def admin_client(client, make_token):
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {make_token('admin')}"
    return client


def assert_clean_error(response, context) -> None:
    """Never a 5xx; every refusal in the one error shape (a few odd-but-valid inputs are accepted)."""
    assert response.status_code < 500, (context, response.status_code)
    if response.status_code >= 400:
        assert set(response.json()["error"]) == {"code", "message", "details"}, context


@pytest.mark.django_db
@pytest.mark.parametrize("path", POSTS)
def test_it_answers_bad_bodies_with_a_clean_4xx(admin_client, path):
    tokens = ApiToken.objects.count()
    for body in BODIES:
        assert_clean_error(admin_client.post(path, body, content_type="application/json"), (path, body[:40]))
    assert Task.objects.count() == 0
    assert ApiToken.objects.count() == tokens


@pytest.mark.django_db
@pytest.mark.parametrize("path", GETS)
def test_it_answers_bad_queries_with_a_clean_4xx(admin_client, path):
    assert_clean_error(admin_client.get(path), path)


@pytest.mark.django_db
def test_it_answers_bad_patches_and_deletes_with_a_clean_4xx(admin_client):
    for body in ['{"priority": "x"}', '{"priority": ' + HUGE + "}", "[]", "{broken"]:
        assert_clean_error(
            admin_client.patch("/api/engine/tasks/1", body, content_type="application/json"), body
        )
    assert_clean_error(admin_client.delete(f"/api/tokens/{HUGE}"), "delete")


@pytest.mark.django_db
@pytest.mark.parametrize("body", ["false", "0", '"x"', "[1]", "[]"])
def test_it_refuses_a_body_that_is_not_an_object_even_where_every_field_is_optional(admin_client, body):
    pause = admin_client.post("/api/engine/pause", body, content_type="application/json")
    assert pause.status_code == 422, pause.content
    assert pause.json()["error"]["code"] == "validation_error"
    assert "must be a JSON object" in pause.json()["error"]["message"]
    assert admin_client.get("/api/engine/status").json()["paused"] is False  # nothing happened
    assert admin_client.post("/api/engine/pause", "null", content_type="application/json").status_code == 200


def id_routes(patterns=None, prefix: str = "") -> list[str]:
    """Every HTML route with an integer in its path, the integer out of any database's range."""
    found = []
    for entry in get_resolver().url_patterns if patterns is None else patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            if not route.startswith(("api/", "admin/")):  # the API has its own tests; the admin below
                found += id_routes(entry.url_patterns, route)
        elif isinstance(entry.pattern, RoutePattern) and "<int:" in route:
            found.append("/" + re.sub(r"<int:\w+>", HUGE, re.sub(r"<slug:\w+>", "retry", route)))
    return found


ADMIN_IDS = [
    f"/admin/engine/task/{HUGE}/change/",
    f"/admin/engine/worker/{HUGE}/change/",
    "/admin/auth/user/1e999/change/",
]


def test_it_finds_the_id_routes_it_checks():
    assert {"/engine/tasks/" + HUGE + "/", "/engine/workers/" + HUGE + "/"} <= set(id_routes())


@pytest.mark.django_db
@pytest.mark.parametrize("path", [*id_routes(), *ADMIN_IDS])
def test_it_answers_an_out_of_range_id_in_a_page_path_with_a_404_page(admin_user, path):
    page = Client()
    page.force_login(admin_user)
    for answer in [page.get(path), page.post(path)]:
        # The admin answers a missing object with a redirect to its list, and some routes take POST only.
        assert answer.status_code in (302, 404, 405), (path, answer.status_code)
        if answer.status_code == 404:
            assert answer["Content-Type"].startswith("text/html"), path
