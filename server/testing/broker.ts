/**
 * Test harness: a real broker on loopback with ephemeral ports, a fresh data directory (the
 * embedded database copied from a template, or a fresh PostgreSQL database) and a silent log.
 * Set HANSE_TEST_LOG=debug to see the broker's log while a test runs.
 */
import { modules as defaultModules } from "../../modules.ts";
import { type Broker, startBroker } from "../broker.ts";
import { type Config, parseConfig } from "../config.ts";
import type { Module } from "../modules/module.ts";
import { createLogger, type LogLevel } from "../observability/logger.ts";
import { type TestEngine, testEngines } from "../storage/testing.ts";

export interface TestBrokerOptions {
  readonly engine?: TestEngine["name"];
  readonly domain?: string;
  /** Raw config overrides merged over the test defaults (sections are merged one level deep). */
  readonly config?: Record<string, unknown>;
  readonly modules?: readonly Module[];
  /** Reuse a data directory (restart tests); the storage config then comes from `reuse`. */
  readonly reuse?: Pick<Config, "data_dir" | "database">;
}

export interface TestBroker extends Broker {
  /** Creates an account (bypassing the CLI) and returns its bare JID. */
  addUser(username: string, password: string): Promise<string>;
}

export async function startTestBroker(opts: TestBrokerOptions = {}): Promise<TestBroker> {
  const engine = testEngines.find((e) => e.name === (opts.engine ?? "embedded"));
  if (!engine) throw new Error(`unknown engine ${opts.engine}`);
  const storage = opts.reuse ?? (await engine.storageConfig());
  const base: Record<string, Record<string, unknown> | string> = {
    domain: opts.domain ?? "localhost",
    data_dir: storage.data_dir,
    database: { ...storage.database },
    c2s: { port: 0, tls_port: 0, bind: "127.0.0.1" },
    http: { port: 0, bind: "127.0.0.1" },
    // Federation on an ephemeral loopback port, routes from the config only: no DNS in tests.
    s2s: { port: 0, bind: "127.0.0.1", dns: false },
    log: { level: (process.env.HANSE_TEST_LOG as LogLevel | undefined) ?? "silent" },
  };
  for (const [key, value] of Object.entries(opts.config ?? {})) {
    const current = base[key];
    base[key] =
      typeof value === "object" && value !== null && typeof current === "object"
        ? { ...current, ...(value as Record<string, unknown>) }
        : (value as string);
  }
  const config = parseConfig(base, "test configuration");
  const broker = await startBroker({
    config,
    modules: opts.modules ?? defaultModules,
    log: createLogger(config.log.level),
    ephemeralPorts: true,
  });
  return {
    ...broker,
    async addUser(username, password) {
      await broker.accounts.create(username, password);
      return `${username}@${broker.domain}`;
    },
  };
}
