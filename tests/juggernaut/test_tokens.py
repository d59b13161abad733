"""API tokens: shown once, stored as a hash, scoped, revocable, expiring."""

from datetime import timedelta

import pytest
from django.utils import timezone

from juggernaut.models import ApiToken, hash_token


@pytest.mark.django_db
def test_it_stores_only_the_hash(alice_client):
    response = alice_client.post(
        "/api/tokens", {"name": "frontend", "scopes": ["read"]}, content_type="application/json"
    )
    assert response.status_code == 201
    raw = response.json()["token"]
    token = ApiToken.objects.get()
    assert raw.startswith("jhq_") and len(raw) > 40
    assert token.key_hash == hash_token(raw)
    for field in ApiToken._meta.concrete_fields:
        assert raw not in str(getattr(token, field.attname))
    listed = alice_client.get("/api/tokens").json()
    assert "token" not in listed[0] and listed[0]["prefix"] == token.prefix


@pytest.mark.django_db
def test_it_accepts_a_valid_bearer_token_and_records_its_use(client, make_token):
    raw = make_token("read")
    response = client.get("/api/events/hq", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert response.status_code == 200
    assert ApiToken.objects.get().last_used_at is not None


@pytest.mark.django_db
def test_it_refuses_a_revoked_token(client, make_token):
    raw = make_token("read")
    ApiToken.objects.update(revoked_at=timezone.now())
    response = client.get("/api/events/hq", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert response.status_code == 401


@pytest.mark.django_db
def test_it_refuses_an_expired_token(client, make_token):
    raw = make_token("read")
    ApiToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert client.get("/api/events/hq", HTTP_AUTHORIZATION=f"Bearer {raw}").status_code == 401


@pytest.mark.django_db
def test_it_refuses_garbage_tokens(client):
    for value in ["Bearer ", "Bearer jhq_nope", "Bearer " + "x" * 5000, "Basic dXNlcjpwYXNz"]:
        assert client.get("/api/events/hq", HTTP_AUTHORIZATION=value).status_code == 401


@pytest.mark.django_db
def test_it_refuses_tokens_of_a_deactivated_user(client, alice, make_token):
    raw = make_token("admin")
    alice.is_active = False
    alice.save()
    assert client.get("/api/events/hq", HTTP_AUTHORIZATION=f"Bearer {raw}").status_code == 401


@pytest.mark.django_db
def test_it_enforces_scopes(client, make_token):
    read_only = {"HTTP_AUTHORIZATION": f"Bearer {make_token('read')}"}
    response = client.post(
        "/api/tokens", {"name": "x", "scopes": ["read"]}, content_type="application/json", **read_only
    )
    assert response.status_code == 403
    assert response.json()["error"] == {
        "code": "forbidden",
        "message": "this token lacks the 'admin' scope",
        "details": None,
    }
    worker_only = {"HTTP_AUTHORIZATION": f"Bearer {make_token('worker')}"}
    assert client.get("/api/events/hq", **worker_only).status_code == 403
    admin = {"HTTP_AUTHORIZATION": f"Bearer {make_token('admin')}"}
    assert client.get("/api/events/hq", **admin).status_code == 200  # admin implies every scope


@pytest.mark.django_db
def test_it_rejects_unknown_scopes_with_422(alice_client):
    response = alice_client.post(
        "/api/tokens", {"name": "x", "scopes": ["root"]}, content_type="application/json"
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "bad_scopes"
    assert ApiToken.objects.count() == 0


@pytest.mark.django_db
def test_it_revokes_through_the_api(alice_client, client):
    raw = alice_client.post(
        "/api/tokens", {"name": "x", "scopes": ["read"]}, content_type="application/json"
    ).json()
    response = alice_client.delete(f"/api/tokens/{raw['id']}")
    assert response.status_code == 200 and response.json()["status"] == "revoked"
    assert client.get("/api/events/hq", HTTP_AUTHORIZATION=f"Bearer {raw['token']}").status_code == 401
    assert alice_client.delete("/api/tokens/999999").status_code == 404


@pytest.mark.django_db
def test_it_answers_each_token_operation_with_the_token_as_stored(alice_client, client):
    made = alice_client.post(
        "/api/tokens",
        {"name": "bot", "scopes": ["read", "write"], "days": 3},
        content_type="application/json",
    )
    body = made.json()
    token = ApiToken.objects.get(pk=body["id"])

    def stored() -> dict:  # times in full ISO 8601, as this API has always written them
        token.refresh_from_db()
        times = {
            f: getattr(token, f).isoformat() if getattr(token, f) else None
            for f in ("created_at", "last_used_at", "expires_at")
        }
        fields = {"id": token.pk, "name": "bot", "prefix": token.prefix, "scopes": ["read", "write"]}
        return {**fields, "status": token.status, **times}

    assert made.status_code == 201 and list(body) == [*stored(), "token"]
    assert body == {**stored(), "token": body["token"]} and body["created_at"].endswith("+00:00")
    assert token.key_hash == hash_token(body["token"])
    client.get("/api/events/hq", HTTP_AUTHORIZATION=f"Bearer {body['token']}")  # records its use
    assert alice_client.get("/api/tokens").json() == [stored()] and stored()["last_used_at"]
    revoked = alice_client.delete(f"/api/tokens/{token.pk}").json()
    assert revoked == stored() and revoked["status"] == "revoked"


@pytest.mark.django_db
def test_it_shows_a_new_token_once_on_the_settings_page(alice_client):
    response = alice_client.post(
        "/settings/tokens/", {"name": "worker-1", "scopes": ["worker"], "days": "7"}, follow=True
    )
    page = response.content.decode()
    token = ApiToken.objects.get()
    assert token.scopes == ["worker"]
    assert token.expires_at - timezone.now() > timedelta(days=6)
    shown = page.split('<code class="token">')[1].split("</code>")[0]
    assert hash_token(shown) == token.key_hash
    assert shown not in alice_client.get("/settings/").content.decode()  # once only


@pytest.mark.django_db
def test_it_revokes_from_the_settings_page(alice_client, make_token):
    make_token("read")
    token = ApiToken.objects.get()
    alice_client.post(f"/settings/tokens/{token.pk}/revoke/")
    token.refresh_from_db()
    assert token.status == "revoked"


@pytest.mark.django_db
def test_it_shows_a_token_once_when_created_in_the_admin(alice, alice_client):
    alice.is_superuser = True
    alice.save()
    response = alice_client.post(
        "/admin/juggernaut/apitoken/add/",
        {"name": "ops", "user": alice.pk, "scopes": ["read", "write"], "days": "30"},
        follow=True,
    )
    assert response.status_code == 200
    token = ApiToken.objects.get()
    page = response.content.decode()
    raw = page.split("it will not be shown again: ")[1].split("<")[0].strip()
    assert hash_token(raw) == token.key_hash
    assert token.scopes == ["read", "write"]
