"""Sign-in is throttled per user name and per address, on /login/ and /admin/login/ alike."""

import pytest
from django.test import Client

from tests.conftest import PASSWORD


def attempt(client: Client, path: str, username: str, password: str, addr: str = "10.0.0.1"):
    return client.post(path, {"username": username, "password": password}, REMOTE_ADDR=addr)


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/login/", "/admin/login/"])
def test_it_locks_a_user_name_out_after_repeated_wrong_passwords(alice, path, settings):
    client = Client()
    for i in range(settings.AXES_FAILURE_LIMIT - 1):
        assert attempt(client, path, "alice", f"wrong {i}").status_code == 200
    locked = attempt(client, path, "alice", "wrong again")
    assert locked.status_code == 429
    page = locked.content.decode()
    assert "Too many failed sign-ins for “alice”" in page and "locked for 15 minutes" in page
    # Even the right password, from another address, is refused while the lock lasts.
    right = attempt(Client(), path, "alice", PASSWORD, addr="10.0.0.99")
    assert right.status_code == 429
    assert "_auth_user_id" not in Client().session


@pytest.mark.django_db
def test_it_locks_an_address_out_whatever_names_it_tries(alice, settings):
    client = Client()
    for i in range(settings.AXES_FAILURE_LIMIT):
        attempt(client, "/login/", f"guess{i}", "x", addr="10.0.0.7")
    assert attempt(client, "/login/", "alice", PASSWORD, addr="10.0.0.7").status_code == 429
    # alice herself, from her own address, still gets in.
    other = Client()
    response = attempt(other, "/login/", "alice", PASSWORD, addr="10.0.0.8")
    assert response.status_code == 302 and response["Location"] == "/"


@pytest.mark.django_db
def test_it_forgets_the_failures_after_a_successful_sign_in(alice, settings):
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        attempt(client, "/login/", "alice", "wrong")
    assert attempt(client, "/login/", "alice", PASSWORD).status_code == 302
    client.post("/logout/")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert attempt(client, "/login/", "alice", "wrong").status_code == 200
