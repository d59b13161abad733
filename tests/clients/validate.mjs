// Validates a captured stream with the protocol's own schemas: `node validate.mjs agui|aisdk FILE`.
// AG-UI: every event against @ag-ui/core's EventSchema, and the sequence through @ag-ui/client's
// verifyEvents. AI SDK: every chunk against ai's uiMessageChunkSchema, and `[DONE]` last.
// Prints {"events": N, "failures": [...]} and exits 1 when anything failed.
import { readFileSync } from "node:fs";
import { EventSchema } from "@ag-ui/core/schemas";
import { verifyEvents } from "@ag-ui/client";
import { uiMessageChunkSchema } from "ai";
import { from, lastValueFrom, toArray } from "rxjs";
import { sseData } from "./sse.mjs";

export async function validate(protocol, text) {
  const frames = sseData(text);
  const failures = [];
  if (protocol === "agui") {
    const events = [];
    frames.forEach((data, index) => {
      const parsed = EventSchema.safeParse(JSON.parse(data));
      if (parsed.success) events.push(parsed.data);
      else failures.push({ index, event: data.slice(0, 200), error: parsed.error.issues.slice(0, 3) });
    });
    try {
      await lastValueFrom(from(events).pipe(verifyEvents(false), toArray()));
    } catch (error) {
      failures.push({ sequence: String(error.message || error) });
    }
    return { events: frames.length, failures };
  }
  const schema = uiMessageChunkSchema();
  if (frames.at(-1) !== "[DONE]") failures.push({ sequence: "the stream does not end with [DONE]" });
  const chunks = frames.filter((d, i) => !(d === "[DONE]" && i === frames.length - 1));
  for (const [index, data] of chunks.entries()) {
    const result = await schema.validate(JSON.parse(data));
    if (!result.success) failures.push({ index, chunk: data.slice(0, 200), error: String(result.error).slice(0, 300) });
  }
  return { events: chunks.length, failures };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [protocol, file] = process.argv.slice(2);
  const report = await validate(protocol, readFileSync(file, "utf8"));
  console.log(JSON.stringify(report));
  process.exit(report.failures.length ? 1 : 0);
}
