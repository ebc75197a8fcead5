/**
 * openStorage: picks the engine from the configuration and hands back one postgres.js pool.
 * References: DESIGN.md §1.5 (one dialect, two engines), §6 (pglite-socket needs several
 * connection slots); postgres.js README (options `path` for a unix socket, `prepare`).
 *
 * With `database.url` we connect to that PostgreSQL server. Otherwise the embedded engine lives
 * in `<data_dir>`: `db/` (PGlite's cluster), `db.lock` (who holds it), `db.sock` (where it is
 * served). The broker must hold the lock. A CLI run (`hanse user add`) uses the broker's socket
 * when a broker is up, and otherwise opens the engine itself, so it works either way.
 */
import { accessSync, constants, mkdirSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import postgres from "postgres";
import type { Config } from "../config.ts";
import type { Logger } from "../observability/logger.ts";
import type { Db, Storage } from "./db.ts";
import { chooseSocketPath, startEmbeddedEngine } from "./embedded.ts";
import { acquireLock, DataDirLockedError, holderAlive, readLock } from "./lock-file.ts";
import { runMigrations } from "./migrations.ts";

export type StorageConfig = Pick<Config, "data_dir" | "database">;

export interface OpenStorageOptions {
  /** "broker" must own the engine; "cli" may borrow a running broker's. */
  readonly role: "broker" | "cli";
}

export class StorageError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "StorageError";
  }
}

/** Socket slots beyond the owner's pool, for CLI runs that borrow the engine. */
const CLIENT_RESERVE = 8;
/** A CLI does one thing at a time; it should not take the broker's slots. */
const CLI_POOL_SIZE = 2;
/** How long a CLI waits for a starting broker (initdb takes seconds) to open its socket. */
const HOLDER_WAIT_MS = 60_000;

/** Where the embedded engine keeps its files inside `data_dir`. */
export function embeddedPaths(dataDir: string): { pgdata: string; lock: string } {
  return { pgdata: join(dataDir, "db"), lock: join(dataDir, "db.lock") };
}

function createPool(target: { url: string } | { path: string }, max: number, log: Logger): Db {
  const options = {
    max,
    connect_timeout: 10,
    // Named prepared statements, always. Through pglite-socket every connection shares one
    // backend and messages of different connections may interleave between a Parse and its
    // Bind: unnamed statements (prepare: false) then run another connection's query.
    prepare: true,
    connection: { application_name: "hanse" },
    // "relation already exists, skipping" and the like are not worth an info line.
    onnotice: (notice: postgres.Notice) => log.debug({ notice: notice.message }, "database notice"),
  };
  if ("url" in target) return postgres(target.url, options);
  return postgres({ ...options, path: target.path, user: "postgres", database: "postgres" });
}

/** The URL without its password, for messages. */
function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return "(unparsable database.url)";
  }
}

function makeStorage(db: Db, engine: Storage["engine"], log: Logger, close: () => Promise<void>): Storage {
  let closing: Promise<void> | undefined;
  return {
    db,
    engine,
    migrate: async (module, migrations) => {
      await runMigrations(db, module, migrations, log);
    },
    close: () => {
      closing ??= close();
      return closing;
    },
  };
}

async function openServer(url: string, max: number, log: Logger): Promise<Storage> {
  const db = createPool({ url }, max, log);
  try {
    await db`select 1`;
  } catch (err) {
    await db.end({ timeout: 0 });
    throw new StorageError(`cannot connect to PostgreSQL at ${redact(url)}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  return makeStorage(db, "postgres", log, () => db.end({ timeout: 5 }));
}

function prepareDataDir(dataDir: string): void {
  try {
    // Owner-only: the directory holds the database, its unauthenticated socket and TLS keys.
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    accessSync(dataDir, constants.W_OK | constants.X_OK);
  } catch (err) {
    throw new StorageError(`data directory ${dataDir} is not usable: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

function canConnect(path: string): Promise<boolean> {
  return new Promise((resolveProbe) => {
    const socket = connect(path);
    socket.once("connect", () => {
      socket.destroy();
      resolveProbe(true);
    });
    socket.once("error", () => resolveProbe(false));
  });
}

/**
 * A CLI borrowing the engine of the process that holds the lock. Returns undefined when the
 * holder went away meanwhile (the caller then tries to take the lock itself).
 */
async function borrowEngine(dataDir: string, lockPath: string, log: Logger): Promise<Storage | undefined> {
  const deadline = Date.now() + HOLDER_WAIT_MS;
  for (;;) {
    const holder = readLock(lockPath);
    if (!holder || !holderAlive(lockPath, holder)) return undefined;
    if (holder.socket && (await canConnect(holder.socket))) {
      log.debug({ pid: holder.pid, socket: holder.socket }, "using the running broker's embedded database");
      const db = createPool({ path: holder.socket }, CLI_POOL_SIZE, log);
      return makeStorage(db, "embedded", log, () => db.end({ timeout: 5 }));
    }
    if (Date.now() > deadline) {
      throw new StorageError(
        `data directory ${dataDir} is in use by pid ${holder.pid}, but its database socket ` +
          `${holder.socket ?? "(not announced yet)"} does not answer`,
      );
    }
    await sleep(100);
  }
}

async function ownEngine(
  config: StorageConfig,
  dataDir: string,
  role: OpenStorageOptions["role"],
  log: Logger,
) {
  const paths = embeddedPaths(dataDir);
  let lock: ReturnType<typeof acquireLock>;
  try {
    lock = acquireLock(paths.lock, dataDir);
  } catch (err) {
    if (err instanceof DataDirLockedError) throw err;
    throw new StorageError(`cannot lock data directory ${dataDir}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  let tmpDir: string | undefined;
  try {
    const socket = chooseSocketPath(dataDir);
    tmpDir = socket.tmpDir;
    lock.setSocket(socket.path);
    const engine = await startEmbeddedEngine({
      pgdata: paths.pgdata,
      socketPath: socket.path,
      maxConnections: config.database.max_connections + CLIENT_RESERVE,
      log,
    });
    const pool =
      role === "cli"
        ? Math.min(CLI_POOL_SIZE, config.database.max_connections)
        : config.database.max_connections;
    const db = createPool({ path: socket.path }, pool, log);
    const cleanup = tmpDir;
    const storage = makeStorage(db, "embedded", log, async () => {
      try {
        await db.end({ timeout: 5 });
        await engine.stop();
      } finally {
        lock.release();
        if (cleanup) rmSync(cleanup, { recursive: true, force: true });
      }
    });
    return { ...storage, onFailure: engine.onFailure } satisfies Storage;
  } catch (err) {
    lock.release();
    if (tmpDir) rmSync(tmpDir, { recursive: true, force: true });
    throw err;
  }
}

/**
 * Opens the configured storage. Errors are StorageError (unusable data dir, unreachable server),
 * DataDirLockedError ("data directory X is in use by pid N", broker role only) or an engine
 * start failure; none leaves a lock or a worker behind.
 */
export async function openStorage(
  config: StorageConfig,
  log: Logger,
  opts: OpenStorageOptions,
): Promise<Storage> {
  if (config.database.url) return openServer(config.database.url, config.database.max_connections, log);
  const dataDir = resolve(config.data_dir);
  prepareDataDir(dataDir);
  for (let attempt = 0; ; attempt++) {
    try {
      return await ownEngine(config, dataDir, opts.role, log);
    } catch (err) {
      if (!(err instanceof DataDirLockedError) || opts.role !== "cli" || attempt >= 2) throw err;
    }
    const borrowed = await borrowEngine(dataDir, embeddedPaths(dataDir).lock, log);
    if (borrowed) return borrowed;
  }
}
