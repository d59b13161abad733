import pytest

from tests.fakes.railway import FakeRailway


@pytest.fixture
def fake():
    """A fake Railway API on a loopback port, with its base URL as ``fake.url``."""
    railway = FakeRailway()
    with railway.serve() as server:
        railway.url = server.url
        yield railway
