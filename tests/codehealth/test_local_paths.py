"""Local repositories are an admin's decision: under CODEHEALTH_LOCAL_ROOTS only, registered once, never
the HQ's own files; and registering a repository tells nobody which names other operators use."""

import json

import pytest
from django.conf import settings as django_settings

from codehealth import services
from codehealth.models import Repository

pytestmark = pytest.mark.django_db
URL = "/api/codehealth/repositories"


def register(client, headers: dict, body: dict):
    return client.post(URL, json.dumps(body), content_type="application/json", **headers)


@pytest.fixture
def as_admin(make_token, admin):
    return {"HTTP_AUTHORIZATION": f"Bearer {make_token('read', 'write', user=admin)}"}


@pytest.fixture
def as_alice(bearer):
    return bearer("read", "write")


@pytest.fixture
def checkouts(tmp_path, settings):
    """A directory allowed by CODEHEALTH_LOCAL_ROOTS, holding one checkout."""
    (tmp_path / "allowed" / "shop").mkdir(parents=True)
    settings.CODEHEALTH_LOCAL_ROOTS = [str(tmp_path / "allowed")]
    return tmp_path / "allowed"


def test_it_allows_no_local_path_by_default(client, as_admin, tmp_path, settings):
    settings.CODEHEALTH_LOCAL_ROOTS = []
    response = register(client, as_admin, {"local_path": str(tmp_path), "name": "x"})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "local_path_refused"
    assert "none is set" in response.json()["error"]["message"]


def test_an_operator_who_is_not_an_admin_registers_no_local_path(client, as_alice, checkouts):
    response = register(client, as_alice, {"local_path": str(checkouts / "shop"), "name": "shop"})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "admin_only"
    assert not Repository.objects.exists()


def test_an_admin_registers_a_path_under_the_roots_once(
    client, as_admin, as_alice, checkouts, django_user_model, make_token
):
    created = register(client, as_admin, {"local_path": str(checkouts / "shop"), "name": "shop"})
    assert created.status_code == 201, created.content
    other_admin = django_user_model.objects.create_user(
        "eve", "eve@example.com", "pw", is_staff=True, is_superuser=True
    )
    as_eve = {"HTTP_AUTHORIZATION": f"Bearer {make_token('write', user=other_admin)}"}
    # the same directory, by another admin, under another name, or through a spelling with "..": refused
    for path in (str(checkouts / "shop"), str(checkouts / "shop" / ".." / "shop")):
        again = register(client, as_eve, {"local_path": path, "name": "mine"})
        assert again.status_code == 409
        assert again.json()["error"]["code"] == "path_registered"
        assert "root" not in again.content.decode()  # the first owner is not named
    assert Repository.objects.count() == 1


def test_a_path_outside_the_roots_is_refused_even_through_a_symlink(client, as_admin, checkouts, tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (checkouts / "door").symlink_to(tmp_path / "elsewhere")
    for path in ("/etc", str(tmp_path / "elsewhere"), str(checkouts / "door"), "relative/path"):
        response = register(client, as_admin, {"local_path": path})
        assert response.status_code == 422, path
    assert not Repository.objects.exists()


def test_the_hqs_own_directory_and_data_are_always_refused(client, as_admin, settings, tmp_path):
    settings.CODEHEALTH_LOCAL_ROOTS = ["/"]
    (tmp_path / "hq").symlink_to(django_settings.BASE_DIR)
    for path in (
        str(django_settings.BASE_DIR),
        str(django_settings.BASE_DIR / "codehealth"),
        str(settings.VAR_DIR),
        str(tmp_path / "hq"),
        "/",  # holds the HQ
    ):
        response = register(client, as_admin, {"local_path": path, "name": path})
        assert response.status_code == 422, path
        assert response.json()["error"]["code"] == "local_path_refused"


def test_a_name_another_operator_uses_is_no_oracle(client, as_alice, make_token, django_user_model):
    dave = django_user_model.objects.create_user("dave", "dave@example.com", "pw", is_staff=True)
    as_dave = {"HTTP_AUTHORIZATION": f"Bearer {make_token('read', 'write', user=dave)}"}
    assert register(client, as_dave, {"github": "acme/secret-project"}).status_code == 201
    # alice learns nothing: the same name is hers to use
    assert register(client, as_alice, {"github": "acme/secret-project"}).status_code == 201
    mine_again = register(client, as_alice, {"github": "acme/secret-project"})
    assert mine_again.status_code == 409 and "you have" in mine_again.json()["error"]["message"]
    listing = client.get(URL, **as_alice).json()
    assert [r["name"] for r in listing] == ["acme/secret-project"] and len(listing) == 1


def test_the_admin_pages_apply_the_same_rules(client, admin, alice, checkouts, tmp_path):
    page = "/admin/codehealth/repository/add/"
    form = {
        "name": "etc",
        "local_path": "/etc",
        "default_branch": "main",
        "scan_every_days": "7",
        "owner": str(alice.pk),
    }
    client.force_login(admin)
    refused = client.post(page, form)
    assert refused.status_code == 200 and "CODEHEALTH_LOCAL_ROOTS" in refused.content.decode()
    assert client.post(page, form | {"local_path": str(checkouts / "shop")}).status_code == 302
    again = client.post(page, form | {"name": "again", "local_path": str(checkouts / "shop")})
    assert "registered already" in again.content.decode()
    assert list(Repository.objects.values_list("local_path", flat=True)) == [
        str((checkouts / "shop").resolve())
    ]


def test_a_path_no_longer_under_the_roots_is_not_scanned(alice, checkouts, local_repository, settings):
    repository = local_repository(alice, checkouts / "shop", name="shop")
    settings.CODEHEALTH_LOCAL_ROOTS = []  # the admin withdrew the root after registration
    scan = services.repository_scan(repository, analyse=lambda path: [])
    assert scan.status == "failed" and "CODEHEALTH_LOCAL_ROOTS" in scan.error


def test_the_admins_add_form_defaults_the_owner_to_the_signed_in_admin(client, admin, alice):
    client.force_login(admin)
    page = client.get("/admin/codehealth/repository/add/").content.decode()
    assert f'<option value="{admin.pk}" selected>' in page
    assert f'<option value="{alice.pk}" selected>' not in page
