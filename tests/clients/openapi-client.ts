// A frontend's typed client, as openapi-typescript (default flags) and openapi-fetch make it from the
// HQ's live schema: one operation of every area, compiled with `tsc --strict`, then run against a live
// server: `node openapi-client.js '<json config>'`. Config: {baseUrl, token, mode, service}.
// The types do part of the checking: the assignments below compile only when enums are enums, request
// fields with defaults are optional, and errors have the one error shape.
import createClient from "openapi-fetch";
import type { components, paths } from "./api.js";

declare const process: { argv: string[] }; // the one Node global used: no @types/node needed

type Schemas = components["schemas"];
type IngestLine = paths["/api/logs/ingest"]["post"]["requestBody"]["content"]["application/x-ndjson"];

const config = JSON.parse(process.argv[2]) as { baseUrl: string; token: string; mode: string; service: string };
const client = createClient<paths>({
  baseUrl: config.baseUrl,
  headers: { Authorization: `Bearer ${config.token}` },
});
const out: Record<string, unknown> = {};

// system: public, and typed with its enum
const health = await client.GET("/api/health");
const healthStatus: "ok" | "error" | undefined = health.data?.status;
out.health = { code: health.response.status, status: healthStatus };

// tokens
const tokens = await client.GET("/api/tokens");
const tokenStatuses: Array<"active" | "expired" | "revoked"> = (tokens.data ?? []).map((t) => t.status);
out.tokens = { code: tokens.response.status, statuses: tokenStatuses };

// engine: only the required fields (priority, source, payload... have defaults)
const task = await client.POST("/api/engine/tasks", { body: { title: "typed client", kind: "echo" } });
const taskStatus: Schemas["TaskOut"]["status"] | undefined = task.data?.status;
out.task = { code: task.response.status, status: taskStatus, id: task.data?.id };

// events: the replay of the engine's topic; the envelopes are a union
const page = await client.GET("/api/events/{topic}", {
  params: { path: { topic: "engine" }, query: { after_seq: 0 } },
});
out.events = { code: page.response.status, types: (page.data?.events ?? []).map((e) => e.type) };

// chat: a session from its mode alone (title and limits have defaults), then a refusal, typed
const session = await client.POST("/api/chat/sessions", { body: { mode: config.mode } });
const sessionStatus: "idle" | "running" | "waiting_approval" | undefined = session.data?.status;
out.session = { code: session.response.status, status: sessionStatus, messages: session.data?.messages.length };
const missing = await client.GET("/api/chat/runs/{run_id}", { params: { path: { run_id: 2 ** 31 } } });
const refusal: Schemas["ErrorDetail"] | undefined = missing.error?.error;
out.missing = { code: missing.response.status, error: refusal?.code };

// logs: NDJSON, one typed line per row
const line: IngestLine = { service: config.service, timestamp: "2026-01-01T00:00:00Z", message: "boom" };
const ingest = await client.POST("/api/logs/ingest", {
  body: line,
  bodySerializer: (body) => `${JSON.stringify(body)}\n${JSON.stringify({ ...body, message: "boom again" })}\n`,
  headers: { "Content-Type": "application/x-ndjson" },
});
out.ingest = { code: ingest.response.status, accepted: ingest.data?.accepted, rejected: ingest.data?.rejected };

// routing: the policies, their sort an enum
const policies = await client.GET("/api/routing/policies");
const sorts: Array<"" | "price" | "throughput" | "latency"> = (policies.data ?? []).map((p) => p.sort);
out.policies = { code: policies.response.status, modes: (policies.data ?? []).map((p) => p.mode), sorts };

// self-heal
const executions = await client.GET("/api/self-heal/executions");
out.executions = { code: executions.response.status, count: executions.data?.length };

// code health
const repositories = await client.GET("/api/codehealth/repositories");
out.repositories = { code: repositories.response.status, count: repositories.data?.length };

console.log(JSON.stringify(out));
