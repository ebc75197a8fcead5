/**
 * Prometheus metrics (prom-client), one registry per broker so tests can run brokers side by side.
 * Served at /metrics on the HTTP listener.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";

export interface Metrics {
  readonly registry: Registry;
  /** Open connections by kind (c2s, s2s-in, s2s-out) and state (connected, authenticated). */
  readonly connections: Gauge<"kind" | "state">;
  /** Stanzas routed by kind (message, presence, iq) and outcome (delivered, bounced, dropped, handled). */
  readonly stanzas: Counter<"kind" | "outcome">;
  /** Failed SASL authentications by mechanism and reason. */
  readonly authFailures: Counter<"mechanism" | "reason">;
  /** Stream errors sent, by condition. */
  readonly streamErrors: Counter<"condition">;
  /** Storage round trips by operation. */
  readonly storageLatency: Histogram<"operation">;
  /** Server-to-server links by remote domain, direction (in, out) and state. */
  readonly s2sLinks: Gauge<"remote" | "direction" | "state">;
  /** Stanzas carried over server-to-server links, by remote domain and direction. */
  readonly s2sStanzas: Counter<"remote" | "direction">;
  /** Failed server-to-server links and authentications, by remote domain and reason. */
  readonly s2sFailures: Counter<"remote" | "reason">;
}

export function createMetrics(opts: { defaultMetrics?: boolean } = {}): Metrics {
  const registry = new Registry();
  if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: registry, prefix: "hanse_" });
  return {
    registry,
    connections: new Gauge({
      name: "hanse_connections",
      help: "Open XMPP connections by kind and state",
      labelNames: ["kind", "state"],
      registers: [registry],
    }),
    stanzas: new Counter({
      name: "hanse_stanzas_total",
      help: "Stanzas routed, by kind and outcome",
      labelNames: ["kind", "outcome"],
      registers: [registry],
    }),
    authFailures: new Counter({
      name: "hanse_auth_failures_total",
      help: "Failed SASL authentications",
      labelNames: ["mechanism", "reason"],
      registers: [registry],
    }),
    streamErrors: new Counter({
      name: "hanse_stream_errors_total",
      help: "Stream errors sent, by condition",
      labelNames: ["condition"],
      registers: [registry],
    }),
    storageLatency: new Histogram({
      name: "hanse_storage_seconds",
      help: "Storage operation latency",
      labelNames: ["operation"],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    }),
    s2sLinks: new Gauge({
      name: "hanse_s2s_links",
      help: "Server-to-server links by remote domain, direction and state",
      labelNames: ["remote", "direction", "state"],
      registers: [registry],
    }),
    s2sStanzas: new Counter({
      name: "hanse_s2s_stanzas_total",
      help: "Stanzas sent (out) and received (in) over server-to-server links",
      labelNames: ["remote", "direction"],
      registers: [registry],
    }),
    s2sFailures: new Counter({
      name: "hanse_s2s_failures_total",
      help: "Server-to-server link and authentication failures, by remote domain and reason",
      labelNames: ["remote", "reason"],
      registers: [registry],
    }),
  };
}
