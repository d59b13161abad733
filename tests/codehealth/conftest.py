from pathlib import Path

import pytest

from codehealth import services
from codehealth.clients import GitHubClient
from codehealth.models import Repository
from tests.conftest import PASSWORD
from tests.fakes.github import TOKEN, FakeGitHub


@pytest.fixture
def github():
    """A fake GitHub API on a loopback port (``github.url``), holding ``acme/shop``."""
    fake = FakeGitHub()
    with fake.serve():
        yield fake


@pytest.fixture
def gh(github, settings):
    """A client of the fake whose pauses are recorded in ``client.waits`` instead of slept."""
    settings.GITHUB_API_URL = github.url
    settings.GITHUB_TOKEN = TOKEN
    gh = GitHubClient(max_retries=3, max_wait=120)
    gh.waits = []
    gh.sleep = gh.waits.append
    return gh


@pytest.fixture
def admin(django_user_model):
    """An admin (superuser): the one who may register local paths."""
    return django_user_model.objects.create_user(
        "root", "root@example.com", PASSWORD, is_staff=True, is_superuser=True
    )


@pytest.fixture
def local_repository(admin, settings):
    """``local_repository(owner, path, **fields)``: a local checkout registered the way it must be, by
    an admin under ``CODEHEALTH_LOCAL_ROOTS``, then handed to ``owner`` (the admin's repository page
    sets the owner) so owner scoping applies as to any repository."""

    def register(owner, path, **fields) -> Repository:
        settings.CODEHEALTH_LOCAL_ROOTS = [*settings.CODEHEALTH_LOCAL_ROOTS, str(Path(path).resolve().parent)]
        repository = services.repository_create(admin, local_path=str(path), **fields)
        Repository.objects.filter(pk=repository.pk).update(owner=owner)
        repository.refresh_from_db()
        return repository

    return register
