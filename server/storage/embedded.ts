/**
 * Starts and stops the embedded engine: PGlite in a worker thread, listening on a unix socket
 * that the main thread (and CLI processes) reach with the same postgres.js driver as a server.
 * References: DESIGN.md §1.5, §6; unix(7) (sun_path holds 108 bytes on Linux, 104 on macOS).
 *
 * Locking the data directory is the caller's job (open.ts): this file assumes it owns `pgdata`.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Worker } from "node:worker_threads";
import type { Logger } from "../observability/logger.ts";
import type { WorkerCommand, WorkerInput, WorkerReport } from "./embedded-worker.ts";

/** Longest socket path we bind: macOS's sun_path (104 bytes) minus the NUL, with a margin. */
export const MAX_SOCKET_PATH_BYTES = 100;
/** PGlite's own initdb plus open is 5-7 s on a 2-core machine; a wedged worker fails after this. */
const START_TIMEOUT_MS = 120_000;
const STOP_TIMEOUT_MS = 15_000;

export interface SocketLocation {
  readonly path: string;
  /** A private directory created for the socket outside the data dir; removed on close. */
  readonly tmpDir?: string;
}

/**
 * `<data_dir>/db.sock` when it fits in sun_path; otherwise a socket in a fresh owner-only
 * directory under the system tmp dir (mkdtemp makes it 0700, so other users cannot reach it).
 * The chosen path is recorded in the lock file for clients.
 */
export function chooseSocketPath(dataDir: string): SocketLocation {
  const preferred = join(dataDir, "db.sock");
  if (Buffer.byteLength(preferred) <= MAX_SOCKET_PATH_BYTES) return { path: preferred };
  const tmpDir = mkdtempSync(join(tmpdir(), "hanse-"));
  const path = join(tmpDir, "db.sock");
  if (Buffer.byteLength(path) > MAX_SOCKET_PATH_BYTES) {
    throw new Error(
      `cannot place the database socket: ${preferred} and ${path} are longer than ` +
        `${MAX_SOCKET_PATH_BYTES} bytes (use a shorter data_dir or TMPDIR)`,
    );
  }
  return { path, tmpDir };
}

export interface EmbeddedEngineOptions {
  /** PGlite's data directory (`<data_dir>/db`); created and initialised if empty. */
  readonly pgdata: string;
  readonly socketPath: string;
  /** Concurrent socket clients pglite-socket accepts; must exceed every pool using it. */
  readonly maxConnections: number;
  readonly log: Logger;
}

export interface EmbeddedEngine {
  readonly socketPath: string;
  /** True when this start ran initdb on an empty directory. */
  readonly created: boolean;
  /** Milliseconds from spawning the worker to the socket listening. */
  readonly startMs: number;
  /** Called once if the worker dies while running (not on stop()). */
  onFailure(listener: (err: Error) => void): void;
  /** Stops serving, closes PGlite (a clean shutdown) and ends the worker. Idempotent. */
  stop(): Promise<void>;
  /**
   * Ends the worker at once, as a crash would (no clean shutdown; failure listeners run). For
   * tests of crash handling; stop() falls back to the same when a clean stop hangs.
   */
  kill(): Promise<void>;
}

/**
 * The worker is TypeScript: under tsx (`node --import tsx` or bin/hanse.js's register()) Node 20
 * does not pass the loader on to worker threads (an `--import` in the Worker's execArgv is ignored
 * for its entry module), so a one-line bootstrap registers tsx inside the worker first.
 */
function spawnWorker(input: WorkerInput): Worker {
  const entry = new URL("./embedded-worker.ts", import.meta.url).href;
  const tsx = import.meta.resolve("tsx/esm/api");
  const bootstrap =
    `import(${JSON.stringify(tsx)})` +
    `.then((tsx) => { tsx.register(); return import(${JSON.stringify(entry)}); });`;
  return new Worker(bootstrap, { eval: true, workerData: input, name: "hanse-pglite" });
}

export function startEmbeddedEngine(opts: EmbeddedEngineOptions): Promise<EmbeddedEngine> {
  const started = performance.now();
  const worker = spawnWorker({
    pgdata: opts.pgdata,
    socketPath: opts.socketPath,
    maxConnections: opts.maxConnections,
  });
  const failureListeners: Array<(err: Error) => void> = [];
  let state: "starting" | "running" | "stopping" | "gone" = "starting";
  let stopping: Promise<void> | undefined;

  const fail = (err: Error) => {
    if (state !== "running") return;
    state = "gone";
    opts.log.fatal({ err }, "embedded database worker failed");
    for (const listener of failureListeners) listener(err);
  };

  return new Promise<EmbeddedEngine>((resolve, reject) => {
    const startFailed = (err: Error) => {
      if (state !== "starting") return;
      state = "gone";
      clearTimeout(timer);
      void worker.terminate();
      reject(
        new Error(`embedded database in ${opts.pgdata} failed to start: ${err.message}`, { cause: err }),
      );
    };
    const timer = setTimeout(
      () => startFailed(new Error(`no answer from the database worker after ${START_TIMEOUT_MS / 1000} s`)),
      START_TIMEOUT_MS,
    );

    worker.on("error", (err) => {
      if (state === "starting") startFailed(err);
      else fail(new Error(`embedded database worker crashed: ${err.message}`, { cause: err }));
    });
    worker.on("exit", (code) => {
      const err = new Error(`embedded database worker exited unexpectedly (code ${code})`);
      if (state === "starting") startFailed(err);
      else fail(err);
      if (state === "stopping") state = "gone";
    });
    worker.on("message", (report: WorkerReport) => {
      if (report.type !== "ready" || state !== "starting") return;
      state = "running";
      clearTimeout(timer);
      const startMs = performance.now() - started;
      opts.log.info(
        { pgdata: opts.pgdata, socket: opts.socketPath, created: report.created, ms: Math.round(startMs) },
        report.created ? "embedded database initialised" : "embedded database opened",
      );
      resolve({
        socketPath: opts.socketPath,
        created: report.created,
        startMs,
        onFailure: (listener) => void failureListeners.push(listener),
        stop: () => {
          stopping ??= stopWorker();
          return stopping;
        },
        kill: async () => {
          await worker.terminate();
        },
      });
    });
  });

  async function stopWorker(): Promise<void> {
    if (state === "gone") return;
    state = "stopping";
    const done = new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        opts.log.warn({ pgdata: opts.pgdata }, "embedded database did not stop in time; terminating it");
        resolve();
      }, STOP_TIMEOUT_MS);
      const finish = () => {
        clearTimeout(timer);
        resolve();
      };
      worker.on("message", (report: WorkerReport) => report.type === "stopped" && finish());
      worker.once("exit", finish);
      worker.once("error", (err) => {
        opts.log.error({ err }, "embedded database failed while stopping");
        finish();
      });
    });
    worker.postMessage({ type: "stop" } satisfies WorkerCommand);
    await done;
    await worker.terminate();
    state = "gone";
  }
}
