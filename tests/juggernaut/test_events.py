"""The event log: publish, per-topic seq, relay fan-out, websocket replay, SSE resume, retention."""

import asyncio
import json
import threading
import time
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from channels.testing import ApplicationCommunicator, WebsocketCommunicator
from django.db import connection, transaction
from django.utils import timezone

from juggernaut.asgi import application
from juggernaut.events import EventError, publish
from juggernaut.models import Event
from juggernaut.services import events_prune
from tests.conftest import is_postgres


async def ws_connect(raw_token: str, path: str = "/ws/events/") -> WebsocketCommunicator:
    comm = WebsocketCommunicator(
        application, path, headers=[(b"authorization", f"Bearer {raw_token}".encode())]
    )
    connected, _ = await comm.connect()
    assert connected
    return comm


async def receive_envelopes(comm: WebsocketCommunicator, count: int, timeout: float = 30.0) -> list[dict]:
    out: list[dict] = []
    deadline = time.monotonic() + timeout
    while len(out) < count:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            message = json.loads(await comm.receive_from(timeout=remaining))
        except TimeoutError:
            break
        if "seq" in message:
            out.append(message)
    return out


@pytest.mark.django_db
def test_it_numbers_each_topic_from_one_without_gaps():
    for i in range(3):
        publish("hq", "notice", {"i": i})
    publish("engine", "tick")
    assert list(Event.objects.filter(topic="hq").order_by("seq").values_list("seq", flat=True)) == [1, 2, 3]
    assert Event.objects.get(topic="engine").seq == 1


@pytest.mark.django_db
def test_it_leaves_no_gap_when_a_transaction_rolls_back():
    publish("hq", "a")
    with pytest.raises(RuntimeError), transaction.atomic():
        publish("hq", "rolled-back")
        raise RuntimeError("boom")
    publish("hq", "b")
    assert list(Event.objects.filter(topic="hq").values_list("type", "seq").order_by("seq")) == [
        ("a", 1),
        ("b", 2),
    ]


@pytest.mark.django_db
def test_it_refuses_bad_topics_and_types():
    for topic in ["", "Upper", "has space", "x" * 121, "1starts-with-digit"]:
        with pytest.raises(EventError):
            publish(topic, "t")
    with pytest.raises(EventError):
        publish("hq", "")
    assert Event.objects.count() == 0


@pytest.mark.django_db
def test_it_redacts_secret_looking_keys():
    event = publish(
        "hq", "config", {"api_key": "sk-or-v1-abc", "nested": [{"password": "x", "ok": 1}], "n": 2}
    )
    event.refresh_from_db()
    assert event.data == {"api_key": "[redacted]", "nested": [{"password": "[redacted]", "ok": 1}], "n": 2}
    assert publish("hq", "config", {"token": ""}).data == {"token": ""}  # nothing to hide


@pytest.mark.django_db
def test_it_removes_configured_secrets_from_text_it_publishes(settings):
    settings.OPENROUTER_API_KEY = "sk-or-v1-" + "a1" * 20
    settings.LOGS_ALERT_WEBHOOK_SECRET_URL = "https://hooks.slack.com/services/T0001/B0002/s3cretPathPart"
    event = publish(
        "hq",
        "note",
        {
            "message": f"provider said: invalid key {settings.OPENROUTER_API_KEY}",
            "lines": ["POST /services/T0001/B0002/s3cretPathPart failed", "the token limit was reached"],
        },
    )
    event.refresh_from_db()
    assert event.data == {
        "message": "provider said: invalid key [redacted]",
        "lines": ["POST [redacted] failed", "the token limit was reached"],  # ordinary words survive
    }


@pytest.mark.django_db
def test_it_builds_the_documented_envelope():
    event = publish("chat.run.7", "token", {"text": "hi"}, correlation_id=7)
    env = event.envelope()
    assert set(env) == {"v", "seq", "topic", "type", "ts", "run_id", "data"}
    assert (env["v"], env["seq"], env["topic"], env["type"], env["run_id"]) == (
        1,
        1,
        "chat.run.7",
        "token",
        7,
    )
    assert env["ts"].endswith("Z")


@pytest.mark.django_db(transaction=True)
async def test_it_replays_exactly_the_missed_events_after_a_reconnect(make_token, stop_relays):
    raw = await sync_to_async(make_token)("read")
    for i in range(5):
        await sync_to_async(publish)("hq", "before", {"i": i})

    comm = await ws_connect(raw)
    await comm.send_json_to({"subscribe": ["hq"], "after_seq": {"hq": 2}})
    first = await receive_envelopes(comm, 3)
    assert [e["seq"] for e in first] == [3, 4, 5]
    await sync_to_async(publish)("hq", "live", {"i": 5})
    live = await receive_envelopes(comm, 1)
    assert [(e["seq"], e["type"]) for e in live] == [(6, "live")]
    await comm.disconnect()

    for i in range(4):  # published while the client is away
        await sync_to_async(publish)("hq", "missed", {"i": i})

    again = await ws_connect(raw)
    await again.send_json_to({"subscribe": ["hq"], "after_seq": {"hq": 6}})
    missed = await receive_envelopes(again, 4)
    assert [e["seq"] for e in missed] == [7, 8, 9, 10]
    assert {e["type"] for e in missed} == {"missed"}
    # The acknowledgement marks the end of the replay; everything after it is live.
    assert json.loads(await again.receive_from()) == {"subscribed": ["hq"]}
    assert await again.receive_nothing(timeout=0.5)  # nothing twice
    await again.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_it_answers_malformed_messages_with_an_error_and_stays_open(make_token, stop_relays):
    comm = await ws_connect(await sync_to_async(make_token)("read"))
    for bad in [
        "not json",
        "[1, 2]",
        json.dumps({"subscribe": "hq"}),
        json.dumps({"subscribe": ["Bad Topic"]}),
        json.dumps({"subscribe": ["hq"], "after_seq": {"hq": "x"}}),
    ]:
        await comm.send_to(text_data=bad)
        reply = json.loads(await comm.receive_from())
        assert reply["error"]["code"] == "bad_request", bad
    await comm.send_json_to({"subscribe": ["hq"]})
    assert json.loads(await comm.receive_from()) == {"subscribed": ["hq"]}
    await comm.disconnect()


def _producer(topic: str, count: int, errors: list, hold: threading.Event | None = None) -> None:
    try:
        for i in range(count):
            publish(topic, "load", {"i": i, "thread": threading.get_ident()})
            # As a request would, hand the connection back to the pool now and then: twenty producers
            # share the pool's ten connections instead of the last ten timing out behind the first.
            if i % 10 == 9:
                connection.close()
            if hold is not None and i == count // 2:
                # Keep this producer's next transaction open while the others queue behind it.
                with transaction.atomic():
                    publish(topic, "held", {"i": i})
                    hold.wait(timeout=5)
    except Exception as exc:  # surfaced by the test's assertion on `errors`
        errors.append(exc)
    finally:
        connection.close()


def _late_committer(started: threading.Event, release: threading.Event, errors: list) -> None:
    """Takes an event id early and commits long after later ids are visible."""
    try:
        with transaction.atomic():
            publish("late", "late", {"note": "id taken early, committed last"})
            started.set()
            release.wait(timeout=60)
    except Exception as exc:
        errors.append(exc)
    finally:
        connection.close()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
async def test_it_delivers_every_event_exactly_once_in_order_under_concurrent_producers(
    make_token, stop_relays
):
    """20×200 on Postgres (4×100 on SQLite), one transaction held open, three websocket consumers."""
    threads_n, per_thread = (20, 200) if is_postgres() else (4, 100)
    raw = await sync_to_async(make_token)("read")
    consumers = [await ws_connect(raw) for _ in range(3)]
    for comm in consumers:
        await comm.send_json_to({"subscribe": ["load", "late"]})
        assert json.loads(await comm.receive_from()) == {"subscribed": ["late", "load"]}

    errors: list = []
    started, release, hold = threading.Event(), threading.Event(), threading.Event()
    # SQLite has one writer at a time, so ids commit in order there; the late committer is a Postgres hazard.
    late = (
        threading.Thread(target=_late_committer, args=(started, release, errors)) if is_postgres() else None
    )
    if late:
        late.start()
        assert await asyncio.to_thread(started.wait, 10)
    producers = [
        threading.Thread(target=_producer, args=("load", per_thread, errors, hold if n == 0 else None))
        for n in range(threads_n)
    ]
    for t in producers:
        t.start()
    await asyncio.sleep(0.3)
    hold.set()
    for t in producers:
        await asyncio.to_thread(t.join, 120)
    if late:
        # The late transaction's event id is lower than every "load" event's, and it commits last.
        release.set()
        await asyncio.to_thread(late.join, 30)
        late_id = await sync_to_async(lambda: Event.objects.get(topic="late").pk)()
        assert await sync_to_async(Event.objects.filter(topic="load", pk__lt=late_id).count)() == 0
    assert errors == []

    total = threads_n * per_thread + 1  # + the held event
    assert await sync_to_async(Event.objects.filter(topic="load").count)() == total

    for comm in consumers:
        got = await receive_envelopes(comm, total + (1 if late else 0), timeout=60)
        load = [e["seq"] for e in got if e["topic"] == "load"]
        assert load == list(range(1, total + 1))  # all of them, once each, in order
        assert [e["seq"] for e in got if e["topic"] == "late"] == ([1] if late else [])
        await comm.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_it_refuses_anonymous_and_foreign_origin_websockets(make_token, stop_relays):
    for path in ["/ws/events/", "/ws/hq/"]:
        comm = WebsocketCommunicator(application, path)
        connected, _ = await comm.connect()
        assert not connected
    raw = await sync_to_async(make_token)("read")
    comm = WebsocketCommunicator(
        application,
        "/ws/events/",
        headers=[(b"authorization", f"Bearer {raw}".encode()), (b"origin", b"https://evil.example")],
    )
    connected, _ = await comm.connect()
    assert not connected
    # A token is for programs: the HTML websocket wants a signed-in operator.
    comm = WebsocketCommunicator(application, f"/ws/hq/?token={raw}")
    connected, _ = await comm.connect()
    assert not connected


@pytest.mark.django_db(transaction=True)
async def test_it_refuses_a_token_without_read_scope_on_the_websocket(make_token, stop_relays):
    raw = await sync_to_async(make_token)("worker")
    comm = WebsocketCommunicator(
        application, "/ws/events/", headers=[(b"authorization", f"Bearer {raw}".encode())]
    )
    connected, _ = await comm.connect()
    assert not connected


async def _sse_open(raw: str, path: str, headers: list | None = None) -> ApplicationCommunicator:
    path, _, query = path.partition("?")
    comm = ApplicationCommunicator(
        application,
        {
            "type": "http",
            "http_version": "1.1",
            "method": "GET",
            "path": path,
            "raw_path": path.encode(),
            "query_string": query.encode(),
            "root_path": "",
            "scheme": "http",
            "headers": [(b"host", b"testserver"), (b"authorization", f"Bearer {raw}".encode())]
            + (headers or []),
            "client": ("127.0.0.1", 5000),
            "server": ("testserver", 80),
        },
    )
    await comm.send_input({"type": "http.request", "body": b"", "more_body": False})
    return comm


async def _sse_read(
    comm: ApplicationCommunicator, count: int, timeout: float = 10.0
) -> tuple[int, list[dict]]:
    status = None
    events: list[dict] = []
    buffer = ""
    deadline = time.monotonic() + timeout
    while len(events) < count and time.monotonic() < deadline:
        message = await comm.receive_output(timeout=deadline - time.monotonic())
        if message["type"] == "http.response.start":
            status = message["status"]
            continue
        buffer += message.get("body", b"").decode()
        while "\n\n" in buffer:
            block, buffer = buffer.split("\n\n", 1)
            fields = dict(
                line.split(": ", 1) for line in block.splitlines() if ": " in line and line[0] != ":"
            )
            if "data" in fields:
                events.append(
                    {"id": int(fields["id"]), "event": fields["event"], **json.loads(fields["data"])}
                )
        if not message.get("more_body", False):
            break
    return status, events


@pytest.mark.django_db(transaction=True)
async def test_it_resumes_the_sse_stream_from_last_event_id(make_token, stop_relays):
    raw = await sync_to_async(make_token)("read")
    for i in range(6):
        await sync_to_async(publish)("engine", "step", {"i": i})
    comm = await _sse_open(raw, "/api/events/engine/stream", headers=[(b"last-event-id", b"4")])
    status, events = await _sse_read(comm, 2)
    assert status == 200
    assert [(e["id"], e["seq"], e["event"]) for e in events] == [(5, 5, "step"), (6, 6, "step")]
    await sync_to_async(publish)("engine", "live")
    _, live = await _sse_read(comm, 1)
    assert [(e["id"], e["event"]) for e in live] == [(7, "live")]
    await comm.send_input({"type": "http.disconnect"})
    await comm.wait(timeout=5)

    comm = await _sse_open(raw, "/api/events/engine/stream?after_seq=6")
    _, events = await _sse_read(comm, 1)
    assert [e["seq"] for e in events] == [7]
    await comm.send_input({"type": "http.disconnect"})
    await comm.wait(timeout=5)


@pytest.mark.django_db(transaction=True)
async def test_it_refuses_anonymous_sse_with_the_error_shape(stop_relays):
    comm = ApplicationCommunicator(
        application,
        {
            "type": "http",
            "http_version": "1.1",
            "method": "GET",
            "path": "/api/events/hq/stream",
            "raw_path": b"/api/events/hq/stream",
            "query_string": b"",
            "root_path": "",
            "scheme": "http",
            "headers": [(b"host", b"testserver")],
            "client": ("127.0.0.1", 5000),
            "server": ("testserver", 80),
        },
    )
    await comm.send_input({"type": "http.request", "body": b"", "more_body": False})
    start = await comm.receive_output(timeout=5)
    body = await comm.receive_output(timeout=5)
    assert start["status"] == 401
    assert json.loads(body["body"])["error"]["code"] == "unauthorized"


@pytest.mark.django_db
def test_it_pages_the_replay_endpoint(client, bearer):
    for i in range(5):
        publish("hq", "n", {"i": i})
    headers = bearer("read")
    page = client.get("/api/events/hq?after_seq=1&limit=2", **headers).json()
    assert page["last_seq"] == 5
    assert [e["seq"] for e in page["events"]] == [2, 3]
    assert client.get("/api/events/hq?limit=5000", **headers).status_code == 422
    bad = client.get("/api/events/Not%20A%20Topic", **headers)
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "validation_error"


@pytest.mark.django_db
def test_it_prunes_old_events_but_keeps_topics_still_on_screen():
    old = timezone.now() - timedelta(days=30)
    for topic in ["hq", "chat.run.1"]:
        publish(topic, "old")
    publish("hq", "fresh")
    Event.objects.filter(type="old").update(ts=old)
    deleted = events_prune(keep=["chat.run.1"])
    assert deleted == 1
    assert sorted(Event.objects.values_list("topic", "type")) == [("chat.run.1", "old"), ("hq", "fresh")]


@pytest.mark.django_db(transaction=True)
async def test_it_keeps_delivering_by_polling_when_no_wake_up_arrives(
    make_token, stop_relays, settings, monkeypatch
):
    """A producer in another process cannot poke this relay, and on Postgres the LISTEN connection may
    be down: polling alone must still deliver everything."""
    settings.EVENTS_POLL_SECONDS = 0.2
    monkeypatch.setattr("juggernaut.events._wake_local_relays", lambda topic: None)
    monkeypatch.setattr(
        "juggernaut.events.relay.listen_connect_params", lambda: {"host": "127.0.0.1", "port": 1}
    )
    comm = await ws_connect(await sync_to_async(make_token)("read"))
    await comm.send_json_to({"subscribe": ["engine"]})
    assert json.loads(await comm.receive_from()) == {"subscribed": ["engine"]}
    for i in range(3):
        await sync_to_async(publish)("engine", "quiet", {"i": i})
    got = await receive_envelopes(comm, 3, timeout=10)
    assert [e["seq"] for e in got] == [1, 2, 3]
    await comm.disconnect()


@pytest.mark.django_db(transaction=True)
def test_it_keeps_each_events_run_id_when_the_column_becomes_a_correlation_id():
    from django.db.migrations.executor import MigrationExecutor

    before, after = [("juggernaut", "0001_initial")], [("juggernaut", "0002_event_correlation_id")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    old_event = executor.loader.project_state(before).apps.get_model("juggernaut", "Event")
    old_event.objects.create(topic="chat.run.9", seq=1, type="token", run_id=9, data={})
    executor = MigrationExecutor(connection)
    executor.migrate(after)
    executor.loader.build_graph()
    new_event = executor.loader.project_state(after).apps.get_model("juggernaut", "Event")
    assert list(new_event.objects.values_list("topic", "correlation_id")) == [("chat.run.9", 9)]
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    envelope = Event.objects.get(topic="chat.run.9").envelope()
    assert envelope["run_id"] == 9
