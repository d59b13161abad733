// Drives DefaultChatTransport + readUIMessageStream (unchanged) against the HQ's UI message stream
// endpoint: `node ui-run.mjs '<json config>'`. Config: {url, token, chatId, message, approve?: bool}.
// Sends the message; when the assistant message asks for approvals and `approve` is given, answers
// them the way useChat's addToolApprovalResponse does and sends again. Prints each request's final
// message, finish reason, errors and protocol header, and every captured stream, validated.
import { DefaultChatTransport, readUIMessageStream } from "ai";
import { teeFetch } from "./sse.mjs";
import { validate } from "./validate.mjs";

const config = JSON.parse(process.argv[2]);
const captured = [];
const transport = new DefaultChatTransport({
  api: config.url,
  headers: { Authorization: `Bearer ${config.token}` },
  fetch: teeFetch(captured),
});
const user = { id: "user-1", role: "user", parts: [{ type: "text", text: config.message }] };

async function send(messages, previous) {
  const seen = { finishReason: null, errors: [], message: null, chunks: [] };
  try {
    const stream = await transport.sendMessages({
      chatId: config.chatId,
      messages,
      trigger: "submit-message",
      messageId: undefined,
      abortSignal: undefined,
    });
    const watched = stream.pipeThrough(
      new TransformStream({
        transform(chunk, controller) {
          seen.chunks.push(chunk.type);
          if (chunk.type === "finish") seen.finishReason = chunk.finishReason ?? null;
          controller.enqueue(chunk);
        },
      }),
    );
    for await (const message of readUIMessageStream({
      stream: watched,
      message: previous,
      onError: (error) => seen.errors.push(String(error.message || error)),
    })) {
      seen.message = message;
    }
  } catch (error) {
    seen.errors.push(String(error.message || error));
  }
  return seen;
}

const sends = [await send([user])];
const first = sends[0].message;
const asking = first?.parts.filter((p) => p.state === "approval-requested") ?? [];
if (config.approve !== undefined && asking.length) {
  const answered = structuredClone(first);
  for (const part of answered.parts) {
    if (part.state === "approval-requested") {
      part.state = "approval-responded";
      part.approval = { ...part.approval, approved: config.approve };
    }
  }
  sends.push(await send([user, answered], answered));
}
for (const entry of captured) await entry.done;
const streams = [];
for (const entry of captured) {
  streams.push({
    status: entry.status,
    header: entry.headers["x-vercel-ai-ui-message-stream"] ?? null,
    ...(await validate("aisdk", entry.body)),
  });
}
console.log(JSON.stringify({ sends, streams }));
