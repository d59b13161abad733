// Drives HttpAgent (unchanged) against the HQ's AG-UI endpoint: `node agui-run.mjs '<json config>'`.
// Config: {url, token, threadId, message, approve?: bool}. Sends the message; when the run ends with
// the interrupt outcome and `approve` is given, resumes with every interrupt answered. Prints the
// agent's messages and state, each run's outcome, and every run's captured stream, validated.
import { HttpAgent } from "@ag-ui/client";
import { teeFetch } from "./sse.mjs";
import { validate } from "./validate.mjs";

const config = JSON.parse(process.argv[2]);
const captured = [];
const agent = new HttpAgent({
  url: config.url,
  headers: { Authorization: `Bearer ${config.token}` },
  threadId: config.threadId,
  fetch: teeFetch(captured),
});
agent.addMessage({ id: "user-1", role: "user", content: config.message });

async function run(input) {
  const seen = { outcome: null, error: null, types: [] };
  const subscriber = {
    onEvent: ({ event }) => void seen.types.push(event.type),
    onRunFinishedEvent: ({ event }) => void (seen.outcome = event.outcome ?? null),
    onRunErrorEvent: ({ event }) => void (seen.runError = { message: event.message, code: event.code }),
  };
  try {
    const { result } = await agent.runAgent(input, subscriber);
    seen.result = result ?? null;
  } catch (error) {
    seen.error = String(error.message || error);
  }
  return seen;
}

const runs = [await run({ runId: "ui-run-1" })];
if (config.approve !== undefined && agent.pendingInterrupts?.length) {
  runs[0].interrupts = agent.pendingInterrupts;
  const resume = agent.pendingInterrupts.map((i) => ({
    interruptId: i.id,
    status: "resolved",
    payload: { approved: config.approve },
  }));
  runs.push(await run({ runId: "ui-run-2", resume }));
}
for (const entry of captured) await entry.done;
const streams = [];
for (const entry of captured) streams.push({ status: entry.status, ...(await validate("agui", entry.body)) });
console.log(JSON.stringify({ runs, streams, messages: agent.messages, state: agent.state }));
