"""Contract validation against the OpenAPI document a running instance serves (a repository's
``schema_url``): fetched at each scan, and a schema that cannot be had is "not run", never clean."""

import json
import shutil
import time
from pathlib import Path

import pytest

from codehealth import services, sources
from codehealth.errors import CodehealthError
from codehealth.models import CodeFinding, ContractViolation
from juggernaut.api import api
from tests.fakes.server import FakeServer, QuietHandler

pytestmark = pytest.mark.django_db

FRONTEND = Path(__file__).parent / "fixtures" / "frontend"


class Instance:
    """A running backend: ``GET /api/openapi.json`` answers ``body`` with ``status``."""

    def __init__(self, body: bytes, status: int = 200) -> None:
        self.body, self.status, self.paths = body, status, []

    def __enter__(self) -> "Instance":
        instance = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                instance.paths.append(self.path)
                self.send_response(instance.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(instance.body)))
                self.end_headers()
                self.wfile.write(instance.body)

        self.server = FakeServer(Handler).__enter__()
        self.url = self.server.url
        return self

    def __exit__(self, *exc) -> None:
        self.server.__exit__(*exc)


@pytest.fixture
def frontend_only(tmp_path) -> Path:
    """A checkout holding only a Next.js frontend: no schema exported anywhere in it."""
    root = tmp_path / "web"
    shutil.copytree(FRONTEND, root)
    (root / "package.json").write_text('{"name": "web", "dependencies": {}}')
    return root


def _scan(local_repository, alice, root: Path, url: str):
    repository = local_repository(alice, root, name="web", schema_url=url)
    return services.repository_scan(repository)


def test_the_running_instances_schema_is_validated_against_the_frontend(
    alice, frontend_only, local_repository
):
    with Instance(json.dumps(api.get_openapi_schema()).encode()) as instance:
        scan = _scan(local_repository, alice, frontend_only, f"{instance.url}/api/openapi.json")
    assert instance.paths == ["/api/openapi.json"]
    names = set(CodeFinding.objects.filter(kind="contract").values_list("category", "name"))
    assert ("missing_endpoint", "DELETE /api/engine/tasks/{}") in names
    assert ("missing_response_field", "Token.lastUsed") in names
    assert not any(category == "not_run" for category, _ in names)
    # drift (a type missing an optional field) is a finding with a fix, not a violation
    assert ContractViolation.objects.filter(repository=scan.repository).count() == len(names) - 1
    assert ("type_missing_optional_field", "Task.result") in names


@pytest.mark.parametrize(
    ("body", "status", "why"),
    [
        (b'{"detail": "boom"}', 500, "answered HTTP 500"),
        (b"<html>login</html>", 200, "is not JSON"),
        (b'{"openapi": "3.1.0"}', 200, "is not an OpenAPI document"),
    ],
)
def test_a_schema_that_cannot_be_had_is_not_run_never_clean(
    alice, frontend_only, body, status, why, local_repository
):
    with Instance(body, status) as instance:
        scan = _scan(
            local_repository, alice, frontend_only, f"{instance.url}/api/openapi.json?key=s3cret-key"
        )
    contract = list(CodeFinding.objects.filter(kind="contract"))
    assert [(f.category, f.name) for f in contract] == [("not_run", "openapi")]
    assert why in contract[0].reason and "s3cret-key" not in contract[0].reason
    assert scan.status == "done"  # the rest of the scan ran


def test_an_oversized_schema_is_refused(alice, frontend_only, monkeypatch, local_repository):
    monkeypatch.setattr(sources, "SCHEMA_MAX_BYTES", 1000)
    with Instance(json.dumps(api.get_openapi_schema()).encode()) as instance:
        _scan(local_repository, alice, frontend_only, f"{instance.url}/api/openapi.json")
    assert "larger than" in CodeFinding.objects.get(kind="contract").reason


def test_a_dead_instance_is_not_run(alice, frontend_only, local_repository):
    _scan(local_repository, alice, frontend_only, "http://127.0.0.1:9/api/openapi.json")
    assert "could not be fetched" in CodeFinding.objects.get(kind="contract").reason


@pytest.mark.parametrize(
    "url",
    ["ftp://host/schema.json", "javascript:alert(1)", "http://", "http://a\x00b/", "http://" + "a" * 500],
)
def test_a_schema_url_must_be_http(alice, frontend_only, url, local_repository):
    with pytest.raises(CodehealthError) as refused:
        local_repository(alice, frontend_only, schema_url=url)
    assert refused.value.status == 422


@pytest.mark.parametrize(
    ("host", "why"),
    [
        ("169.254.169.254", "is a cloud metadata address"),
        ("[::ffff:169.254.169.254]", "a form of 169.254.169.254, a cloud metadata address"),
        ("[fd00:ec2::254]", "is a cloud metadata address"),
        ("100.100.100.200", "is a cloud metadata address"),
        ("[64:ff9b::a9fe:a9fe]", "a form of 169.254.169.254, a cloud metadata address"),
        ("[fe80::1]", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
    ],
)
def test_a_host_inside_the_network_is_never_fetched(alice, frontend_only, host, why, local_repository):
    _scan(local_repository, alice, frontend_only, f"http://{host}/latest/meta-data/")
    reason = CodeFinding.objects.get(kind="contract").reason
    assert "was not fetched" in reason and why in reason


def test_a_loopback_instance_is_fetched_only_when_private_addresses_are_allowed(
    alice, frontend_only, settings, local_repository
):
    settings.HQ_OUTBOUND_ALLOW_PRIVATE = False
    with Instance(json.dumps(api.get_openapi_schema()).encode()) as instance:
        _scan(local_repository, alice, frontend_only, f"{instance.url}/api/openapi.json")
    assert instance.paths == []
    assert "a loopback or private address" in CodeFinding.objects.get(kind="contract").reason


def test_a_trickling_instance_ends_the_fetch_at_the_deadline(
    alice, frontend_only, settings, local_repository
):
    settings.HQ_OUTBOUND_DEADLINE_SECONDS = 0.5
    sent: list[int] = []

    class Trickle(QuietHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            try:
                while True:
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    sent.append(1)
                    time.sleep(0.05)
            except OSError:
                return

    with FakeServer(Trickle) as server:
        scan = _scan(local_repository, alice, frontend_only, f"{server.url}/api/openapi.json")
    assert "did not answer within 0.5 s" in CodeFinding.objects.get(kind="contract").reason
    assert 0 < len(sent) < 100  # about 10 bytes in half a second; the whole body would be 100,000
    assert scan.status == "done"


def test_a_redirect_is_not_followed(alice, frontend_only, local_repository):
    class Redirecting(QuietHandler):
        def do_GET(self) -> None:
            self.send_response(302)
            self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
            self.send_header("Content-Length", "0")
            self.end_headers()

    with FakeServer(Redirecting) as server:
        _scan(local_repository, alice, frontend_only, f"{server.url}/api/openapi.json")
    assert "redirects; give the URL it redirects to" in CodeFinding.objects.get(kind="contract").reason


def test_a_rebinding_schema_host_never_leads_to_an_unchecked_address(
    alice, frontend_only, settings, monkeypatch, local_repository
):
    """A DNS server answering a public address first and 127.0.0.1 after: each connection goes to the
    address its own lookup was checked for, so the retry's lookup is refused, never connected."""
    import socket

    settings.HQ_OUTBOUND_ALLOW_PRIVATE = False
    asked, connected = [], []
    real_getaddrinfo, real_connect = socket.getaddrinfo, socket.socket.connect

    def getaddrinfo(host, port, *args, **kwargs):
        if host != "schema.rebind.example":
            return real_getaddrinfo(host, port, *args, **kwargs)
        asked.append(host)
        address = "93.184.216.34" if len(asked) == 1 else "127.0.0.1"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    def connect(sock, address):
        if isinstance(address, tuple) and address[1] == 80:  # the schema host's connections, nothing else
            connected.append(address[0])
            raise ConnectionRefusedError("test: not on the internet")
        return real_connect(sock, address)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)
    _scan(local_repository, alice, frontend_only, "http://schema.rebind.example/api/openapi.json")
    assert len(asked) == 2  # the first connection and its one retry, each looked up once
    assert connected == ["93.184.216.34"]  # never 127.0.0.1
    reason = CodeFinding.objects.get(kind="contract").reason
    assert "schema.rebind.example resolves to 127.0.0.1, a loopback or private address" in reason
