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

Topics: `hq`, `engine`, `selfheal`, `logs`, `codehealth`, `routing`, `chat`, and `chat.run.<id>` per chat
run (readable by the run's session owner only; anyone else gets 404).

### A chat run's events (topic `chat.run.<id>`)

Every envelope's `data` carries `run_id`; the OpenAPI document types each (`ChatRun<Type>Event`, in the
union `EnvelopeOut`). In order, a run publishes `run_started` once, then for each
step `status`, `token`, `tool_start` / `tool_result`, `budget` and `guardrails` events, and exactly one
`stop_reason`, always last. `GET /api/chat/runs/{id}` gives the same state in one answer, with
`last_seq` to replay from.

| `type` | `data` |
|---|---|
| `run_started` | `session_id`, `mode`, `resumed_from` (a run id or null) |
| `status` | `phase`: `routing`, `calling_model` (+ `model`), `waiting_first_token`, `streaming`, `tool_running` (+ `tool_call_ids`), `waiting_approval` (+ `approvals`: `[{tool_call_id, name, args}]`, or a `decision`), `retrying` (+ `attempt`, `error`, `discard_partial`: drop the text streamed so far), `queued` (approved, about to go on); and `status` (the run's) |
| `token` | `delta` (text, coalesced: about one event per 75 ms of streaming), `iteration` |
| `tool_start` | `tool_call_id`, `name`, `args`, `needs_approval` |
| `tool_result` | `tool_call_id`, `name`, `ok`, `output` (when ok) or `error`, `duration_ms` (null when it did not run: denied, blocked, unknown tool) |
| `budget` | `steps`, `iterations`, `wall_seconds`, `cost_usd`, `retries`: each `{used, limit}` (after every model call, failed call and tool step); `crossed` (when this change passed thresholds of `CHAT_BUDGET_THRESHOLDS`): `[{meter, percent, used, limit}]`, each crossing told once; wall-time crossings come in a `budget` event of their own |
| `guardrails` | `rule` (`repeated_failure`, `same_result`, `ping_pong`, `repeated_text`, `no_new_info`, `no_tool_calls`, `model_error`), `action` (`observe`, `steer`, `block`, `stop`), `fingerprint`, `streak`, `message` |
| `stop_reason` | `reason` (`completed`, `max_iterations`, `budget_exceeded`, `time_limit`, `stuck_loop`, `guardrail_blocked`, `length`, `content_filter`, `model_error`, `cancelled`, `interrupted`), `detail` (a sentence), `action` (what lets the work go on) |

Frontends built on AG-UI or the Vercel AI SDK need not translate these: the chat streams a run in
either protocol itself (`POST /api/chat/agui`, `POST /api/chat/ui-stream`, below).
"""
