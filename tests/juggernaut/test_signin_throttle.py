"""Sign-in is throttled per user name and address together, and per user name from everywhere past a
higher limit, on /login/ and /admin/login/ alike. One bad actor behind a shared proxy locks out neither
the others behind it nor the name's owner signing in from elsewhere; guessing spread over many
addresses still ends in a lockout of the name."""

import pytest
from django.test import Client

from tests.conftest import PASSWORD


def attempt(client: Client, path: str, username: str, password: str, addr: str = "10.0.0.1"):
    return client.post(path, {"username": username, "password": password}, REMOTE_ADDR=addr)


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/login/", "/admin/login/"])
def test_it_locks_a_user_name_out_from_the_address_that_guessed(alice, path, settings):
    client = Client()
    for i in range(settings.AXES_FAILURE_LIMIT - 1):
        assert attempt(client, path, "alice", f"wrong {i}").status_code == 200
    locked = attempt(client, path, "alice", "wrong again")
    assert locked.status_code == 429
    page = locked.content.decode()
    assert "Too many failed sign-ins for “alice”" in page and "locked for 15 minutes" in page
    # Even the right password, from the guessing address, is refused while the lock lasts.
    right = attempt(Client(), path, "alice", PASSWORD)
    assert right.status_code == 429
    # alice herself, from her own address, still gets in: five guesses cannot lock her out.
    elsewhere = attempt(Client(), path, "alice", PASSWORD, addr="10.0.0.99")
    assert elsewhere.status_code == 302


@pytest.mark.django_db
def test_it_does_not_lock_out_everyone_behind_a_guessing_address(alice, settings):
    proxy = "10.0.0.7"  # a bad actor and alice sign in through the same office proxy
    client = Client()
    for name in ["guess0", "guess1", "root"]:
        for i in range(settings.AXES_FAILURE_LIMIT):
            attempt(client, "/login/", name, f"x{i}", addr=proxy)
    assert attempt(Client(), "/login/", "guess0", "x", addr=proxy).status_code == 429
    # alice's name was never guessed: she signs in through the same address.
    response = attempt(Client(), "/login/", "alice", PASSWORD, addr=proxy)
    assert response.status_code == 302 and response["Location"] == "/"


@pytest.mark.django_db
def test_it_locks_a_name_out_everywhere_after_guessing_from_many_addresses(alice, settings):
    settings.HQ_LOGIN_NAME_FAILURE_LIMIT = 12
    per_address = settings.AXES_FAILURE_LIMIT - 1  # each address stays under its own limit
    addresses = [f"10.1.0.{i}" for i in range(3)]
    statuses = [
        attempt(Client(), "/login/", "alice", f"wrong {i}", addr=addr).status_code
        for addr in addresses
        for i in range(per_address)
    ]
    assert statuses == [200] * 11 + [429]  # the 12th failure in all locks the name
    # Now from an address that never failed, the right password or not.
    assert attempt(Client(), "/login/", "alice", PASSWORD, addr="10.9.9.9").status_code == 429
    # Other names are untouched.
    carol = type(alice).objects.create_user("carol", "carol@example.com", PASSWORD, is_staff=True)
    assert attempt(Client(), "/login/", carol.username, PASSWORD, addr="10.1.0.0").status_code == 302


@pytest.mark.django_db
def test_it_forgets_the_failures_after_a_successful_sign_in(alice, settings):
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        attempt(client, "/login/", "alice", "wrong")
    assert attempt(client, "/login/", "alice", PASSWORD).status_code == 302
    client.post("/logout/")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert attempt(client, "/login/", "alice", "wrong").status_code == 200
