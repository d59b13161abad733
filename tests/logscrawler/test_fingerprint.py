"""Fingerprinting: grouping accuracy on the development sets, stable ids, the CSV command."""

import csv
import io

import pytest
from django.core.management import call_command

from logscrawler.fingerprint import Fingerprinter, TemplateStore, message_tokens
from logscrawler.header import split_header
from tests.logscrawler.loghub import DATASETS, grouping_accuracy, load, loghub_dir

# Grouping accuracy reached with the one configuration (message mode, raw mode); asserted with a
# small margin so an unrelated change that costs accuracy fails here.
REACHED = {
    "BGL": (0.990, 0.972),
    "HDFS": (1.000, 1.000),
    "HealthApp": (1.000, 1.000),
    "Linux": (0.932, 0.939),
    "Mac": (0.926, 0.907),
    "Proxifier": (0.990, 0.990),
    "Spark": (0.999, 0.999),
    "Windows": (0.996, 0.996),
}
MARGIN = 0.01

needs_loghub = pytest.mark.skipif(
    loghub_dir() is None,
    reason="needs the Loghub-2k development sets: set LOGHUB_DIR (CI sets it)",
)


@pytest.fixture(scope="module")
def datasets():
    root = loghub_dir()
    assert root.is_dir(), f"LOGHUB_DIR={root} is not a directory"
    return {name: load(name, root) for name in DATASETS}


@needs_loghub
@pytest.mark.parametrize("name", DATASETS)
def test_it_groups_each_development_set_on_messages_and_raw_lines(datasets, name):
    ds = datasets[name]
    on_messages = grouping_accuracy(Fingerprinter().fingerprint_all(ds.messages), ds.events)
    on_raw = grouping_accuracy(Fingerprinter(raw=True).fingerprint_all(ds.raw), ds.events)
    messages_reached, raw_reached = REACHED[name]
    assert on_messages >= messages_reached - MARGIN, on_messages
    assert on_raw >= raw_reached - MARGIN, on_raw


@needs_loghub
def test_it_reaches_the_average_targets_with_one_configuration(datasets):
    on_messages, on_raw = [], []
    for ds in datasets.values():
        on_messages.append(grouping_accuracy(Fingerprinter().fingerprint_all(ds.messages), ds.events))
        on_raw.append(grouping_accuracy(Fingerprinter(raw=True).fingerprint_all(ds.raw), ds.events))
    assert sum(on_messages) / len(on_messages) >= 0.95
    assert sum(on_raw) / len(on_raw) >= 0.90


@needs_loghub
def test_it_prints_the_same_ids_through_the_command(datasets, tmp_path):
    ds = datasets["HealthApp"]
    path = tmp_path / "health.log"
    path.write_text("\n".join(ds.raw) + "\n", encoding="utf-8")
    out = io.StringIO()
    call_command("fingerprint_file", str(path), "--raw", stdout=out)
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    assert rows[0] == ["line", "fingerprint_id"]
    assert [int(r[0]) for r in rows[1:]] == list(range(1, len(ds.raw) + 1))
    assert [r[1] for r in rows[1:]] == Fingerprinter(raw=True).fingerprint_all(ds.raw)
    assert grouping_accuracy([r[1] for r in rows[1:]], ds.events) >= REACHED["HealthApp"][1] - MARGIN


def test_it_keeps_the_id_when_a_template_generalises():
    fp = Fingerprinter()
    first = fp.fingerprint("session opened for user alice by sshd").id
    # until a position has shown several values it may be a word of another message
    provisional = [fp.fingerprint(f"session opened for user {user} by sshd").id for user in ("bob", "carol")]
    assert fp.fingerprint("session opened for user dave by sshd").id == first
    assert {fp.store.resolve(i) for i in provisional} == {first}
    assert fp.store.templates[first].text == "session opened for user <*> by sshd"
    assert fp.fingerprint("session opened for user zed by sshd").id == first
    assert fp.fingerprint_all(["session opened for user bob by sshd"]) == [first]


def test_it_keeps_a_few_alternative_words_apart():
    fp = Fingerprinter()
    started = fp.fingerprint("cupsd startup succeeded").id
    stopped = fp.fingerprint("cupsd shutdown succeeded").id
    assert started != stopped
    assert fp.fingerprint("cupsd startup succeeded").id == started


def test_it_takes_a_partly_variable_token_as_a_value_of_a_variable_slot():
    fp = Fingerprinter()
    peers = [fp.fingerprint(f"replica joined peer 10.0.0.{n}, term 3").id for n in range(5)]
    odd = fp.fingerprint("replica joined peer STANDBY(2), term 9").id
    assert fp.store.resolve(odd) == fp.store.resolve(peers[0])
    assert fp.store.templates[fp.store.resolve(odd)].text == "replica joined peer <*> term <*>"
    # a bare word in the slot is not partly a variable: until the slot is one, it is another message
    other = Fingerprinter()
    other.fingerprint("replica joined peer 10.0.0.1, term 3")
    assert (
        other.fingerprint("replica joined peer quorum, term 9").id
        != other.fingerprint("replica joined peer 10.0.0.2, term 3").id
    )


def test_it_masks_numbers_ids_addresses_paths_and_durations():
    assert message_tokens(
        "GET /api/v1/users/42 from 10.0.0.7:443 took 35 ms req=7f3a9c0e-1b2c-4d5e-8f90-a1b2c3d4e5f6"
    ) == ["GET", "<*>", "from", "<*>", "took", "<*>", "req=<*>"]
    assert message_tokens("sent 1024 bytes (1.0 KB) to db-3.internal.example.com") == [
        "sent",
        "<*>",
        "to",
        "<*>",
    ]


def test_it_finds_the_message_and_level_in_raw_lines():
    cases = {
        "2024-05-01T12:00:00.123Z ERROR [worker-3] payment.service: charge failed for order 42": (
            "error",
            "charge failed for order 42",
        ),
        "Jun 14 15:16:01 combo sshd(pam_unix)[19939]: check pass; user unknown": (
            None,
            "check pass; user unknown",
        ),
        "2024-05-01 12:00:00,123 - myapp.db - WARNING - pool exhausted": ("warning", "pool exhausted"),
        "081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 terminating": (
            "info",
            "PacketResponder 1 terminating",
        ),
        "plain message with no header": (None, "plain message with no header"),
        "2015-07-29 17:41:44,747 - INFO  [QuorumPeer[myid=1]/0.0.0.0:2181:Election@774] - Notification time out: 3200": (
            "info",
            "Notification time out: 3200",
        ),
        "03-17 16:13:38.811  1702  2395 E WindowManager: surface lost": ("error", "surface lost"),
        # log4j's "%d %p [%t] %c: %m", the thread's name with spaces
        "2024-05-01 12:00:00,123 WARN [pool-2 worker #7] com.acme.jobs.Runner: job 12 took too long": (
            "warning",
            "job 12 took too long",
        ),
        # Python logging with a logger name and a bracketed request context, from a rotated file
        "worker.log.3.2024-05-01_12:00:00 2024-05-01 12:00:00.008 3121 ERROR shop.billing.tasks "
        "[req-9 alice - - -] refund 7 failed": ("error", "refund 7 failed"),
    }
    for line, (level, message) in cases.items():
        header = split_header(line)
        assert (header.level, header.message) == (level, message), line


def test_it_continues_from_stored_templates_with_their_ids():
    fp = Fingerprinter()
    ids = [fp.fingerprint(f"disk {n} of node{n} is full").id for n in range(3)]
    restored = TemplateStore()
    for template in fp.store.templates.values():
        restored.add(template)
    assert Fingerprinter(store=restored).fingerprint("disk 9 of node9 is full").id == ids[0]
