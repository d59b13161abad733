"""The shared outbound HTTP session against a local server that rate-limits and fails."""

import socket

import pytest
import requests

from juggernaut.http import http_session, retry_after_seconds
from tests.fakes.server import FakeServer, QuietHandler


class Flaky(QuietHandler):
    """Answers 429 (with Retry-After) then 503, then 200; POST /once fails with 503 once."""

    calls: dict[str, int] = {}

    def do_GET(self) -> None:
        n = Flaky.calls[self.path] = Flaky.calls.get(self.path, 0) + 1
        if self.path == "/limited" and n == 1:
            self.send_response(429)
            self.send_header("Retry-After", "2")
            self.end_headers()
        elif self.path == "/limited" and n == 2:
            self.send_response(503)
            self.end_headers()
        elif self.path == "/down":
            self.send_response(502)
            self.end_headers()
        else:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

    def do_POST(self) -> None:
        Flaky.calls[self.path] = Flaky.calls.get(self.path, 0) + 1
        self.send_response(503)
        self.end_headers()


@pytest.fixture
def session(settings):
    Flaky.calls = {}
    s = http_session(timeout=2, max_retries=3)
    s.slept = []
    s.sleep = s.slept.append
    return s


def test_it_retries_after_429_honouring_retry_after_then_backs_off(session):
    with FakeServer(Flaky) as fake:
        response = session.get(fake.url + "/limited")
    assert response.status_code == 200 and response.text == "ok"
    assert Flaky.calls["/limited"] == 3
    assert session.slept[0] == 2.0  # the server's Retry-After
    assert 0 < session.slept[1] <= 1.0  # then our own jittered backoff


def test_it_counts_every_request_it_sends_and_stops_retrying_when_told(session):
    with FakeServer(Flaky) as fake:
        session.get(fake.url + "/limited")
        assert session.sent == 3 == Flaky.calls["/limited"]  # the first try and two retries
        session.may_retry = lambda: session.sent < 5  # a caller with five requests to spend
        response = session.get(fake.url + "/down")
    assert response.status_code == 502 and Flaky.calls["/down"] == 2 and session.sent == 5


def test_it_gives_up_after_max_retries_and_returns_the_last_answer(session):
    with FakeServer(Flaky) as fake:
        response = session.get(fake.url + "/down")
    assert response.status_code == 502
    assert Flaky.calls["/down"] == 4  # the first try and three retries


def test_it_does_not_repeat_a_non_idempotent_request_on_5xx(session):
    with FakeServer(Flaky) as fake:
        response = session.post(fake.url + "/once", json={})
    assert response.status_code == 503
    assert Flaky.calls["/once"] == 1


def test_it_raises_on_a_dead_server_after_bounded_retries(session):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once the socket closes
    with pytest.raises(requests.ConnectionError):
        session.get(f"http://127.0.0.1:{port}/")
    assert len(session.slept) == 3


def test_it_reads_retry_after_in_both_formats():
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    assert retry_after_seconds("86400") == 60.0  # capped
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None


class RateLimited(QuietHandler):
    """POST /queue answers 429 with a day-long Retry-After once, then 201."""

    calls = 0

    def do_POST(self) -> None:
        RateLimited.calls += 1
        self.send_response(429 if RateLimited.calls == 1 else 201)
        if RateLimited.calls == 1:
            self.send_header("Retry-After", "86400")
        self.end_headers()


def test_it_repeats_any_method_after_429_and_caps_a_long_retry_after(session):
    RateLimited.calls = 0
    with FakeServer(RateLimited) as fake:
        response = session.post(fake.url + "/queue", json={"n": 1})
    assert response.status_code == 201
    assert RateLimited.calls == 2
    assert session.slept == [60.0]


def test_a_client_may_repeat_a_post_on_the_statuses_its_api_calls_safe(settings):
    Flaky.calls = {}
    s = http_session(timeout=2, max_retries=2, methods=frozenset({"POST"}), statuses=frozenset({503}))
    s.slept = []
    s.sleep = s.slept.append
    with FakeServer(Flaky) as fake:
        assert s.post(fake.url + "/once", json={}).status_code == 503  # still 503: the last answer
        assert s.get(fake.url + "/down").status_code == 502  # 502 is not in its list, GET not either
    assert Flaky.calls == {"/once": 3, "/down": 1} and len(s.slept) == 2


def test_without_network_retries_a_dead_server_is_reported_at_once(settings):
    s = http_session(timeout=2, max_retries=3, network_retries=False)
    s.slept = []
    s.sleep = s.slept.append
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(requests.ConnectionError):
        s.get(f"http://127.0.0.1:{port}/")
    assert s.slept == []
