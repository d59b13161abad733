"""Who may see what: pages need a signed-in operator, the API a session or a scoped token."""

import json

import pytest
from django.test import Client

HQ_PAGES = [
    "/",
    "/settings/",
    "/areas/chat/",
    "/areas/selfheal/",
    "/areas/logs/",
    "/areas/codehealth/",
    "/areas/routing/",
]
API_DOCS = ["/api/docs", "/api/openapi.json"]


@pytest.mark.django_db
@pytest.mark.parametrize("path", HQ_PAGES)
def test_it_redirects_anonymous_users_to_sign_in(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=")


@pytest.mark.django_db
@pytest.mark.parametrize("path", HQ_PAGES)
def test_it_shows_signed_in_non_operators_a_403_page_not_a_sign_in_loop(bob, path):
    client = Client()
    client.force_login(bob)
    response = client.get(path, follow=True)
    assert response.status_code == 403 and not response.redirect_chain
    page = response.content.decode()
    assert "This account is not an operator" in page and "signed in as <strong>bob</strong>" in page
    assert 'action="/logout/"' in page and "ws-connect" not in page
    # The sign-in page sends a signed-in user on, and that now ends at the same 403, not back here.
    again = client.get("/login/?next=/", follow=True)
    assert again.status_code == 403 and len(again.redirect_chain) == 1


@pytest.mark.django_db
@pytest.mark.parametrize("path", HQ_PAGES)
def test_it_shows_every_page_to_operators(alice_client, path):
    assert alice_client.get(path).status_code == 200


@pytest.mark.django_db
def test_it_answers_401_in_the_error_shape_to_anonymous_api_calls(client):
    for method, path in [("get", "/api/events/hq"), ("get", "/api/tokens"), ("post", "/api/tokens")]:
        response = getattr(client, method)(path, content_type="application/json")
        assert response.status_code == 401, path
        assert response.json() == {
            "error": {
                "code": "unauthorized",
                "message": "sign in, or send a valid bearer token",
                "details": None,
            }
        }


@pytest.mark.django_db
def test_it_signs_in_through_the_login_form(alice):
    client = Client()
    response = client.post("/login/", {"username": "alice", "password": "correct horse battery staple"})
    assert response.status_code == 302 and response["Location"] == "/"
    assert "Overview" in client.get("/").content.decode()


@pytest.mark.django_db
def test_it_rejects_a_wrong_password_without_signing_in(alice):
    client = Client()
    response = client.post("/login/", {"username": "alice", "password": "nope"})
    assert response.status_code == 200
    assert "Wrong username or password" in response.content.decode()
    assert client.get("/").status_code == 302


@pytest.mark.django_db
def test_it_signs_out_with_a_post(alice_client):
    assert alice_client.post("/logout/").status_code == 302
    assert alice_client.get("/").status_code == 302


@pytest.mark.django_db
def test_it_requires_csrf_on_unsafe_session_api_calls(alice):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    body = {"name": "ci", "scopes": ["read"]}
    refused = client.post("/api/tokens", body, content_type="application/json")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "csrf_failed"
    client.get("/settings/")  # sets the CSRF cookie, as the browser would
    token = client.cookies["csrftoken"].value
    accepted = client.post("/api/tokens", body, content_type="application/json", HTTP_X_CSRFTOKEN=token)
    assert accepted.status_code == 201


@pytest.mark.django_db
@pytest.mark.parametrize("path", API_DOCS)
def test_it_serves_the_api_schema_and_docs_to_a_read_token_or_an_operator(alice_client, client, bearer, path):
    assert alice_client.get(path).status_code == 200
    assert client.get(path, **bearer("read")).status_code == 200
    refused = client.get(path, **bearer("worker"))
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"


@pytest.mark.django_db
@pytest.mark.parametrize("path", API_DOCS)
def test_it_answers_anonymous_schema_and_docs_requests_with_a_401_in_the_error_shape(client, bob, path):
    for caller in [client, Client(HTTP_AUTHORIZATION="Bearer jhq_not-a-real-token")]:
        response = caller.get(path)
        assert response.status_code == 401 and response["Content-Type"] == "application/json"
        assert response.json()["error"]["code"] == "unauthorized"
    bob_client = Client()
    bob_client.force_login(bob)
    assert bob_client.get(path).status_code == 401


@pytest.mark.django_db
def test_it_declares_error_answers_and_constraints_in_the_schema(alice_client):
    raw = alice_client.get("/api/openapi.json").content.decode()
    schema = json.loads(raw, object_pairs_hook=no_duplicate_keys)  # strict parsers reject duplicates
    for path, operations in schema["paths"].items():
        for method, op in operations.items():
            codes = set(op["responses"])
            assert {"422", "503"} <= codes, (method, path)
            if op.get("security"):
                assert {"401", "403"} <= codes, (method, path)
            assert op["responses"]["422"]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/ErrorOut"
            }
    replay = schema["paths"]["/api/events/{topic}"]["get"]["parameters"]
    by_name = {p["name"]: p["schema"] for p in replay}
    assert by_name["topic"]["pattern"].startswith("^[a-z]")
    assert (by_name["limit"]["minimum"], by_name["limit"]["maximum"]) == (1, 1000)
    tasks = {p["name"]: p["schema"] for p in schema["paths"]["/api/engine/tasks"]["get"]["parameters"]}
    assert tasks["offset"]["maximum"] == 2**63 - 1 and tasks["limit"]["maximum"] == 500
    task_in = schema["components"]["schemas"]["TaskIn"]["properties"]
    assert "pattern" in task_in["kind"]


def no_duplicate_keys(pairs):
    keys = [k for k, _ in pairs]
    assert len(keys) == len(set(keys)), keys
    return dict(pairs)
