/**
 * The HTTP listener: /metrics for Prometheus, /health for load balancers and probes, and a router
 * modules mount their routes on (portal, REST API, BOSH/WebSocket later).
 *
 * References: Prometheus text exposition format 0.0.4 (prom-client's contentType), DESIGN.md §2
 * (web/ is a koa app; modules mount through ModuleApi.http), RFC 9110 §15 (status codes).
 */
import http from "node:http";
import Router from "@koa/router";
import Koa from "koa";
import type { Logger } from "../observability/logger.ts";
import type { Metrics } from "../observability/metrics.ts";
import { listenServer } from "./listen.ts";

export interface HttpOptions {
  /** 0 = an ephemeral port (tests); the broker treats http.port = 0 in config as "disabled". */
  readonly port: number;
  readonly bind: string;
  readonly metrics: Metrics;
  readonly log: Logger;
}

export interface HttpServer {
  readonly app: Koa;
  /** Mount routes here, before or after start; they are matched on every request. */
  readonly router: Router;
  readonly server: http.Server;
  /** The bound port (the ephemeral one when asked for port 0). */
  readonly port: number;
  /** Stops accepting, lets in-flight requests finish (up to `graceMs`, default 2 s), then closes. */
  close(graceMs?: number): Promise<void>;
}

/** Koa app with error handling, request logging and the built-in routes, not yet listening. */
export function createHttpApp(opts: Pick<HttpOptions, "metrics" | "log">): { app: Koa; router: Router } {
  const { log, metrics } = opts;
  const app = new Koa();
  const router = new Router();

  app.use(async (ctx, next) => {
    const started = performance.now();
    try {
      await next();
      if (ctx.status === 404 && ctx.body == null) {
        ctx.status = 404;
        ctx.body = { error: "not found" };
      }
    } catch (err) {
      const e = err as Error & { status?: number; expose?: boolean };
      // http-errors thrown on purpose (ctx.throw(400, ...)) keep their status; the rest is our bug.
      const status = typeof e.status === "number" && e.status >= 400 && e.status < 600 ? e.status : 500;
      if (status >= 500) log.error({ err, method: ctx.method, path: ctx.path }, "HTTP handler failed");
      ctx.status = status;
      ctx.body = { error: status < 500 && e.expose ? e.message : http.STATUS_CODES[status]?.toLowerCase() };
    } finally {
      log.debug(
        {
          method: ctx.method,
          path: ctx.path,
          status: ctx.status,
          ms: Math.round((performance.now() - started) * 10) / 10,
        },
        "http request",
      );
    }
  });
  // Koa emits 'error' for failures after the response started (a broken body stream): log, no crash.
  app.on("error", (err: Error) => log.warn({ err }, "HTTP response error"));

  router.get("/health", (ctx) => {
    ctx.body = { status: "ok" };
  });
  router.get("/metrics", async (ctx) => {
    const body = await metrics.registry.metrics();
    ctx.set("Content-Type", metrics.registry.contentType);
    ctx.body = body;
  });

  // The router's dispatcher reads router.stack on each request, so routes mounted after start
  // are served too.
  const routes = router.routes();
  const allowed = router.allowedMethods();
  app.use((ctx, next) => routes(ctx as never, next));
  app.use((ctx, next) => allowed(ctx as never, next));
  return { app, router };
}

/** Starts the HTTP listener; rejects with a ListenError ("port 5280 on 127.0.0.1 is already in use (http)"). */
export async function startHttp(opts: HttpOptions): Promise<HttpServer> {
  const { app, router } = createHttpApp(opts);
  const server = http.createServer(app.callback());
  const port = await listenServer(server, opts.port, opts.bind, "http");
  opts.log.info({ listener: "http", host: opts.bind, port }, "listening");

  let closing: Promise<void> | undefined;
  const close = (graceMs = 2_000): Promise<void> => {
    closing ??= new Promise<void>((resolve) => {
      const timer = setTimeout(() => server.closeAllConnections(), graceMs);
      timer.unref();
      server.close(() => {
        clearTimeout(timer);
        resolve();
      });
      // Keep-alive connections with no request in flight would hold close() open.
      server.closeIdleConnections();
    });
    return closing;
  };
  return { app, router, server, port, close };
}
