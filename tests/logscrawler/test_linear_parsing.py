"""Untrusted lines are parsed in linear time: a crafted line costs about what an ordinary one of the
same length costs, and a line over the parse budget is kept as one "unparsable" event."""

import time

import pytest

from logscrawler.fingerprint import Fingerprinter
from logscrawler.masking import mask_token
from logscrawler.parser import parse_record
from logscrawler.pipeline import events_fold

LENGTH = 16_000
# Linear code costs a few times more on a line of one repeated piece (every character is a token or a
# piece) than on prose; backtracking costs hundreds to thousands of times more at this length.
FACTOR = 25
# What a busy service writes, repeated to the length of a crafted line: the cost to compare with.
ORDINARY = (
    "2024-05-01T10:00:00.123Z ERROR billing.charge: order 48213 for user 9912 failed after 3 retries "
    "status=503 url=https://api.example.com/v1/charges host=db-1.internal:5432 took 1520ms; "
)
CRAFTED = [
    "Error " + "1:" * 8000 + "g",
    "msg=x " + "a." * 8000,
    "msg=x " + "a" * 16000,
    ")" * 16000,
    "\n" * 16000,
]
# Long runs of each character class the patterns touch, alone and after the prefixes that switch on
# the paths that read them (an error word, logfmt, a header, JSON).
RUNS = [
    "1",
    "a",
    "A",
    "f",
    "_",
    ".",
    ":",
    "/",
    "\\",
    "-",
    "+",
    "=",
    ",",
    ";",
    "|",
    "@",
    "#",
    "$",
    "*",
    "?",
    "!",
    "'",
    '"',
    "`",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    "<",
    ">",
    " ",
    "\t",
    "\n",
    "~",
    "1:",
    "a.",
    "1.",
    "a-",
    "a/",
    "a=",
    "a:",
    "::",
    "0x",
    "1-",
    "a@",
    '\\"',
    "at ",
    "[1",
    "(a",
    " at a",
    'msg="',
    "status=",
    'File "',
    "Error: ",
    "panic: ",
    '  File "a", line 1, in f\n',
    "\tat a.b(c)\n",
]
PREFIXES = ["", "Error ", "msg=x ", "2024-05-01 10:00:00 ERROR app: ", "level=error msg=", '{"msg": "']


def generated() -> list[str]:
    lines = []
    for run in RUNS:
        for prefix in PREFIXES:
            body = run * ((LENGTH - len(prefix)) // len(run))
            lines.append(prefix + body + ('"}' if prefix.startswith("{") else "g"))
    return lines


def cost(line: str) -> float:
    """Seconds to parse, fold and fingerprint one line the way ingest does."""
    mask_token.cache_clear()
    start = time.perf_counter()
    fingerprinter = Fingerprinter(raw=True)
    for _indices, event in events_fold([(line, None, {}, None)]):
        fingerprinter.fingerprint(event.text)
    return time.perf_counter() - start


def ratio(line: str) -> float:
    """The line's cost over an ordinary line's of the same length, each pair measured back to back
    (best of three, so a busy machine slows both sides alike)."""
    ordinary = (ORDINARY * (LENGTH // len(ORDINARY) + 1))[:LENGTH]
    return min(cost(line) / cost(ordinary) for _ in range(3))


@pytest.mark.parametrize(
    "line", CRAFTED, ids=["error-colons", "msg-dots", "msg-letters", "parens", "newlines"]
)
def test_it_parses_a_crafted_line_at_the_cost_of_an_ordinary_one(line):
    assert ratio(line) < FACTOR


def test_it_parses_long_runs_of_every_character_class_at_the_cost_of_an_ordinary_line():
    slow = {repr(line[:30]): round(r, 1) for line in generated() if (r := ratio(line)) >= FACTOR}
    assert slow == {}


def test_it_keeps_a_line_over_the_parse_budget_as_one_unparsable_event(settings):
    settings.LOGS_PARSE_BUDGET_MS = 0
    [(indices, event)] = events_fold([("ERROR db: connection refused\n  at x", "error", {}, None)])
    assert indices == [0]
    assert event.unparsable
    assert event.is_error
    assert event.text == "ERROR db: connection refused\n  at x"
    assert Fingerprinter(raw=True).fingerprint(event.text).id


def test_it_parses_an_ordinary_line_within_the_budget(settings):
    settings.LOGS_PARSE_BUDGET_MS = 1000
    [(_, event)] = events_fold([("ERROR db: connection refused", None, {}, None)])
    assert not event.unparsable
    assert event.message == parse_record("ERROR db: connection refused").message == "connection refused"
