"""The OpenRouter client against the fake server: wire format, quirks, errors, timeouts, cancellation."""

import socket
import threading
import time
from decimal import Decimal

import pytest

from routing.clients import OpenRouterClient, OpenRouterError, SSEDecoder
from tests.fakes.openrouter import Fail, Reply, Stall, Tool

MESSAGES = [{"role": "user", "content": "What is the weather in Munich?"}]
WEATHER = {"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}


def test_it_sends_the_key_attribution_headers_and_openrouter_fields(openrouter, fake_openrouter):
    body = {
        "model": "openai/gpt-4o",
        "models": ["openai/gpt-4o", "anthropic/claude-sonnet-4"],
        "messages": MESSAGES,
        "tools": [WEATHER],
        "tool_choice": "auto",
        "provider": {
            "max_price": {"prompt": 2.5, "completion": 10},
            "sort": "price",
            "allow_fallbacks": True,
        },
    }
    openrouter.chat_stream(body).collect()
    sent = fake_openrouter.requests[-1]
    assert sent["headers"]["Authorization"] == "Bearer sk-or-test"
    assert sent["headers"]["HTTP-Referer"] and sent["headers"]["X-Title"] == "Juggernaut HQ"
    assert sent["body"]["stream"] is True and sent["body"]["models"] == body["models"]
    assert sent["body"]["provider"]["max_price"] == {"prompt": 2.5, "completion": 10}
    assert sent["body"]["tool_choice"] == "auto" and sent["body"]["tools"] == [WEATHER]


def test_it_streams_text_ignoring_keepalive_comments_and_reads_the_usage_chunk(openrouter, fake_openrouter):
    fake_openrouter.script(
        Reply(
            text="Sunny, 21 °C.", keepalives=3, prompt_tokens=40, completion_tokens=7, cost=Decimal("0.00042")
        )
    )
    stream = openrouter.chat_stream({"model": "openai/gpt-4o-mini", "messages": MESSAGES})
    pieces = list(stream)
    completion = stream.completion
    assert "".join(pieces) == "Sunny, 21 °C." == completion.content
    assert len(pieces) > 1  # it really streamed in fragments
    assert stream.decoder.comments == 3
    assert completion.finish_reason == "stop" and completion.native_finish_reason == "stop"
    assert completion.usage.prompt_tokens == 40 and completion.usage.completion_tokens == 7
    assert completion.usage.cost == Decimal("0.00042")
    assert completion.id.startswith("gen-") and completion.model == "openai/gpt-4o-mini"
    assert completion.error is None and completion.first_token_seconds is not None


def test_it_decodes_bytes_cut_inside_utf8_characters(openrouter, fake_openrouter):
    text = "Grüße aus München — 東京 🚀 ok"
    fake_openrouter.script(Reply(text=text, byte_split=1))  # every byte its own HTTP chunk
    assert openrouter.chat_stream({"model": "m", "messages": MESSAGES}).collect().content == text


def test_the_decoder_takes_any_cut_of_the_bytes():
    raw = ': OPENROUTER PROCESSING\n\ndata: {"x": "Zürich 🚀"}\r\n\r\ndata: [DONE]\n\n'.encode()
    for size in (1, 2, 3, 5, 7):
        decoder = SSEDecoder()
        events = []
        for i in range(0, len(raw), size):
            events += decoder.feed(raw[i : i + size])
        assert events == ['{"x": "Zürich 🚀"}', "[DONE]"] and decoder.comments == 1


def test_it_assembles_tool_call_arguments_split_mid_token_and_mid_character(openrouter, fake_openrouter):
    args = '{"city": "Mün🚀chen", "days": 3}'
    fake_openrouter.script(
        Reply(
            tools=[Tool("weather", args), Tool("clock", '{"tz": "Europe/Berlin"}')],
            finish_reason="tool_calls",
            fragment=2,
            ascii=True,
            byte_split=7,
        )
    )
    completion = openrouter.chat_stream({"model": "m", "messages": MESSAGES, "tools": [WEATHER]}).collect()
    assert [(c.name, c.arguments) for c in completion.tool_calls] == [
        ("weather", args),
        ("clock", '{"tz": "Europe/Berlin"}'),
    ]
    assert completion.finish_reason == "tool_calls"
    assert len({c.id for c in completion.tool_calls}) == 2


@pytest.mark.parametrize("reason", ["stop", None])
def test_it_treats_tool_calls_ending_with_stop_or_null_as_tool_calls(openrouter, fake_openrouter, reason):
    fake_openrouter.script(Reply(tools=[Tool("weather", '{"city": "Oslo"}')], finish_reason=reason))
    completion = openrouter.chat_stream({"model": "m", "messages": MESSAGES}).collect()
    assert completion.finish_reason == "tool_calls"
    assert completion.native_finish_reason == reason
    assert completion.tool_calls[0].arguments == '{"city": "Oslo"}'


def test_it_keeps_repeated_ids_once_and_names_empty_or_duplicate_ids(openrouter, fake_openrouter):
    fake_openrouter.script(
        Reply(
            tools=[
                Tool("a", '{"n": 1}', id="call_x", repeat_id=True),
                Tool("b", "{}", id="call_x"),
                Tool("c", "{}", id=""),
            ],
            finish_reason="tool_calls",
        )
    )
    calls = openrouter.chat_stream({"model": "m", "messages": MESSAGES}).collect().tool_calls
    assert [c.id for c in calls] == ["call_x", "call_x_1", "call_2"]
    assert calls[0].arguments == '{"n": 1}'


def test_a_non_streamed_completion_reads_tool_calls_and_usage(openrouter, fake_openrouter):
    fake_openrouter.script(
        Reply(
            text="",
            tools=[Tool("weather", '{"city": "Rome"}', id="call_1")],
            finish_reason="tool_calls",
            cost=Decimal("0.002"),
        )
    )
    completion = openrouter.chat({"model": "m", "messages": MESSAGES, "tools": [WEATHER]})
    assert completion.tool_calls[0].as_dict() == {
        "id": "call_1",
        "type": "function",
        "function": {"name": "weather", "arguments": '{"city": "Rome"}'},
    }
    assert completion.usage.cost == Decimal("0.002") and completion.finish_reason == "tool_calls"
    assert fake_openrouter.chat_bodies()[-1]["stream"] is False


@pytest.mark.parametrize("code", [502, "server_error"])
def test_a_mid_stream_error_chunk_ends_the_stream_with_the_error_and_keeps_what_came(
    openrouter, fake_openrouter, code
):
    fake_openrouter.script(Reply(text="The answer is forty", fragment=4, error_after=2, error_code=code))
    completion = openrouter.chat_stream({"model": "m", "messages": MESSAGES}).collect()
    assert completion.content == "The answ"  # two fragments of four characters
    assert completion.finish_reason == "error"
    assert completion.error is not None and completion.error.code == str(code)
    assert completion.error.permanent is False
    assert completion.usage is not None  # the usage chunk after the error still counts


def test_a_stream_cut_without_done_is_an_error(openrouter, fake_openrouter):
    fake_openrouter.script(Reply(text="partial", usage=False, done=False))
    completion = openrouter.chat_stream({"model": "m", "messages": MESSAGES}).collect()
    assert completion.error.code == "connection_lost" and completion.usage is None


@pytest.mark.parametrize(
    ("status", "permanent"),
    [
        (400, True),
        (401, True),
        (402, True),
        (404, True),
        (408, False),
        (429, False),
        (502, False),
        (503, False),
    ],
)
def test_it_raises_json_errors_before_the_stream(openrouter, fake_openrouter, status, permanent):
    fake_openrouter.script(*[Fail(status, f"failed with {status}", retry_after="1")] * 4)
    with pytest.raises(OpenRouterError) as caught:
        openrouter.chat_stream({"model": "m", "messages": MESSAGES})
    error = caught.value
    assert error.status == status and error.code == str(status) and error.permanent is permanent
    assert error.message == f"failed with {status}" and error.retry_after == 1.0
    # transient errors were retried after the server's Retry-After; permanent ones were not
    assert openrouter.slept == ([] if permanent else [1.0, 1.0, 1.0])


def test_it_retries_a_429_after_retry_after_and_then_streams(openrouter, fake_openrouter):
    fake_openrouter.script(Fail(429, "Rate limit exceeded", retry_after="3"), Reply(text="fine"))
    assert openrouter.chat_stream({"model": "m", "messages": MESSAGES}).collect().content == "fine"
    assert openrouter.slept == [3.0]


def test_a_402_carries_its_metadata_and_is_permanent(openrouter, fake_openrouter):
    fake_openrouter.script(Fail(402, "Insufficient credits", retry_after="30", metadata={"needed": 0.5}))
    with pytest.raises(OpenRouterError) as caught:
        openrouter.chat({"model": "m", "messages": MESSAGES})
    assert (
        caught.value.permanent and caught.value.metadata == {"needed": 0.5} and caught.value.retry_after == 30
    )


def test_a_wrong_key_is_a_permanent_401(fake_openrouter):
    with pytest.raises(OpenRouterError) as caught:
        OpenRouterClient(api_key="sk-or-wrong").chat({"model": "m", "messages": MESSAGES})
    assert caught.value.status == 401 and caught.value.permanent


def test_a_slow_first_token_with_keepalives_is_not_a_timeout(fake_openrouter):
    fake_openrouter.script(Reply(text="late but fine", keepalives=6, first_token_delay=1.2))
    client = OpenRouterClient(idle_timeout=0.5)
    assert client.chat_stream({"model": "m", "messages": MESSAGES}).collect().content == "late but fine"


def test_silence_between_chunks_times_out(fake_openrouter):
    fake_openrouter.script(Stall(3.0))
    client = OpenRouterClient(idle_timeout=0.4)
    stream = client.chat_stream({"model": "m", "messages": MESSAGES})
    started = time.monotonic()
    with pytest.raises(OpenRouterError) as caught:
        stream.collect()
    assert caught.value.code == "timeout" and not caught.value.permanent
    assert time.monotonic() - started < 2.0


def test_a_server_that_never_accepts_times_out_on_connect(settings):
    # A listening socket whose backlog is full: the kernel drops further SYNs, so connect hangs.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(4):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            fillers.append(s)
        client = OpenRouterClient(
            base_url=f"http://127.0.0.1:{port}/api/v1", api_key="k", connect_timeout=0.5
        )
        started = time.monotonic()
        with pytest.raises(OpenRouterError) as caught:
            client.chat({"model": "m", "messages": MESSAGES})
        assert caught.value.code == "timeout"
        assert time.monotonic() - started < 3.0
    finally:
        for s in fillers:
            s.close()
        listener.close()


def test_an_unreachable_server_is_a_clear_error(settings):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    client = OpenRouterClient(base_url=f"http://127.0.0.1:{port}/api/v1", api_key="k")
    with pytest.raises(OpenRouterError) as caught:
        client.chat({"model": "m", "messages": MESSAGES})
    assert caught.value.code == "unreachable"


def test_cancel_from_another_thread_stops_the_stream_within_a_second(openrouter, fake_openrouter):
    fake_openrouter.script(Stall(20.0, keepalive_every=0.0))
    stream = openrouter.chat_stream({"model": "m", "messages": MESSAGES})
    outcome: dict = {}

    def read() -> None:
        try:
            stream.collect()
        except OpenRouterError as exc:
            outcome["error"] = exc
        outcome["at"] = time.monotonic()

    reader = threading.Thread(target=read)
    reader.start()
    time.sleep(0.3)
    cancelled_at = time.monotonic()
    stream.cancel()
    reader.join(5)
    assert not reader.is_alive()
    assert outcome["error"].code == "cancelled"
    assert outcome["at"] - cancelled_at < 1.0


def test_cancel_stops_a_stream_that_keeps_sending(openrouter, fake_openrouter):
    fake_openrouter.script(Reply(text="x" * 400, fragment=1, chunk_delay=0.05))
    stream = openrouter.chat_stream({"model": "m", "messages": MESSAGES})
    received = []
    with pytest.raises(OpenRouterError) as caught:
        for piece in stream:
            received.append(piece)
            if len(received) == 5:
                threading.Thread(target=stream.cancel).start()
    assert caught.value.code == "cancelled" and len(received) < 100
    # what came before the cancel is kept, and the completion says how it ended
    completion = stream.completion
    assert completion.content == "".join(received) and completion.finish_reason == "error"
    assert completion.error is caught.value


ARGUMENTS = '{"city": "Munich", "unit": "celsius"}'


def test_a_stream_that_falls_silent_midway_keeps_the_tool_call_it_had(fake_openrouter):
    # the role event, then three fragments of three characters of the arguments; then silence
    call = Tool("weather", ARGUMENTS, id="call_w")
    fake_openrouter.script(Reply(tools=[call], finish_reason=None, silent_after=4, silence=1.0))
    client = OpenRouterClient(idle_timeout=0.4)
    stream = client.chat_stream({"model": "m", "messages": MESSAGES, "tools": [WEATHER]})
    with pytest.raises(OpenRouterError) as caught:
        stream.collect()
    completion = stream.completion
    assert caught.value.code == "timeout" and completion.error is caught.value
    assert completion.finish_reason == "error"
    [call] = completion.tool_calls
    assert (call.id, call.name, call.arguments) == ("call_w", "weather", ARGUMENTS[:9])


def test_a_stream_whose_connection_is_cut_keeps_the_text_it_had(openrouter, fake_openrouter):
    fake_openrouter.script(Reply(text="Sunny, 21 degrees in Munich.", fragment=5, cut_after=3))
    stream = openrouter.chat_stream({"model": "m", "messages": MESSAGES})
    received = []
    with pytest.raises(OpenRouterError) as caught:
        for piece in stream:
            received.append(piece)
    completion = stream.completion
    assert caught.value.code == "connection_lost" and completion.error is caught.value
    assert completion.content == "".join(received) == "Sunny, 21 degre"  # three fragments of five
    assert completion.finish_reason == "error" and completion.tool_calls == []


def test_models_reads_string_prices_and_marks_unpriced_models(openrouter):
    models = {m.id: m for m in openrouter.models()}
    gpt = models["openai/gpt-4o"]
    assert gpt.prompt_price == Decimal("0.0000025") and gpt.completion_price == Decimal("0.00001")
    assert gpt.context_length == 128000 and "tools" in gpt.supported_parameters
    assert gpt.max_completion_tokens == 16384
    auto = models["openrouter/auto"]
    assert auto.prompt_price is None and auto.completion_price is None


def test_key_reads_limit_remaining_and_usage(openrouter):
    key = openrouter.key()
    assert key.limit == Decimal("20.0") and key.remaining == Decimal("17.5") and key.usage == Decimal("2.5")


def test_generation_is_retried_briefly_on_404(openrouter, fake_openrouter):
    fake_openrouter.generations["gen-9"] = {"id": "gen-9", "total_cost": 0.0031}
    fake_openrouter.generation_404s["gen-9"] = 2
    assert openrouter.generation("gen-9")["total_cost"] == 0.0031
    assert openrouter.slept == [0.5, 0.5]


def test_generation_gives_up_on_a_generation_that_never_appears(openrouter):
    with pytest.raises(OpenRouterError) as caught:
        openrouter.generation("gen-missing", attempts=3)
    assert caught.value.status == 404 and len(openrouter.slept) == 2


def test_a_500_before_the_stream_is_not_repeated_by_the_client(openrouter, fake_openrouter):
    # OpenRouter documents 408, 429, 502 and 503 as retryable; anything else is the caller's to decide
    fake_openrouter.script(Fail(500, "Internal error"), Reply(text="never reached"))
    with pytest.raises(OpenRouterError) as caught:
        openrouter.chat_stream({"model": "m", "messages": MESSAGES})
    assert caught.value.status == 500 and not caught.value.permanent and openrouter.slept == []
    assert len(fake_openrouter.chat_bodies()) == 1


@pytest.mark.parametrize(
    "turn",
    [Fail(429, "Rate limited", retry_after="5"), Reply(text="late", headers_delay=30)],
    ids=["in-a-retry-backoff", "before-the-headers"],
)
def test_a_cancel_ends_the_call_before_the_server_has_answered(fake_openrouter, settings, turn):
    settings.HTTP_MAX_RETRIES = 3  # the 429 is retried after its Retry-After, sleeping for real
    fake_openrouter.script(turn, Reply(text="never asked for"))
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    with pytest.raises(OpenRouterError) as exc:
        OpenRouterClient().chat_stream({"model": "m", "messages": MESSAGES}, cancel=cancel)
    assert exc.value.code == "cancelled" and exc.value.permanent
    # The caller went on while the provider still held the request (or the client its backoff).
    assert len(fake_openrouter.chat_bodies()) == 1
