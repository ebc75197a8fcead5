/**
 * The HTTP listener: /health, /metrics, JSON 404 and 500, routes mounted after start.
 * References: Prometheus text format 0.0.4, RFC 9110 §15.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { pino } from "pino";
import { silentLogger } from "../observability/logger.ts";
import { createMetrics, type Metrics } from "../observability/metrics.ts";
import { type HttpServer, startHttp } from "./http.ts";

describe("startHttp", () => {
  let http: HttpServer;
  let metrics: Metrics;
  let base: string;
  const lines: Array<{ level: number; msg: string }> = [];
  before(async () => {
    metrics = createMetrics({ defaultMetrics: false });
    const log = pino({ level: "debug" }, { write: (s: string) => lines.push(JSON.parse(s)) });
    http = await startHttp({ port: 0, bind: "127.0.0.1", metrics, log });
    base = `http://127.0.0.1:${http.port}`;
  });
  after(() => http.close());

  test("GET /health", async () => {
    const res = await fetch(`${base}/health`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /^application\/json/);
    assert.deepEqual(await res.json(), { status: "ok" });
  });

  test("GET /metrics in the Prometheus text format", async () => {
    metrics.stanzas.inc({ kind: "message", outcome: "delivered" });
    const res = await fetch(`${base}/metrics`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), metrics.registry.contentType);
    const body = await res.text();
    assert.match(body, /^# HELP hanse_stanzas_total /m);
    assert.match(body, /^hanse_stanzas_total\{kind="message",outcome="delivered"\} 1$/m);
  });

  test("unknown paths are a JSON 404", async () => {
    const res = await fetch(`${base}/nope`);
    assert.equal(res.status, 404);
    assert.deepEqual(await res.json(), { error: "not found" });
  });

  test("a wrong method on a known path is 405", async () => {
    const res = await fetch(`${base}/health`, { method: "POST" });
    assert.equal(res.status, 405);
    await res.arrayBuffer();
  });

  test("routes mounted after start are served", async () => {
    http.router.get("/late", (ctx) => {
      ctx.body = { late: true };
    });
    const res = await fetch(`${base}/late`);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { late: true });
  });

  test("a throwing handler is a JSON 500 and a log line, and the server carries on", async () => {
    http.router.get("/boom", () => {
      throw new Error("kaputt");
    });
    const res = await fetch(`${base}/boom`);
    assert.equal(res.status, 500);
    assert.deepEqual(await res.json(), { error: "internal server error" });
    const logged = lines.find((l) => l.level === 50 && l.msg === "HTTP handler failed");
    assert.ok(logged);
    assert.match(JSON.stringify(logged), /kaputt/);
    assert.equal((await fetch(`${base}/health`)).status, 200);
  });

  test("ctx.throw(4xx) keeps its status and message", async () => {
    http.router.get("/bad", (ctx) => ctx.throw(400, "missing parameter"));
    const res = await fetch(`${base}/bad`);
    assert.equal(res.status, 400);
    assert.deepEqual(await res.json(), { error: "missing parameter" });
  });

  test("requests are logged at debug", () => {
    assert.ok(lines.some((l) => l.level === 20 && l.msg === "http request"));
  });

  test("a port in use gives a clear message", async () => {
    await assert.rejects(startHttp({ port: http.port, bind: "127.0.0.1", metrics, log: silentLogger() }), {
      name: "ListenError",
      message: `port ${http.port} on 127.0.0.1 is already in use (http)`,
    });
  });
});
