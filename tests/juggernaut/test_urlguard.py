"""The outbound guard, attacked the way a hostile repository or operator would: addresses in every
form that leads inside, a resolver that changes its answer, a server that trickles, redirects inward."""

import socket
import threading
import time

import pytest
import requests

from juggernaut.urlguard import OutboundRefused, guarded_session
from tests.fakes.server import FakeServer, QuietHandler

INSIDE = [
    "169.254.169.254",  # the metadata service
    "[::ffff:169.254.169.254]",  # the same, IPv4-mapped
    "[::ffff:a9fe:a9fe]",  # mapped, written in hex
    "[64:ff9b::a9fe:a9fe]",  # the same through NAT64
    "[2002:a9fe:a9fe::1]",  # the same through 6to4
    "[fd00:ec2::254]",  # AWS's IPv6 metadata address
    "100.100.100.200",  # Alibaba's metadata address
    "168.63.129.16",  # Azure's wire server
    "100.64.0.1",  # carrier-grade NAT
    "[fc00::1]",  # unique local
    "[fe80::1]",  # link-local
    "224.0.0.1",  # multicast
    "[ff02::1]",
    "0.0.0.0",  # unspecified
    "[::]",
    "127.0.0.1",  # loopback and private: refused while the setting is off
    "[::1]",
    "[::ffff:127.0.0.1]",
    "10.0.0.5",
    "192.168.1.1",
    "2852039166",  # 169.254.169.254 as one decimal number
    "192.0.2.1",  # documentation range: not global
]


@pytest.fixture
def no_private(settings):
    settings.HQ_OUTBOUND_ALLOW_PRIVATE = False


@pytest.fixture
def connects(monkeypatch) -> list:
    """Every address a socket tries to connect to (and no connection made)."""
    seen: list = []

    def connect(sock, address):
        seen.append(address[0])
        raise ConnectionRefusedError("test: no connection made")

    monkeypatch.setattr(socket.socket, "connect", connect)
    return seen


@pytest.mark.parametrize("scheme", ["http", "https"])
@pytest.mark.parametrize("host", INSIDE)
def test_it_refuses_every_address_that_leads_inside(no_private, connects, host, scheme):
    with pytest.raises(OutboundRefused) as refused:
        guarded_session(max_retries=0).get(f"{scheme}://{host}/latest/meta-data/")
    assert " address" in str(refused.value)
    assert connects == []


@pytest.mark.parametrize("host", ["169.254.169.254", "[fd00:ec2::254]", "[::ffff:169.254.169.254]"])
def test_it_refuses_metadata_even_when_private_addresses_are_allowed(settings, connects, host):
    settings.HQ_OUTBOUND_ALLOW_PRIVATE = True
    with pytest.raises(OutboundRefused, match="metadata"):
        guarded_session(max_retries=0).get(f"http://{host}/")
    assert connects == []


def test_it_connects_to_a_public_address(no_private, connects):
    with pytest.raises(requests.ConnectionError):
        guarded_session(max_retries=0).get("http://8.8.8.8/")
    assert connects == ["8.8.8.8"]


def _resolver(monkeypatch, *answers: str) -> list:
    """``getaddrinfo`` answering each call with the next address (a rebinding DNS server)."""
    calls: list = []

    def getaddrinfo(host, port, *args, **kwargs):
        address = answers[min(len(calls), len(answers) - 1)]
        calls.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return calls


def test_it_resolves_once_and_connects_to_the_address_it_checked(no_private, connects, monkeypatch):
    calls = _resolver(monkeypatch, "93.184.216.34", "127.0.0.1")
    with pytest.raises(requests.ConnectionError):
        guarded_session(max_retries=0).get("http://rebind.example/")
    assert calls == ["rebind.example"]
    assert connects == ["93.184.216.34"]  # never the second, private answer


def test_it_refuses_a_name_that_resolves_inside(no_private, connects, monkeypatch):
    _resolver(monkeypatch, "169.254.169.254")
    with pytest.raises(
        OutboundRefused, match="rebind.example resolves to 169.254.169.254, a cloud metadata address"
    ):
        guarded_session(max_retries=0).get("http://rebind.example/")
    assert connects == []


@pytest.mark.parametrize("url", ["file:///etc/passwd", "gopher://x/", "http:///nohost", "http://h:99999/"])
def test_it_refuses_what_is_not_an_http_url(url):
    with pytest.raises(OutboundRefused):
        guarded_session(max_retries=0).get(url)


class Trickle(QuietHandler):
    """Headers at once, then one byte every 50 ms, for as long as the client listens."""

    sent: list[int] = []
    requests = 0
    length = True

    def do_GET(self) -> None:
        Trickle.requests += 1
        self.send_response(200)
        if Trickle.length:  # without a length, the body ends when the connection does
            self.send_header("Content-Length", "100000")
        self.end_headers()
        try:
            while True:
                self.wfile.write(b"x")
                self.wfile.flush()
                Trickle.sent.append(1)
                time.sleep(0.05)
        except OSError:
            return


@pytest.mark.parametrize("length", [True, False], ids=["with-length", "until-close"])
def test_it_ends_a_trickling_answer_at_the_deadline(length):
    Trickle.sent, Trickle.requests, Trickle.length = [], 0, length
    with FakeServer(Trickle) as server, pytest.raises(OutboundRefused, match="did not answer within 0.5 s"):
        # each read comes well within the per-read timeout: only the overall deadline ends it
        guarded_session(max_retries=3, timeout=5, deadline=0.5).get(server.url + "/schema.json")
    # half a second of 50 ms bytes is about 10; without the deadline it would be 100,000 bytes
    assert 0 < len(Trickle.sent) < 100
    assert Trickle.requests == 1  # no retry after the deadline


class Redirect(QuietHandler):
    def do_GET(self) -> None:
        self.send_response(302)
        self.send_header("Location", self.headers.get("X-Target", "http://169.254.169.254/"))
        self.send_header("Content-Length", "0")
        self.end_headers()


def test_it_checks_every_redirect_hop():
    # the first hop is the fake on loopback (allowed in tests); the second leads to the metadata service
    with FakeServer(Redirect) as server, pytest.raises(OutboundRefused, match="a cloud metadata address"):
        guarded_session(max_retries=0).get(server.url + "/")


def test_it_hands_back_a_redirect_when_told_not_to_follow():
    with FakeServer(Redirect) as server:
        response = guarded_session(max_retries=0).get(server.url + "/", allow_redirects=False)
    assert response.status_code == 302 and response.is_redirect


def test_it_caps_the_body():
    class Big(QuietHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(1 << 20))
            self.end_headers()
            self.wfile.write(b"x" * (1 << 20))

    with FakeServer(Big) as server, pytest.raises(OutboundRefused, match="larger than 1,000 bytes"):
        guarded_session(max_retries=0, max_bytes=1000).get(server.url + "/")


def test_the_watchdog_leaves_other_threads_alone():
    """Two threads, one session: a slow answer in one does not end the other's request."""
    Trickle.sent, Trickle.requests, Trickle.length = [], 0, True

    class Quick(QuietHandler):
        def do_GET(self) -> None:
            self.send_json(200, {"ok": True})

    session = guarded_session(max_retries=0, timeout=5, deadline=0.5)
    results: dict = {}
    with FakeServer(Trickle) as slow, FakeServer(Quick) as quick:

        def slow_call() -> None:
            try:
                session.get(slow.url + "/")
            except OutboundRefused as exc:
                results["slow"] = str(exc)

        thread = threading.Thread(target=slow_call)
        thread.start()
        results["quick"] = session.get(quick.url + "/").json()
        thread.join()
    assert results == {"quick": {"ok": True}, "slow": f"{slow.url}/ did not answer within 0.5 s"}
