/**
 * The servers under test: Hanse (this checkout, as its own process) and, when installed, Prosody
 * and ejabberd (test/interop/peers/*.sh in their "bench" profile: c2s only, tuned). Each runs on its own loopback address so none can meet the
 * others, a developer's broker or the peers a test suite starts. Their state (databases,
 * accounts, certificates) lives in one directory that survives runs, so accounts are made once.
 */
import { type ChildProcess, execFile, spawn, spawnSync } from "node:child_process";
import { createWriteStream, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { processTree } from "./proc-stats.ts";
import type { Endpoint } from "./protocol.ts";
import { log } from "./scenario.ts";
import { scramVerifiers } from "./scram-client.ts";

const run = promisify(execFile);

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
/**
 * The Hanse checkout under test: this one, or BENCH_HANSE_DIR (another worktree, e.g. with an
 * experimental change, measured by this bench against the same peers).
 */
const HANSE_DIR = resolve(process.env.BENCH_HANSE_DIR ?? REPO);
export const STATE = process.env.HANSE_BENCH_STATE ?? join(tmpdir(), "hanse-bench");
export const PASSWORD = "bench-secret";
export const USER_PREFIX = "u";
const PORT = 25222;
/**
 * How Hanse's TypeScript is loaded: "tsx" (as `npm start` does; the default) or "plain"
 * (bench/lib/ts-loader.mjs: esbuild without keepNames, what a build step would give).
 */
const LOADER = process.env.BENCH_HANSE_LOADER === "plain" ? join(REPO, "bench/lib/ts-loader.mjs") : "tsx";

export type ServerName = "hanse" | "prosody" | "ejabberd";

export interface StartOptions {
  /** false: authentication over plain TCP is allowed (the idle-memory runs without TLS). */
  readonly requireTls: boolean;
}

export interface ServerUnderTest {
  readonly name: ServerName;
  /** Why it cannot run here (not installed...), or undefined. */
  readonly unavailable: string | undefined;
  readonly version: string;
  endpoint(tls: boolean): Endpoint;
  /** The server's process tree (for CPU and memory), valid while it runs. */
  pids(): number[];
  start(opts: StartOptions): Promise<void>;
  stop(): Promise<void>;
  /** Makes sure accounts USER_PREFIX0 … USER_PREFIX(n-1) exist (the server may need to be running). */
  ensureAccounts(n: number): Promise<void>;
  /** Hanse only: full GC, then its memory breakdown (process.memoryUsage()). */
  collectGarbage?(): Promise<Record<string, number> | undefined>;
}

function version(pkg: string): string | undefined {
  // biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's own format syntax
  const r = spawnSync("dpkg-query", ["-W", "-f", "${Version}", pkg], { encoding: "utf8" });
  return r.status === 0 && r.stdout ? r.stdout.trim() : undefined;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Whatever is still running when the scenario exits (an error, Ctrl-C) is stopped with it. */
const leftovers = new Set<() => void>();
process.once("exit", () => {
  for (const stop of leftovers) stop();
});
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => process.exit(130));
}

// ---------------------------------------------------------------- Hanse

/** Where one Hanse broker of the bench lives; the defaults are the c2s scenarios' broker. */
export interface HanseOptions {
  /** Its state directory and files under STATE (`hanse`, `hanse.toml`, …). */
  readonly key: string;
  readonly domain: string;
  /** Loopback address of its listeners. */
  readonly host: string;
  /** Federation: its s2s listener port (on `host`) and static routes to other domains. */
  readonly s2s?: { readonly port: number; readonly routes: Readonly<Record<string, string>> };
}

export class Hanse implements ServerUnderTest {
  readonly name = "hanse" as const;
  readonly unavailable = undefined;
  readonly version: string;
  readonly domain: string;
  readonly host: string;
  private readonly s2s: HanseOptions["s2s"];
  private readonly dir: string;
  private readonly configFile: string;
  private readonly memoryFile: string;
  private child: ChildProcess | undefined;

  constructor(opts: HanseOptions = { key: "hanse", domain: "hanse.bench.test", host: "127.0.1.1" }) {
    this.domain = opts.domain;
    this.host = opts.host;
    this.s2s = opts.s2s;
    this.dir = join(STATE, opts.key);
    this.configFile = join(STATE, `${opts.key}.toml`);
    this.memoryFile = join(STATE, `${opts.key}-memory.json`);
    const pkg = JSON.parse(readFileSync(join(HANSE_DIR, "package.json"), "utf8")) as { version: string };
    const git = spawnSync("git", ["rev-parse", "--short", "HEAD"], { cwd: HANSE_DIR, encoding: "utf8" });
    const dirty = spawnSync("git", ["status", "--porcelain", "--untracked-files=no"], {
      cwd: HANSE_DIR,
      encoding: "utf8",
    });
    this.version =
      `${pkg.version} (${git.stdout?.trim() || "no git"}${dirty.stdout?.trim() ? "+changes" : ""}), ` +
      `Node ${process.version}${LOADER === "tsx" ? "" : ", no keepNames"}` +
      (HANSE_DIR === REPO ? "" : `, from ${HANSE_DIR}`);
  }

  endpoint(tls: boolean): Endpoint {
    return {
      host: this.host,
      port: PORT,
      domain: this.domain,
      userPrefix: USER_PREFIX,
      password: PASSWORD,
      tls,
    };
  }

  pids(): number[] {
    return this.child?.pid ? processTree(this.child.pid) : [];
  }

  private writeConfig(requireTls: boolean): void {
    mkdirSync(STATE, { recursive: true });
    writeFileSync(
      this.configFile,
      [
        `domain = "${this.domain}"`,
        `data_dir = "${this.dir}"`,
        "[c2s]",
        `port = ${PORT}`,
        "tls_port = 0",
        `bind = "${this.host}"`,
        `require_tls = ${requireTls}`,
        // Floods of logins and idle sessions come from one address, on purpose.
        "auth_timeout = 600",
        "idle_timeout = 3600",
        "max_unauthenticated = 1000000",
        "max_unauthenticated_per_ip = 1000000",
        "[limits]",
        // The default (1 MiB/s per stream) is a production safety limit; a bench pair sends more.
        "c2s_bytes_per_second = 1000000000",
        "[http]",
        "port = 0",
        "[log]",
        'level = "warn"',
        ...this.s2sConfig(),
        "",
      ].join("\n"),
    );
  }

  /** RFC 6120 §13.7 / XEP-0220: the s2s section; dialback authenticates the self-signed peers. */
  private s2sConfig(): string[] {
    if (!this.s2s) return [];
    return [
      "[s2s]",
      `port = ${this.s2s.port}`,
      `bind = "${this.host}"`,
      // Routes from this table only: no DNS on a loopback bench.
      "dns = false",
      // As for c2s: the default per-stream read limit (10 MiB/s) is a production safety limit.
      "bytes_per_second = 1000000000",
      "[s2s.routes]",
      ...Object.entries(this.s2s.routes).map(([domain, route]) => `"${domain}" = "${route}"`),
    ];
  }

  async start(opts: StartOptions): Promise<void> {
    this.writeConfig(opts.requireTls);
    rmSync(this.memoryFile, { force: true });
    // BENCH_CPU_PROFILE=DIR: Hanse writes a V8 CPU profile there when it stops (--cpu-prof).
    const profileDir = process.env.BENCH_CPU_PROFILE;
    const profile = profileDir ? ["--cpu-prof", `--cpu-prof-dir=${resolve(profileDir)}`] : [];
    // BENCH_PERF=1: JIT symbol maps in /tmp/perf-PID.map, so `perf record -p PID` names JS frames.
    // (It also makes V8 write isolate-*.log files into the working directory: not wanted.)
    if (process.env.BENCH_PERF)
      profile.push("--perf-basic-prof", "--logfile=/dev/null", "--no-logfile-per-isolate");
    // BENCH_HANSE_NODE_ARGS="--trace-gc …": more node flags (BENCH_HANSE_LOG=FILE keeps the output).
    profile.push(...(process.env.BENCH_HANSE_NODE_ARGS ?? "").split(" ").filter(Boolean));
    const child = spawn(
      process.execPath,
      [
        "--expose-gc",
        ...profile,
        "--import",
        join(REPO, "bench/lib/hanse-preload.mjs"),
        "--import",
        LOADER,
        join(HANSE_DIR, "server/main.ts"),
        "start",
        "--config",
        this.configFile,
      ],
      {
        cwd: HANSE_DIR,
        env: {
          ...process.env,
          HANSE_BENCH_MEMORY_FILE: this.memoryFile,
          HANSE_CONFIG: undefined,
          // c2s only: no federation listener (an environment override, so a checkout that has
          // no [s2s] section yet still starts), unless this broker federates.
          HANSE_S2S_PORT: String(this.s2s?.port ?? 0),
        },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    this.child = child;
    const kill = () => child.kill("SIGKILL");
    leftovers.add(kill);
    child.once("exit", () => leftovers.delete(kill));
    let output = "";
    await new Promise<void>((resolveStart, reject) => {
      const timer = setTimeout(() => reject(new Error(`hanse did not start in 60 s:\n${output}`)), 60_000);
      const onData = (chunk: Buffer) => {
        output += chunk.toString();
        if (output.includes("Hanse is serving")) {
          clearTimeout(timer);
          resolveStart();
        }
      };
      child.stdout!.on("data", onData);
      child.stderr!.on("data", onData);
      child.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`hanse exited with ${code} during start:\n${output}`));
      });
    });
    // Keep draining its output (warnings) so a full pipe never blocks it; show errors.
    child.stdout!.removeAllListeners("data");
    child.stderr!.removeAllListeners("data");
    child.removeAllListeners("exit");
    const logFile = process.env.BENCH_HANSE_LOG;
    if (logFile) {
      const out = createWriteStream(logFile, { flags: "a" });
      child.stdout!.pipe(out);
      child.stderr!.pipe(out);
      return;
    }
    child.stdout!.on("data", (c: Buffer) => {
      const text = c.toString();
      if (/"level":(50|60)/.test(text)) process.stderr.write(`hanse: ${text}`);
    });
    child.stderr!.on("data", (c: Buffer) => process.stderr.write(`hanse: ${c}`));
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((r) => child.once("exit", () => r()));
    child.kill("SIGTERM");
    const timeout = sleep(20_000).then(() => "timeout");
    if ((await Promise.race([exited, timeout])) === "timeout") {
      child.kill("SIGKILL");
      await exited;
    }
    this.child = undefined;
  }

  async ensureAccounts(n: number): Promise<void> {
    if (!existsSync(this.configFile)) this.writeConfig(true);
    await run(
      process.execPath,
      [
        "--import",
        "tsx",
        join(REPO, "bench/lib/hanse-accounts.ts"),
        this.configFile,
        USER_PREFIX,
        String(n),
        PASSWORD,
      ],
      { cwd: REPO, env: { ...process.env, HANSE_CONFIG: undefined } },
    );
  }

  async collectGarbage(): Promise<Record<string, number> | undefined> {
    const pid = this.child?.pid;
    if (!pid) return undefined;
    rmSync(this.memoryFile, { force: true });
    process.kill(pid, "SIGUSR2");
    for (let i = 0; i < 1200; i++) {
      await sleep(50);
      if (existsSync(this.memoryFile)) {
        try {
          return JSON.parse(readFileSync(this.memoryFile, "utf8")) as Record<string, number>;
        } catch {
          // being written
        }
      }
    }
    return undefined;
  }
}

// ---------------------------------------------------------------- peers (shell scripts)

/** The one set of peer scripts, shared with the interop tests (test/interop/support/peers.ts). */
const PEERS_DIR = join(REPO, "test/interop/peers");

abstract class Peer implements ServerUnderTest {
  abstract readonly name: "prosody" | "ejabberd";
  abstract readonly domain: string;
  abstract readonly host: string;
  protected abstract readonly script: string;
  protected abstract readonly envPrefix: string;
  readonly unavailable: string | undefined;
  readonly version: string;
  protected readonly dir: string;
  private pid = 0;

  constructor(pkg: string, dirName: string) {
    const v = version(pkg);
    this.version = v ?? "not installed";
    this.unavailable = v ? undefined : `${pkg} is not installed (apt-get install ${pkg})`;
    this.dir = join(STATE, dirName);
  }

  endpoint(tls: boolean): Endpoint {
    return {
      host: this.host,
      port: PORT,
      domain: this.domain,
      userPrefix: USER_PREFIX,
      password: PASSWORD,
      tls,
    };
  }

  pids(): number[] {
    return this.pid ? processTree(this.pid) : [];
  }

  protected async sh(...args: string[]): Promise<string> {
    const env = {
      ...process.env,
      PEER_PROFILE: "bench",
      [`${this.envPrefix}_C2S_REQUIRE_TLS`]: this.requireTls ? "1" : "0",
    };
    const { stdout } = await run(join(PEERS_DIR, this.script), [args[0]!, this.dir, ...args.slice(1)], {
      env,
      timeout: 180_000,
      maxBuffer: 16 * 1024 * 1024,
    });
    return stdout;
  }

  private requireTls = true;

  async start(opts: StartOptions): Promise<void> {
    this.requireTls = opts.requireTls;
    await this.stop(); // a leftover from an interrupted run
    await this.sh("start");
    const script = join(PEERS_DIR, this.script);
    const dir = this.dir;
    const env = { ...process.env, PEER_PROFILE: "bench" };
    this.stopSync = () => spawnSync(script, ["stop", dir], { env, stdio: "ignore", timeout: 20_000 });
    leftovers.add(this.stopSync);
    const status = await this.sh("status");
    this.pid = Number(/running pid (\d+)/.exec(status)?.[1] ?? 0);
    if (!this.pid) throw new Error(`${this.name}: no pid after start (${status})`);
  }

  private stopSync = () => {};

  async stop(): Promise<void> {
    leftovers.delete(this.stopSync);
    await this.sh("stop").catch(() => undefined);
    this.pid = 0;
  }

  abstract ensureAccounts(n: number): Promise<void>;
}

class Prosody extends Peer {
  readonly name = "prosody" as const;
  readonly domain = "prosody.bench.test";
  readonly host = "127.0.1.2";
  protected readonly script = "prosody.sh";
  protected readonly envPrefix = "PROSODY";

  constructor() {
    super("prosody", "prosody");
  }

  /**
   * Writes account files in Prosody's own internal_hashed format (what prosodyctl would write,
   * minus 4096 PBKDF2 rounds per account): DIR/data/<host>/accounts/<user>.dat.
   */
  async ensureAccounts(n: number): Promise<void> {
    const encode = (s: string) =>
      s.replace(/[^A-Za-z0-9]/g, (c) => `%${c.charCodeAt(0).toString(16).padStart(2, "0")}`);
    const accounts = join(this.dir, "data", encode(this.domain), "accounts");
    if (existsSync(join(accounts, `${USER_PREFIX}${n - 1}.dat`))) return;
    mkdirSync(accounts, { recursive: true });
    const salt = "bench-salt-0123456789"; // Prosody uses the salt string's bytes as they are
    const { storedKey, serverKey } = scramVerifiers("sha256", PASSWORD, Buffer.from(salt), 4096);
    const body =
      `return {\n\t["iteration_count"] = 4096;\n\t["salt"] = "${salt}";\n` +
      `\t["stored_key"] = "${storedKey.toString("hex")}";\n\t["server_key"] = "${serverKey.toString("hex")}";\n};\n`;
    for (let i = 0; i < n; i++) {
      const file = join(accounts, `${USER_PREFIX}${i}.dat`);
      if (!existsSync(file)) writeFileSync(file, body);
    }
  }
}

class Ejabberd extends Peer {
  readonly name = "ejabberd" as const;
  readonly domain = "ejabberd.bench.test";
  readonly host = "127.0.1.3";
  protected readonly script = "ejabberd.sh";
  protected readonly envPrefix = "EJABBERD";

  constructor() {
    super("ejabberd", "ejabberd");
  }

  /** One account through ejabberd_ctl, then its stored record copied (ejabberd.sh clone). */
  async ensureAccounts(n: number): Promise<void> {
    const have = Number((await this.sh("count")).trim().split("\n").pop());
    if (have >= n) return;
    await this.sh("register", `${USER_PREFIX}0`, PASSWORD);
    await this.sh("clone", USER_PREFIX, "1", String(n - 1));
  }
}

export function allServers(): ServerUnderTest[] {
  return [new Hanse(), new Prosody(), new Ejabberd()];
}

/**
 * Measures every selected server in turn. A server that is not installed or fails is recorded
 * (and logged) instead of ending the scenario, so the others are still measured.
 */
export async function measureEach<R>(
  measure: (server: ServerUnderTest) => Promise<R>,
  row: (name: string, r: R) => unknown[],
): Promise<{ servers: Record<string, unknown>; rows: unknown[][] }> {
  const servers: Record<string, unknown> = {};
  const rows: unknown[][] = [];
  for (const server of selectedServers()) {
    if (server.unavailable) {
      log(`${server.name}: skipped: ${server.unavailable}`);
      servers[server.name] = { unavailable: server.unavailable };
      continue;
    }
    try {
      const r = await measure(server);
      servers[server.name] = r;
      rows.push(row(server.name, r));
    } catch (err) {
      log(`${server.name}: FAILED: ${(err as Error).message}`);
      servers[server.name] = { error: (err as Error).message };
    }
  }
  return { servers, rows };
}

/** Picks servers by name from a comma list (env BENCH_SERVERS), default all three. */
export function selectedServers(): ServerUnderTest[] {
  const wanted = (process.env.BENCH_SERVERS ?? "hanse,prosody,ejabberd").split(",").map((s) => s.trim());
  return allServers().filter((s) => wanted.includes(s.name));
}
