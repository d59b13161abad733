"""Input no store can hold (NUL characters, non-finite or out-of-range numbers, oversized bodies) is
refused with a clear 4xx naming the field, in the API's error shape or as a form error on HTML pages."""

import json

import pytest
from django.test import override_settings

from juggernaut.engine.models import EngineState, Task, Worker
from juggernaut.models import ApiToken

NUL = "a\u0000b"
NUL_BODIES = [
    ("/api/engine/tasks", {"title": NUL, "kind": "noop"}, "title"),
    ("/api/engine/tasks", {"title": "x", "kind": "noop", "payload": {"deep": [NUL]}}, "payload.deep[0]"),
    ("/api/engine/tasks", {"title": "x", "kind": "noop", "payload": {NUL: 1}}, "payload.a\\u0000b"),
    ("/api/engine/tasks", {"title": "x", "kind": "noop", "dedupe_key": NUL}, "dedupe_key"),
    ("/api/engine/pause", {"reason": NUL}, "reason"),
    ("/api/tokens", {"name": NUL, "scopes": ["read"]}, "name"),
    ("/api/engine/workers", {"name": NUL}, "name"),
]
NON_FINITE = ["NaN", "Infinity", "-Infinity", "1e999", "-1e999"]


@pytest.fixture
def admin_client(client, make_token):
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {make_token('admin')}"
    return client


def nothing_changed(tokens_before: int) -> bool:
    return (
        Task.objects.count() == 0
        and Worker.objects.count() == 0
        and not EngineState.load().paused
        and ApiToken.objects.count() == tokens_before
    )


@pytest.mark.django_db
@pytest.mark.parametrize(("path", "body", "field"), NUL_BODIES)
def test_it_refuses_nul_characters_in_json_bodies_naming_the_field(admin_client, path, body, field):
    tokens = ApiToken.objects.count()
    response = admin_client.post(path, json.dumps(body), content_type="application/json")
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "nul_character"
    assert response.json()["error"]["details"] == {"field": field}
    assert nothing_changed(tokens)


@pytest.mark.django_db
@pytest.mark.parametrize("number", NON_FINITE)
def test_it_refuses_non_finite_numbers(admin_client, number):
    for body in [
        f'{{"title": "x", "kind": "noop", "payload": {{"n": {number}}}}}',
        f'{{"title": "x", "kind": "noop", "priority": {number}}}',
    ]:
        response = admin_client.post("/api/engine/tasks", body, content_type="application/json")
        assert response.status_code == 422, body
        assert response.json()["error"]["code"] == "not_finite"
    assert Task.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("/api/engine/tasks?offset=9223372036854775808", "offset"),
        ("/api/engine/tasks?limit=9223372036854775808", "limit"),
        ("/api/events/hq?after_seq=9223372036854775808", "after_seq"),
        ("/api/events/hq?after_seq=1e999", "after_seq"),
        ("/api/engine/tasks?kind=a%00b", "kind"),
        ("/api/engine/tasks?status=pending%00", "status"),
    ],
)
def test_it_refuses_out_of_range_and_nul_query_values(admin_client, query, field):
    response = admin_client.get(query)
    assert response.status_code == 422
    error = response.json()["error"]
    assert set(error) == {"code", "message", "details"} and field in json.dumps(error)


@pytest.mark.django_db
def test_it_refuses_a_body_over_the_limit_with_413(admin_client):
    body = json.dumps({"title": "x", "kind": "noop", "payload": {"blob": "x" * 3_000_000}})
    response = admin_client.post("/api/engine/tasks", body, content_type="application/json")
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "body_too_large"
    with override_settings(HQ_MAX_BODY_BYTES=500, DATA_UPLOAD_MAX_MEMORY_SIZE=500):
        small = json.dumps({"title": "x" * 600, "kind": "noop"})
        refused = admin_client.post("/api/engine/tasks", small, content_type="application/json")
        assert refused.status_code == 413 and refused.json()["error"]["details"] == {"limit": 500}
    assert Task.objects.count() == 0


# --- HTML forms ----------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "form", "field"),
    [
        ("/engine/pause/", {"reason": NUL}, "reason"),
        ("/engine/tasks/new/", {"title": NUL, "kind": "noop"}, "title"),
        ("/engine/tasks/new/", {"title": "x", "kind": "noop", "payload": '{"k": "\\u0000"}'}, None),
        ("/settings/tokens/", {"name": NUL, "scopes": ["read"]}, "name"),
    ],
)
def test_it_shows_a_form_error_for_nul_characters_on_html_pages(alice_client, path, form, field):
    tokens = ApiToken.objects.count()
    back = "/settings/" if path.startswith("/settings") else "/engine/"
    response = alice_client.post(path, form, HTTP_REFERER=f"http://testserver{back}", follow=True)
    assert response.status_code == 200
    page = response.content.decode()
    assert "NUL character" in page and "Traceback" not in page
    if field:
        assert f"the field “{field}” contains a NUL character" in page
    assert nothing_changed(tokens)


@pytest.mark.django_db
@pytest.mark.parametrize("number", NON_FINITE)
def test_it_shows_a_form_error_for_non_finite_numbers_in_a_task_payload(alice_client, number):
    form = {"title": "x", "kind": "noop", "payload": f'{{"n": {number}}}'}
    page = alice_client.post("/engine/tasks/new/", form, follow=True).content.decode()
    assert "Refused: Payload:" in page and "numbers must be finite" in page
    assert Task.objects.count() == 0


@pytest.mark.django_db
def test_it_answers_nul_in_an_html_query_with_the_page_and_a_form_error(alice_client):
    response = alice_client.get("/engine/tasks/?q=a%00b&kind=%00")
    assert response.status_code == 200
    assert "Null characters are not allowed" in response.content.decode()


@pytest.mark.django_db
def test_it_answers_an_oversized_html_form_with_a_413_page(alice_client):
    response = alice_client.post("/engine/pause/", {"reason": "x" * 3_000_000})
    assert response.status_code == 413
    assert "larger than 2,621,440 bytes" in response.content.decode()
    assert not EngineState.load().paused


@pytest.mark.django_db
def test_it_keeps_nul_in_the_sign_in_form_from_becoming_a_500(client, alice):
    response = client.post("/login/", {"username": NUL, "password": "x"}, follow=True)
    assert response.status_code == 200
    assert "_auth_user_id" not in client.session
