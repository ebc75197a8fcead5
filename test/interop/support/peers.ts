/**
 * Real third-party XMPP servers for interop tests (Prosody, ejabberd from Debian), started from
 * private state directories by the scripts in test/interop/peers/, on loopback addresses of their
 * own. Names resolve through each peer's private hosts file: nothing leaves the machine.
 */
import { execFile, execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const PEERS_DIR = join(dirname(fileURLToPath(import.meta.url)), "..", "peers");

export type PeerKind = "prosody" | "ejabberd";

export interface PeerOptions {
  readonly kind: PeerKind;
  readonly domain: string;
  readonly ip: string;
  /** name=ip pairs the peer resolves s2s names with (the broker's domain among them). */
  readonly hosts: Readonly<Record<string, string>>;
  /** Extra environment for the script (log level, ...). */
  readonly env?: Readonly<Record<string, string>>;
}

export interface Peer {
  readonly kind: PeerKind;
  readonly domain: string;
  readonly ip: string;
  readonly dir: string;
  /** xmpp://ip:5222 for clients. */
  readonly service: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  register(user: string, password: string): Promise<void>;
  /** The peer's self-signed certificate (clients trust it). */
  certificate(): string;
  /** The end of the peer's log, for failure messages. */
  logTail(lines?: number): string;
  /** Deletes the state directory (kept when HANSE_KEEP_PEER_DIRS is set, for debugging). */
  remove(): void;
}

/** Whether the Debian packages a peer's script needs are installed (dpkg says so). */
export function peerInstalled(kind: PeerKind): boolean {
  const packages = kind === "prosody" ? ["prosody", "lua-unbound"] : ["ejabberd"];
  try {
    const out = execFileSync("dpkg-query", ["-W", `-f=\${Status}\n`, ...packages], { encoding: "utf8" });
    return out
      .trim()
      .split("\n")
      .every((line) => line.endsWith("install ok installed"));
  } catch {
    return false;
  }
}

function run(
  script: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv,
  timeoutMs: number,
): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      join(PEERS_DIR, script),
      args,
      { env, timeout: timeoutMs, maxBuffer: 4 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`${script} ${args.join(" ")} failed: ${err.message}\n${stderr}`));
        else resolve(stdout + stderr);
      },
    );
  });
}

export function createPeer(opts: PeerOptions): Peer {
  const dir = mkdtempSync(join(tmpdir(), `hanse-interop-${opts.kind}-`));
  const hosts = Object.entries(opts.hosts)
    .map(([name, ip]) => `${name}=${ip}`)
    .join(" ");
  const prefix = opts.kind === "prosody" ? "PROSODY" : "EJABBERD";
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin",
    // The scripts' peer-lab profile (s2s, in-band registration); the benchmarks use "bench".
    PEER_PROFILE: "lab",
    PEERLAB_HOSTS: hosts,
    [`${prefix}_DOMAIN`]: opts.domain,
    [`${prefix}_IP`]: opts.ip,
    ...(opts.kind === "ejabberd"
      ? // A distribution port and node name of our own: never meets the lab's or the bench's.
        { EJABBERD_DIST_PORT: "24471", EJABBERD_NODE: "hanseinterop" }
      : {}),
    ...opts.env,
  };
  const script = `${opts.kind}.sh`;
  const logFile = join(dir, "log", `${opts.kind}.log`);
  return {
    kind: opts.kind,
    domain: opts.domain,
    ip: opts.ip,
    dir,
    service: `xmpp://${opts.ip}:5222`,
    async start() {
      await run(script, ["start", dir], env, 90_000);
    },
    async stop() {
      await run(script, ["stop", dir], env, 30_000);
    },
    async register(user, password) {
      await run(script, ["register", dir, user, password], env, 60_000);
    },
    certificate() {
      return readFileSync(join(dir, "certs", `${opts.domain}.crt`), "utf8");
    },
    remove() {
      if (!process.env.HANSE_KEEP_PEER_DIRS) rmSync(dir, { recursive: true, force: true });
    },
    logTail(lines = 40) {
      try {
        return readFileSync(logFile, "utf8").split("\n").slice(-lines).join("\n");
      } catch {
        return "(no log)";
      }
    },
  };
}
