"""A run spends on its owner's behalf only while the owner is an active operator."""

from tests.chat.conftest import execute, send, stop_of
from tests.fakes.openrouter import Reply


def test_it_makes_no_more_model_calls_for_an_owner_who_is_no_longer_an_operator(chat, fake_openrouter, alice):
    fake_openrouter.script(Reply(text="Paid for by nobody."))
    run = send(chat)
    alice.is_staff = False
    alice.save()
    run = execute(run)
    stop = stop_of(run)
    assert stop["reason"] == "cancelled" and "no longer an active operator" in stop["detail"]
    assert fake_openrouter.chat_bodies() == []
