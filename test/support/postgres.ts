/**
 * A private, throw-away PostgreSQL cluster for tests (the "postgres" engine of DESIGN.md §1.5).
 * References: /work/shared/lab/postgres.sh (the lab script this adapts); PostgreSQL docs
 * "initdb", "pg_ctl", §20.5 (fsync, synchronous_commit, full_page_writes).
 *
 * initdb and postgres refuse to run as root, so as root the cluster runs as the `postgres` system
 * user (the cluster directory is chowned to it; os.tmpdir() must be traversable). Durability is
 * switched off: it is a test cluster. A watchdog shell stops and deletes the cluster if the test
 * process dies without running its exit handlers (SIGKILL); a normal exit stops it synchronously.
 * With HANSE_TEST_PG_URL set, that server is used instead and nothing is started.
 */
import { execFile, spawn, spawnSync } from "node:child_process";
import { appendFileSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import postgres from "postgres";

const run = promisify(execFile);

export interface PostgresServer {
  /** Superuser URL of the maintenance database: postgres://postgres@127.0.0.1:PORT/postgres. */
  readonly url: string;
  /** Stops the cluster and deletes its files (a no-op for HANSE_TEST_PG_URL). */
  stop(): Promise<void>;
}

function findBinDir(): string {
  const root = "/usr/lib/postgresql";
  const versions = existsSync(root)
    ? readdirSync(root)
        .filter((v) => existsSync(join(root, v, "bin", "initdb")))
        .sort((a, b) => Number(a) - Number(b))
    : [];
  const newest = versions.at(-1);
  if (!newest) {
    throw new Error(
      "PostgreSQL server binaries not found in /usr/lib/postgresql/*/bin: install them " +
        "(apt-get install postgresql-15) or set HANSE_TEST_PG_URL to a server the tests may use",
    );
  }
  return join(root, newest, "bin");
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Runs a PostgreSQL program, as the postgres user when we are root. */
function asOwner(program: string, args: string[]): [string, string[]] {
  return process.getuid?.() === 0 ? ["runuser", ["-u", "postgres", "--", program, ...args]] : [program, args];
}

async function runOwner(program: string, args: string[], what: string): Promise<void> {
  const [cmd, argv] = asOwner(program, args);
  try {
    await run(cmd, argv, { timeout: 60_000 });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${what} failed: ${e.stderr?.trim() || e.message}`);
  }
}

/** Keeps a dead test process from leaking a postmaster: polls the parent, then cleans up. */
function startWatchdog(pgCtl: string, data: string, dir: string): number | undefined {
  const [cmd, argv] = asOwner(pgCtl, ["-D", data, "-m", "immediate", "-w", "stop"]);
  const script =
    'parent=$1; data=$2; dir=$3; shift 3\nwhile kill -0 "$parent" 2>/dev/null && [ -d "$data" ]; do sleep 1; done\n' +
    '[ -d "$data" ] && { "$@" >/dev/null 2>&1; rm -rf "$dir"; }\nexit 0';
  const child = spawn("sh", ["-c", script, "sh", String(process.pid), data, dir, cmd, ...argv], {
    detached: true,
    stdio: "ignore",
  });
  child.unref();
  return child.pid;
}

/** Starts a new private cluster (or returns HANSE_TEST_PG_URL's server). ~1-2 s. */
export async function startPostgres(): Promise<PostgresServer> {
  const external = process.env.HANSE_TEST_PG_URL;
  if (external) return { url: external, stop: async () => {} };

  const bin = findBinDir();
  const dir = mkdtempSync(join(tmpdir(), "hanse-pg-"));
  const data = join(dir, "data");
  const sockets = join(dir, "run");
  mkdirSync(sockets);
  if (process.getuid?.() === 0) {
    const uid = Number(spawnSync("id", ["-u", "postgres"], { encoding: "utf8" }).stdout);
    const gid = Number(spawnSync("id", ["-g", "postgres"], { encoding: "utf8" }).stdout);
    if (!uid)
      throw new Error("running as root needs a 'postgres' system user (apt-get install postgresql-15)");
    chownSync(dir, uid, gid);
    chownSync(sockets, uid, gid);
  }
  const pgCtl = join(bin, "pg_ctl");
  let stopped = false;
  const stopSync = () => {
    if (stopped) return;
    stopped = true;
    const [cmd, argv] = asOwner(pgCtl, ["-D", data, "-m", "immediate", "-w", "stop"]);
    spawnSync(cmd, argv, { stdio: "ignore" });
    rmSync(dir, { recursive: true, force: true });
  };
  process.once("exit", stopSync);
  try {
    // -N: no fsync during initdb either; nothing here has to survive a power cut.
    await runOwner(
      join(bin, "initdb"),
      ["-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", "-N"],
      "initdb",
    );
    appendFileSync(
      join(data, "postgresql.conf"),
      [
        "\n# test cluster (test/support/postgres.ts)",
        "listen_addresses = '127.0.0.1'",
        `unix_socket_directories = '${sockets}'`,
        "fsync = off",
        "synchronous_commit = off",
        "full_page_writes = off",
        "max_connections = 200",
        "",
      ].join("\n"),
    );
    let port = 0;
    for (let attempt = 0; ; attempt++) {
      port = await freePort();
      const log = join(dir, "postgres.log");
      try {
        await runOwner(
          pgCtl,
          ["-D", data, "-l", log, "-o", `-p ${port}`, "-w", "-t", "30", "start"],
          "pg_ctl start",
        );
        break;
      } catch (err) {
        // Another process may have taken the port between our probe and the postmaster's bind.
        if (attempt >= 2) throw err;
      }
    }
    const watchdog = startWatchdog(pgCtl, data, dir);
    return {
      url: `postgres://postgres@127.0.0.1:${port}/postgres`,
      stop: async () => {
        if (stopped) return;
        process.off("exit", stopSync);
        stopped = true;
        await runOwner(pgCtl, ["-D", data, "-m", "immediate", "-w", "stop"], "pg_ctl stop").finally(() => {
          rmSync(dir, { recursive: true, force: true });
          // It notices the deleted directory within a second anyway; this only saves the wait.
          if (watchdog) process.kill(watchdog, "SIGTERM");
        });
      },
    };
  } catch (err) {
    process.off("exit", stopSync);
    stopSync();
    throw err;
  }
}

let shared: Promise<PostgresServer> | undefined;
let counter = 0;

/** The cluster shared by this test process, started on first use and stopped when it exits. */
export function sharedPostgres(): Promise<PostgresServer> {
  shared ??= startPostgres();
  return shared;
}

/**
 * Creates a fresh, empty database on the shared cluster and returns its URL. `name` is a prefix:
 * a unique suffix is added, so tests never see each other's tables.
 */
export async function createDatabase(name = "test"): Promise<string> {
  const server = await sharedPostgres();
  const dbName = `${name.toLowerCase().replace(/[^a-z0-9_]/g, "_")}_${process.pid}_${++counter}_${Date.now().toString(36)}`;
  const admin = postgres(server.url, { max: 1, onnotice: () => {} });
  try {
    await admin`create database ${admin(dbName)}`;
  } finally {
    await admin.end({ timeout: 5 });
  }
  const url = new URL(server.url);
  url.pathname = `/${dbName}`;
  return url.toString();
}
