/**
 * The real `hanse` command as a child process, for end-to-end tests of the CLI, restarts, signals
 * and crash recovery (things the in-process server/testing/broker.ts cannot show).
 *
 * - `runHanse(args)` runs one command to completion and returns its exit code and output.
 * - `startBrokerProcess()` writes a TOML config with free loopback ports into a temp dir, spawns
 *   `hanse start --config`, and resolves once the "Hanse is serving" block is on stdout (the
 *   listeners are bound before it is printed).
 *
 * Every child is tracked: anything still running when the test process exits is SIGKILLed, so a
 * failed assertion never leaves a broker behind. Tests should still stop theirs (t.after).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { stringify } from "smol-toml";
import { embeddedDataDirFromTemplate, tempDataDir } from "../../server/storage/testing.ts";
import { connectClient, type TestClient } from "./xmpp-client.ts";

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const MAIN = join(REPO_ROOT, "server", "main.ts");
/** tsx's loader as a file URL, so the CLI runs from any working directory (`--import tsx` resolves from the cwd). */
const TSX = import.meta.resolve("tsx");

const children = new Set<ChildProcess>();
let exitHooked = false;

function track(child: ChildProcess): void {
  children.add(child);
  // A running child (and its pipes) must not keep the test process alive: if a test fails before
  // its cleanup, the process should still reach "exit" and the hook below. Every wait on a child
  // in this file has its own (ref'd) timeout timer, which keeps the loop alive meanwhile.
  child.unref();
  for (const stream of [child.stdin, child.stdout, child.stderr]) {
    (stream as { unref?: () => void } | null)?.unref?.();
  }
  child.once("exit", () => children.delete(child));
  if (!exitHooked) {
    exitHooked = true;
    // Last resort: a test that threw before its cleanup must not leak a broker (or its database).
    process.once("exit", () => {
      for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
    });
  }
}

/** The environment for a child: ours minus HANSE_* (a developer's shell must not leak in) and node:test's marker. */
function childEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith("HANSE_") || k === "NODE_TEST_CONTEXT") continue;
    env[k] = v;
  }
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

export interface RunOptions {
  readonly cwd?: string;
  readonly env?: Record<string, string | undefined>;
  /** Written to stdin, which is then closed (stdin is always closed: it is never a TTY here). */
  readonly input?: string;
  readonly timeoutMs?: number;
}

export interface RunResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Spawns `node --import tsx server/main.ts ...args`. */
export function spawnHanse(
  args: readonly string[],
  opts: Omit<RunOptions, "input" | "timeoutMs"> = {},
): ChildProcess {
  const child = spawn(process.execPath, ["--import", TSX, MAIN, ...args], {
    cwd: opts.cwd ?? REPO_ROOT,
    env: childEnv(opts.env),
    stdio: ["pipe", "pipe", "pipe"],
  });
  track(child);
  return child;
}

/** Runs one `hanse` command to completion. Rejects only if it outlives `timeoutMs` (then it is killed). */
export function runHanse(args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const child = spawnHanse(args, opts);
  let stdout = "";
  let stderr = "";
  child.stdout!.setEncoding("utf8").on("data", (s: string) => {
    stdout += s;
  });
  child.stderr!.setEncoding("utf8").on("data", (s: string) => {
    stderr += s;
  });
  child.stdin!.on("error", () => {}); // EPIPE if it exits without reading
  child.stdin!.end(opts.input ?? "");
  const timeoutMs = opts.timeoutMs ?? 60_000;
  return new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`hanse ${args.join(" ")} did not finish within ${timeoutMs} ms\n${stdout}${stderr}`));
    }, timeoutMs);
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      resolvePromise({ code, signal, stdout, stderr });
    });
  });
}

/** A loopback port nobody listens on right now (listen on 0, close). */
export function freePort(): Promise<number> {
  return new Promise((resolvePromise, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolvePromise(port));
    });
  });
}

export interface Ports {
  readonly c2s: number;
  readonly c2sTls: number;
  readonly http: number;
}

export async function freePorts(): Promise<Ports> {
  // Held open together so the three are distinct.
  const servers = await Promise.all(
    [0, 1, 2].map(
      () =>
        new Promise<import("node:net").Server>((res, rej) => {
          const s = createServer();
          s.once("error", rej);
          s.listen(0, "127.0.0.1", () => res(s));
        }),
    ),
  );
  const ports = servers.map((s) => (s.address() as { port: number }).port);
  await Promise.all(servers.map((s) => new Promise((res) => s.close(res))));
  return { c2s: ports[0]!, c2sTls: ports[1]!, http: ports[2]! };
}

export interface BrokerProcessOptions {
  /** Reuse a data directory (restarts); default: a new temp dir (`<dir>/data`). */
  readonly dataDir?: string;
  /**
   * Seed an embedded data dir that has no database yet with the cached PGlite template (skips a
   * 5–7 s initdb). Default true; false = the broker creates its database itself.
   */
  readonly template?: boolean;
  /** `[database] url`: the PostgreSQL engine instead of the embedded one. */
  readonly databaseUrl?: string;
  readonly domain?: string;
  /** `[log] level`; default "info" (tests grep the log). */
  readonly logLevel?: string;
  /** More config, merged one level deep over the generated one (e.g. `{ c2s: { require_tls: false } }`). */
  readonly config?: Record<string, unknown>;
  /** Fixed ports (default: free ones, picked again if one was taken meanwhile). */
  readonly ports?: Ports;
  readonly env?: Record<string, string | undefined>;
  /** How long to wait for "Hanse is serving" (default 60 s: a fresh data dir runs initdb). */
  readonly timeoutMs?: number;
}

export interface ExitStatus {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export interface BrokerProcess {
  readonly pid: number;
  readonly ports: Ports;
  readonly domain: string;
  readonly dataDir: string;
  /** Undefined when started without a config file. */
  readonly configPath: string | undefined;
  /** The broker's certificate (PEM), for the client's `ca`. */
  readonly certPem: string;
  /** Milliseconds from spawn to the "Hanse is serving" block. */
  readonly startMs: number;
  /** stdout + stderr so far. */
  output(): string;
  stdout(): string;
  stderr(): string;
  /** Resolves when stdout+stderr match `pattern` (already or later); rejects after `timeoutMs`. */
  waitForOutput(pattern: RegExp, timeoutMs?: number): Promise<void>;
  /**
   * Resolves when the process has exited. The child does not keep the loop alive: await this
   * together with a timer (stop() and kill9() do).
   */
  readonly exited: Promise<ExitStatus>;
  /** Sends `signal` (default SIGTERM) and waits for the exit; SIGKILLs and rejects after `timeoutMs`. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<ExitStatus & { ms: number }>;
  /** kill -9, then waits for the exit. */
  kill9(): Promise<ExitStatus>;
  /** Runs `hanse ...args --config <this broker's config>` (same cwd and environment as the broker). */
  cli(args: readonly string[], opts?: RunOptions): Promise<RunResult>;
  /** Logs in over STARTTLS on the c2s port, trusting the broker's certificate. */
  login(username: string, password: string): Promise<TestClient>;
}

function mergeConfig(base: Record<string, unknown>, extra: Record<string, unknown>): Record<string, unknown> {
  const out = { ...base };
  for (const [key, value] of Object.entries(extra)) {
    const current = out[key];
    out[key] =
      typeof value === "object" && value !== null && typeof current === "object" && current !== null
        ? { ...(current as Record<string, unknown>), ...(value as Record<string, unknown>) }
        : value;
  }
  return out;
}

class StartFailed extends Error {
  constructor(
    message: string,
    readonly output: string,
  ) {
    super(message);
  }
}

/**
 * Starts `hanse start --config FILE` and waits until it serves. Rejects (with the child's output
 * in the message) if it exits or times out first; the child is killed in that case.
 */
export interface PreparedBroker {
  readonly configPath: string;
  /** The config's directory, also the child's working directory. */
  readonly configDir: string;
  readonly dataDir: string;
  readonly ports: Ports;
  readonly domain: string;
}

/**
 * Writes the config (and seeds the data dir from the template unless told not to) without
 * starting anything: for tests that expect `hanse start` to fail (`runHanse(["start", "--config",
 * prepared.configPath])`).
 */
export async function prepareBroker(opts: BrokerProcessOptions = {}): Promise<PreparedBroker> {
  const dataDir = opts.dataDir ?? join(tempDataDir("hanse-proc-"), "data");
  if (!opts.databaseUrl && (opts.template ?? true) && !existsSync(join(dataDir, "db", "PG_VERSION"))) {
    await embeddedDataDirFromTemplate(dataDir);
  }
  const ports = opts.ports ?? (await freePorts());
  const domain = opts.domain ?? "localhost";
  const configDir = tempDataDir("hanse-conf-");
  const configPath = join(configDir, "hanse.toml");
  const base: Record<string, unknown> = {
    domain,
    data_dir: dataDir,
    c2s: { port: ports.c2s, tls_port: ports.c2sTls, bind: "127.0.0.1" },
    http: { port: ports.http, bind: "127.0.0.1" },
    s2s: { port: 0, dns: false }, // no federation listener or DNS unless a test asks
    log: { level: opts.logLevel ?? "info" },
    ...(opts.databaseUrl ? { database: { url: opts.databaseUrl, max_connections: 4 } } : {}),
  };
  writeFileSync(configPath, stringify(mergeConfig(base, opts.config ?? {})));
  return { configPath, configDir, dataDir, ports, domain };
}

/**
 * Starts `hanse start --config FILE` and waits until it serves. Rejects (with the child's output
 * in the message) if it exits or times out first; the child is killed in that case.
 */
export async function startBrokerProcess(opts: BrokerProcessOptions = {}): Promise<BrokerProcess> {
  for (let attempt = 0; ; attempt++) {
    const prepared = await prepareBroker(opts);
    try {
      return await startPrepared(opts, prepared);
    } catch (err) {
      // Another process took one of our free ports between the probe and the bind: pick again.
      const raced = err instanceof StartFailed && /already in use/.test(err.output) && !opts.ports;
      if (!raced || attempt >= 2) throw err;
    }
  }
}

function startPrepared(opts: BrokerProcessOptions, prepared: PreparedBroker): Promise<BrokerProcess> {
  return launchBroker({
    cwd: prepared.configDir,
    configPath: prepared.configPath,
    dataDir: prepared.dataDir,
    domain: prepared.domain,
    ports: prepared.ports,
    ...(opts.env && { env: opts.env }),
    ...(opts.timeoutMs !== undefined && { timeoutMs: opts.timeoutMs }),
  });
}

export interface LaunchSpec {
  /** The child's working directory (a relative data_dir is resolved against it). */
  readonly cwd: string;
  /** Passed as `--config` to `start` and to cli(); absent = no config file at all. */
  readonly configPath?: string;
  /** Where the broker will keep its data (for certPem and the tests). */
  readonly dataDir: string;
  readonly domain: string;
  /** The ports the configuration (or the environment) asks for. */
  readonly ports: Ports;
  readonly env?: Record<string, string | undefined>;
  readonly timeoutMs?: number;
}

/** Spawns `hanse start` as described and waits for "Hanse is serving" (lower level than startBrokerProcess). */
export async function launchBroker(spec: LaunchSpec): Promise<BrokerProcess> {
  const { configPath, cwd, dataDir, ports, domain } = spec;
  const started = performance.now();
  const child = spawnHanse(configPath ? ["start", "--config", configPath] : ["start"], {
    cwd,
    ...(spec.env && { env: spec.env }),
  });
  let out = "";
  let err = "";
  const listeners = new Set<() => void>();
  const changed = () => {
    for (const fn of listeners) fn();
  };
  child.stdout!.setEncoding("utf8").on("data", (s: string) => {
    out += s;
    changed();
  });
  child.stderr!.setEncoding("utf8").on("data", (s: string) => {
    err += s;
    changed();
  });
  child.stdin!.end();
  const exited = new Promise<ExitStatus>((res) => {
    child.once("close", (code, signal) => {
      res({ code, signal });
      changed();
    });
  });
  let exitStatus: ExitStatus | undefined;
  void exited.then((s) => {
    exitStatus = s;
  });

  const output = () => out + err;
  const waitForOutput = (pattern: RegExp, timeoutMs = 10_000) =>
    new Promise<void>((res, rej) => {
      const check = () => {
        if (pattern.test(output())) {
          finish();
          res();
        }
      };
      const timer = setTimeout(() => {
        finish();
        rej(new Error(`no output matching ${pattern} within ${timeoutMs} ms; output:\n${output()}`));
      }, timeoutMs);
      const finish = () => {
        clearTimeout(timer);
        listeners.delete(check);
      };
      listeners.add(check);
      check();
    });

  // The whole block ends with the "data" line; it is one write, but do not rely on chunking.
  const serving = /Hanse is serving[^\n]*\n(?:[^\n]*\n)*? {2}data [^\n]*\n/;
  const timeoutMs = spec.timeoutMs ?? 60_000;
  await new Promise<void>((res, rej) => {
    let timer: NodeJS.Timeout | undefined;
    const check = () => {
      if (serving.test(out)) done(res);
      else if (exitStatus || child.exitCode !== null || child.signalCode !== null) {
        // Let the exit's last output arrive (close fires after the pipes end).
        void exited.then((s) =>
          done(() =>
            rej(
              new StartFailed(
                `hanse start exited (${s.code ?? s.signal}) before serving:\n${output()}`,
                output(),
              ),
            ),
          ),
        );
      }
    };
    const done = (fn: () => void) => {
      clearTimeout(timer);
      listeners.delete(check);
      fn();
    };
    timer = setTimeout(() => {
      child.kill("SIGKILL");
      done(() =>
        rej(new StartFailed(`hanse start did not serve within ${timeoutMs} ms:\n${output()}`, output())),
      );
    }, timeoutMs);
    listeners.add(check);
    check();
  });
  const startMs = Math.round(performance.now() - started);

  const certPath = join(dataDir, "certs", `${domain.toLowerCase()}.crt`);
  const certPem = readFileSync(certPath, "utf8");

  const stop = async (signal: NodeJS.Signals = "SIGTERM", stopTimeoutMs = 15_000) => {
    const t0 = performance.now();
    if (!exitStatus) child.kill(signal);
    let timer: NodeJS.Timeout | undefined;
    const status = await Promise.race([
      exited,
      new Promise<never>((_, rej) => {
        timer = setTimeout(() => {
          child.kill("SIGKILL");
          rej(
            new Error(
              `broker pid ${child.pid} did not exit within ${stopTimeoutMs} ms of ${signal}\n${output()}`,
            ),
          );
        }, stopTimeoutMs);
      }),
    ]).finally(() => clearTimeout(timer));
    return { ...status, ms: Math.round(performance.now() - t0) };
  };

  return {
    pid: child.pid!,
    ports,
    domain,
    dataDir,
    configPath,
    certPem,
    startMs,
    output,
    stdout: () => out,
    stderr: () => err,
    waitForOutput,
    exited,
    stop,
    kill9: () => stop("SIGKILL", 10_000),
    cli: (args, runOpts) =>
      runHanse(configPath ? [...args, "--config", configPath] : args, {
        cwd,
        ...(spec.env && { env: spec.env }),
        ...runOpts,
      }),
    login: (username, password) =>
      connectClient({ service: `xmpp://127.0.0.1:${ports.c2s}`, domain, username, password, ca: certPem }),
  };
}

/** A password file for `--password-file` (first line is the password). */
export function writePasswordFile(password: string): string {
  const dir = tempDataDir("hanse-pw-");
  mkdirSync(dir, { recursive: true });
  const path = join(dir, "password");
  writeFileSync(path, `${password}\n`, { mode: 0o600 });
  return path;
}
