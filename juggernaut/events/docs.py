"""How the event stream maps onto the stream protocols frontends already speak (shown in /api/docs)."""

STREAM_DOCS = """
## Live events

Every live update is an envelope
`{"v": 1, "seq": N, "topic": "...", "type": "...", "ts": "...", "run_id": ..., "data": {...}}`;
`seq` rises by one per topic with no gaps. Three ways to read them, all authenticated like the API:

* `GET /api/events/{topic}?after_seq=N`: replay (JSON page).
* `GET /api/events/{topic}/stream`: server-sent events, `id:` = seq, `event:` = type; reconnect with
  `Last-Event-ID` (browsers do it for you) or `?after_seq=N`; `: ping` comments keep proxies open.
* `ws(s)://host/ws/events/` (token in `Authorization` or `?token=`): send
  `{"subscribe": ["topic"], "after_seq": {"topic": N}}`; receive the missed envelopes, then live ones.

Topics: `hq`, `engine`, `selfheal`, `logs`, `codehealth`, `routing`, and `chat.run.<id>` per chat run.

### Mapping a chat run to AG-UI events

| envelope `type` | AG-UI event |
|---|---|
| `run_started` | `RUN_STARTED` (`threadId` = session, `runId` = `run_id`) |
| `token` (`data.text`) | `TEXT_MESSAGE_START` once, then `TEXT_MESSAGE_CONTENT` (`delta` = text) |
| `tool_start` (`data.call_id`, `data.name`, `data.args`) | `TOOL_CALL_START` + `TOOL_CALL_ARGS` |
| `tool_result` (`data.call_id`, `data.result`) | `TOOL_CALL_END` + `TOOL_CALL_RESULT` |
| `status`, `budget`, `guardrails` | `STATE_DELTA` / `CUSTOM` (name = type) |
| `stop_reason` | `TEXT_MESSAGE_END`, then `RUN_FINISHED` (or `RUN_ERROR` when `data.reason` is an error) |

### Mapping to the Vercel AI SDK UI message stream

| envelope `type` | stream part |
|---|---|
| `run_started` | `{"type": "start", "messageId": run_id}` |
| `token` | `text-start` once, then `{"type": "text-delta", "id", "delta": data.text}` |
| `tool_start` | `{"type": "tool-input-available", "toolCallId", "toolName", "input"}` |
| `tool_result` | `{"type": "tool-output-available", "toolCallId", "output"}` |
| `status`, `budget`, `guardrails` | `{"type": "data-<type>", "data": data}` |
| `stop_reason` | `text-end`, `{"type": "finish"}`, then `[DONE]` |
"""
