import pytest

from codehealth.clients import GitHubClient
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
