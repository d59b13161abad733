"""The timed refresh: one render per page and interval, shared by every socket of that page."""

import asyncio

import pytest

from juggernaut.events.consumers import AGES, SharedRenders


@pytest.mark.django_db(transaction=True)
async def test_it_renders_the_timed_fragments_once_per_page_and_interval():
    shared = SharedRenders.of_running_loop()
    before = shared.count

    first, second = await asyncio.gather(shared.timed("overview", 1), shared.timed("overview", 1))
    await shared.timed("engine", 1)
    await shared.timed("overview", 2)

    assert first == second and 'id="hq-area-engine"' in first
    assert shared.count - before == 3  # overview@1 once for both sockets, engine@1, overview@2


def test_it_ignores_ages_when_deciding_whether_to_resend():
    a = '<time datetime="2026-11-25T12:00:00+00:00" data-age="ago">3 s ago</time> idle'
    b = '<time datetime="2026-11-25T12:00:00+00:00" data-age="ago">5 s ago</time> idle'
    c = '<time datetime="2026-11-25T12:00:09+00:00" data-age="ago">5 s ago</time> idle'
    assert AGES.sub(r"\1\2", a) == AGES.sub(r"\1\2", b) != AGES.sub(r"\1\2", c)


@pytest.mark.django_db(transaction=True)
async def test_it_never_reuses_a_render_for_a_batch_with_the_same_numbers_but_other_events():
    """Sequence numbers start again when the log is emptied under a running server: the render of an
    old batch numbered 1 must not stand in for a new batch numbered 1."""
    shared = SharedRenders.of_running_loop()
    old = {
        "v": 1,
        "seq": 1,
        "topic": "hq",
        "type": "notice",
        "ts": "2026-11-25T12:00:00.000001Z",
        "run_id": None,
    }
    new = {**old, "ts": "2026-11-25T12:05:00.000001Z"}

    first = await shared.html("overview", [{**old, "data": {"message": "deploy finished"}}])
    second = await shared.html("overview", [{**new, "data": {"message": "update 0-1440"}}])

    assert "deploy finished" in first and "update 0-1440" in second
