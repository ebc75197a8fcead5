/**
 * Typed configuration: a TOML file (path from --config or HANSE_CONFIG), then environment
 * overrides, validated with zod. Every key is optional and has a documented default (README
 * "Configuration"); an unknown key or a bad value stops the start with a message naming the key.
 */
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { parse as parseToml } from "smol-toml";
import { z } from "zod";
import { normalizeDomainpart } from "./jid.ts";
import { s2sConfigSchema } from "./s2s/config.ts";

const port = z.number().int().min(0).max(65535);
const domainName = z.string().transform((d, ctx) => {
  try {
    return normalizeDomainpart(d);
  } catch (err) {
    ctx.addIssue({ code: "custom", message: (err as Error).message });
    return z.NEVER;
  }
});

export const configSchema = z
  .object({
    /** The XMPP domain this broker serves. */
    domain: domainName.default("localhost"),
    /** Certificates, the embedded database and the socket live here. */
    data_dir: z.string().min(1).default("./data"),
    c2s: z
      .object({
        /** STARTTLS port (RFC 6120 §5); 0 disables the listener. */
        port: port.default(5222),
        /** Direct TLS port (XEP-0368); 0 disables it. */
        tls_port: port.default(5223),
        bind: z.string().default("0.0.0.0"),
        /** RFC 6120 §5.3.1: refuse SASL until the stream is encrypted. */
        require_tls: z.boolean().default(true),
        /** Seconds a connection has to send its header and authenticate. */
        auth_timeout: z.number().positive().default(30),
        /**
         * Seconds without any traffic (whitespace counts) before the server pings the client
         * (XEP-0199); the stream closes if the ping gets no answer within as long again.
         */
        idle_timeout: z.number().positive().default(300),
        /** Seconds between whitespace keepalives sent by the server (keeps NAT mappings); 0 = off. */
        keepalive_interval: z.number().min(0).default(0),
        /** Connections that have not yet authenticated, in all and from one address. */
        max_unauthenticated: z.number().int().positive().default(1000),
        max_unauthenticated_per_ip: z.number().int().positive().default(50),
        /** Failed SASL attempts allowed on one stream before it is closed. */
        max_auth_failures: z.number().int().positive().default(3),
        /** XEP-0198: seconds a dropped session waits to be resumed; 0 disables resumption. */
        resume_timeout: z.number().min(0).default(300),
        /** XEP-0198: unacknowledged stanzas one session may hold before it is closed. */
        max_unacked: z.number().int().positive().default(10000),
      })
      .strict()
      .prefault({}),
    tls: z
      .object({
        /** PEM certificate chain and key; absent = a self-signed pair in data_dir/certs. */
        cert: z.string().optional(),
        key: z.string().optional(),
      })
      .strict()
      .prefault({}),
    database: z
      .object({
        /** postgres://… switches from the embedded engine to a PostgreSQL server. */
        url: z.string().url().optional(),
        max_connections: z.number().int().positive().default(10),
      })
      .strict()
      .prefault({}),
    limits: z
      .object({
        /** Largest stanza accepted (RFC 6120 §13.12: 10,000 bytes is the minimum a server allows). */
        max_stanza_bytes: z
          .number()
          .int()
          .min(10000)
          .default(256 * 1024),
        /** Deepest element nesting accepted inside a stanza. */
        max_depth: z.number().int().min(4).max(1000).default(32),
        /** Bytes per second a client stream may send before reads are paused. */
        c2s_bytes_per_second: z
          .number()
          .int()
          .positive()
          .default(1024 * 1024),
      })
      .strict()
      .prefault({}),
    /** Federation: server-to-server listener, policy and routes (server/s2s/config.ts). */
    s2s: s2sConfigSchema,
    http: z
      .object({
        /** Metrics, and later the portal; 0 disables it. Loopback by default. */
        port: port.default(5280),
        bind: z.string().default("127.0.0.1"),
      })
      .strict()
      .prefault({}),
    log: z
      .object({
        level: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
      })
      .strict()
      .prefault({}),
    /** Per-module sections, validated against each module's own schema by the broker. */
    modules: z.record(z.string(), z.record(z.string(), z.unknown())).default({}),
  })
  .strict();

export type Config = z.infer<typeof configSchema>;

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

/** Environment variables that override the file (handy in containers and CI). */
const ENV_OVERRIDES: ReadonlyArray<[string, string[], (v: string) => unknown]> = [
  ["HANSE_DOMAIN", ["domain"], String],
  ["HANSE_DATA_DIR", ["data_dir"], String],
  ["HANSE_DATABASE_URL", ["database", "url"], String],
  ["HANSE_LOG_LEVEL", ["log", "level"], String],
  ["HANSE_C2S_PORT", ["c2s", "port"], Number],
  ["HANSE_C2S_TLS_PORT", ["c2s", "tls_port"], Number],
  ["HANSE_C2S_BIND", ["c2s", "bind"], String],
  ["HANSE_S2S_PORT", ["s2s", "port"], Number],
  ["HANSE_S2S_BIND", ["s2s", "bind"], String],
  ["HANSE_HTTP_PORT", ["http", "port"], Number],
  ["HANSE_HTTP_BIND", ["http", "bind"], String],
];

/** Turns zod issues into one line per key: "c2s.port: expected number, received string". */
export function describeIssues(error: z.ZodError, prefix = ""): string {
  return error.issues
    .map((issue) => {
      const path = [prefix, ...issue.path.map(String)].filter(Boolean).join(".");
      if (issue.code === "unrecognized_keys") {
        return issue.keys.map((k) => `${path ? `${path}.` : ""}${k}: unknown key`).join("\n");
      }
      return `${path || "(top level)"}: ${issue.message}`;
    })
    .join("\n");
}

export function parseConfig(raw: unknown, source = "configuration"): Config {
  const result = configSchema.safeParse(raw);
  if (!result.success) throw new ConfigError(`invalid ${source}:\n${describeIssues(result.error)}`);
  return result.data;
}

function setPath(obj: Record<string, unknown>, path: string[], value: unknown): void {
  let node = obj;
  for (const key of path.slice(0, -1)) {
    const next = node[key];
    if (typeof next !== "object" || next === null) node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  node[path[path.length - 1]!] = value;
}

/**
 * Loads the config: the file named by `file` or HANSE_CONFIG (if any), then env overrides.
 * data_dir and TLS paths are resolved against the current directory.
 */
export function loadConfig(file?: string, env: NodeJS.ProcessEnv = process.env): Config {
  const path = file ?? env.HANSE_CONFIG;
  let raw: Record<string, unknown> = {};
  if (path) {
    let text: string;
    try {
      text = readFileSync(path, "utf8");
    } catch (err) {
      throw new ConfigError(`cannot read config file ${path}: ${(err as NodeJS.ErrnoException).code ?? err}`);
    }
    try {
      raw = parseToml(text) as Record<string, unknown>;
    } catch (err) {
      throw new ConfigError(`config file ${path} is not valid TOML: ${(err as Error).message}`);
    }
  }
  for (const [name, keyPath, convert] of ENV_OVERRIDES) {
    const value = env[name];
    if (value === undefined || value === "") continue;
    const converted = convert(value);
    if (typeof converted === "number" && !Number.isFinite(converted)) {
      throw new ConfigError(
        `environment variable ${name}=${value}: expected a number (${keyPath.join(".")})`,
      );
    }
    setPath(raw, keyPath, converted);
  }
  const config = parseConfig(raw, path ? `config file ${path}` : "configuration");
  config.data_dir = resolve(config.data_dir);
  if (config.tls.cert) config.tls.cert = resolve(config.tls.cert);
  if (config.tls.key) config.tls.key = resolve(config.tls.key);
  if (config.s2s.ca_file) config.s2s.ca_file = resolve(config.s2s.ca_file);
  if (Boolean(config.tls.cert) !== Boolean(config.tls.key)) {
    throw new ConfigError("tls.cert and tls.key must be set together");
  }
  return config;
}
