/**
 * The embedded engine's worker thread: PGlite (PostgreSQL compiled to WASM) on a data directory,
 * served to the main thread (and to CLI processes) over a unix socket by pglite-socket.
 * References: DESIGN.md §1.5 and §6 (PGlite blocks the thread it runs on, so it gets its own),
 * PostgreSQL frontend/backend protocol v3 (what pglite-socket speaks).
 *
 * Protocol with embedded.ts: workerData carries the paths; we post "ready" once listening and
 * "stopped" after a clean shutdown; anything thrown escapes as the Worker's "error" event.
 */
import { chmodSync, existsSync, mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { parentPort, workerData } from "node:worker_threads";
import { PGlite } from "@electric-sql/pglite";
import { PGLiteSocketServer } from "@electric-sql/pglite-socket";
import { withProtocolTurns } from "./pglite-turns.ts";

export interface WorkerInput {
  readonly pgdata: string;
  readonly socketPath: string;
  readonly maxConnections: number;
}

export type WorkerReport =
  | { readonly type: "ready"; readonly created: boolean; readonly openMs: number }
  | { readonly type: "stopped" };

export type WorkerCommand = { readonly type: "stop" };

const input = workerData as WorkerInput;
const port = parentPort!;

/** PGlite rejects with Emscripten's ErrnoError, which is no Error and prints as "#<ErrnoError>". */
function explain(err: unknown): Error {
  if (err instanceof Error) return err;
  const errno = (err as { errno?: unknown } | undefined)?.errno;
  return new Error(errno === undefined ? String(err) : `PGlite file system error (errno ${errno})`);
}

const started = performance.now();
// Node's own error ("EEXIST: file already exists, mkdir ...") is clearer than PGlite's.
mkdirSync(input.pgdata, { recursive: true, mode: 0o700 });
// PGlite runs initdb itself when the directory holds no cluster yet (the slow first start).
const created = !existsSync(join(input.pgdata, "PG_VERSION"));
const db = await PGlite.create(input.pgdata).catch((err: unknown) => {
  throw explain(err);
});

// pglite-socket multiplexes every connection onto PGlite's single backend, queueing protocol
// messages; it needs maxConnections > 1 or a second client is turned away (DESIGN.md §6).
// withProtocolTurns keeps each connection's exchange whole (see pglite-turns.ts).
const server = new PGLiteSocketServer({
  db: withProtocolTurns(db, (err) => {
    // pglite-socket would leave its queue stalled: crash instead, so the main thread sees an
    // error event rather than queries that never answer.
    setImmediate(() => {
      throw new Error("PGlite failed while executing a query", { cause: err });
    });
  }),
  path: input.socketPath,
  maxConnections: input.maxConnections,
});
// We hold the data-dir lock, so a socket file here is a leftover of a killed process.
rmSync(input.socketPath, { force: true });
await server.start();
// PGlite has no authentication: whoever can connect owns the database. Owner-only, like the
// data directory itself.
chmodSync(input.socketPath, 0o600);

port.postMessage({ type: "ready", created, openMs: performance.now() - started } satisfies WorkerReport);

port.on("message", async (command: WorkerCommand) => {
  if (command.type !== "stop") return;
  await server.stop();
  // close() shuts the backend down cleanly (a checkpoint), so the next open needs no recovery.
  await db.close();
  rmSync(input.socketPath, { force: true });
  port.postMessage({ type: "stopped" } satisfies WorkerReport);
  port.close();
});
