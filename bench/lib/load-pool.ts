/**
 * The scenario side of the load generator: two worker threads (one per core on the reference
 * machine), commands fanned out to all of them, replies merged.
 */
import { Worker } from "node:worker_threads";
import { Histogram } from "./histogram.ts";
import type {
  Command,
  Endpoint,
  LoginResult,
  OpenResult,
  Progress,
  Reply,
  Request,
  Sample,
} from "./protocol.ts";

export interface MergedSample {
  readonly sent: number;
  readonly skipped: number;
  readonly delivered: number;
  readonly latency: Histogram;
  readonly failed: number;
}

export class LoadPool {
  private readonly workers: Worker[] = [];
  private readonly pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  private nextId = 1;
  private dead: Error | undefined;
  /** Latest progress per worker and group (for "opened 12000/20000" lines). */
  private readonly progress = new Map<string, Progress>();

  constructor(size = 2) {
    for (let i = 0; i < size; i++) {
      const worker = new Worker(new URL("./load-worker.mjs", import.meta.url));
      worker.on("message", (msg: Reply | Progress) => {
        if ("progress" in msg) {
          this.progress.set(`${i}/${msg.group}`, msg);
          return;
        }
        const p = this.pending.get(msg.id);
        if (!p) return;
        this.pending.delete(msg.id);
        if (msg.ok) p.resolve(msg.data);
        else p.reject(new Error(msg.error));
      });
      const died = (err: Error) => {
        this.dead = err;
        for (const p of this.pending.values()) p.reject(err);
        this.pending.clear();
      };
      worker.on("error", died);
      worker.on("exit", (code) => died(new Error(`load worker ${i} exited (${code})`)));
      this.workers.push(worker);
    }
  }

  get size(): number {
    return this.workers.length;
  }

  private ask<T>(worker: Worker, command: Command): Promise<T> {
    const id = this.nextId++;
    if (this.dead) return Promise.reject(this.dead);
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      worker.postMessage({ id, command } satisfies Request);
    });
  }

  private all<T>(commandFor: (i: number) => Command): Promise<T[]> {
    return Promise.all(this.workers.map((w, i) => this.ask<T>(w, commandFor(i))));
  }

  /** Sessions opened so far in `group`, over all workers. */
  opened(group: string): { opened: number; failed: number } {
    let opened = 0;
    let failed = 0;
    for (const [key, p] of this.progress) {
      if (key.endsWith(`/${group}`)) {
        opened += p.opened;
        failed += p.failed;
      }
    }
    return { opened, failed };
  }

  /**
   * Opens sessions for `users` (split over the workers; with `pairs`, whole pairs stay in one
   * worker). Resolves when every one is bound or failed.
   */
  async open(opts: {
    group: string;
    endpoint: Endpoint;
    users: readonly number[];
    resource: string;
    presence: boolean;
    pairs: boolean;
    /** With pairs: where the second of each pair logs in; then only the first sends. */
    partnerEndpoint?: Endpoint;
    /** The sessions read sensors (see readouts()). */
    readouts?: boolean;
    concurrency: number;
    spreadSources?: boolean;
    /** Give up starting new sessions after this many ms (the level is then partial). */
    budgetMs?: number;
  }): Promise<OpenResult & { latency: Histogram }> {
    const step = opts.pairs ? 2 : 1;
    const parts: number[][] = this.workers.map(() => []);
    for (let i = 0; i < opts.users.length; i += step) {
      const w = (i / step) % this.workers.length;
      parts[w]!.push(...opts.users.slice(i, i + step));
    }
    const results = await this.all<OpenResult>((i) => ({
      op: "open",
      group: opts.group,
      endpoint: opts.endpoint,
      users: parts[i]!,
      resource: opts.resource,
      presence: opts.presence,
      pairs: opts.pairs,
      ...(opts.partnerEndpoint ? { partnerEndpoint: opts.partnerEndpoint } : {}),
      ...(opts.readouts ? { readouts: true } : {}),
      concurrency: Math.max(1, Math.ceil(opts.concurrency / this.workers.length)),
      spreadSources: opts.spreadSources ?? false,
      ...(opts.budgetMs !== undefined ? { deadline: Date.now() + opts.budgetMs } : {}),
    }));
    for (const key of [...this.progress.keys()])
      if (key.endsWith(`/${opts.group}`)) this.progress.delete(key);
    const latency = new Histogram();
    for (const r of results) latency.merge({ counts: r.loginLatency });
    return {
      opened: results.reduce((a, r) => a + r.opened, 0),
      failed: results.reduce((a, r) => a + r.failed, 0),
      errors: results.flatMap((r) => r.errors),
      loginLatency: latency.counts,
      mechanisms: [...new Set(results.flatMap((r) => r.mechanisms))],
      latency,
    };
  }

  /** Offers `rate` messages/s in total (split evenly), or Infinity = fill every window. */
  async traffic(group: string, rate: number, window: number, pad: number): Promise<void> {
    const each = rate === Number.POSITIVE_INFINITY ? rate : rate / this.workers.length;
    await this.all((_i) => ({ op: "traffic", group, rate: each, window, pad }));
  }

  /**
   * XEP-0323 readouts: `rate` requests/s in total (or Infinity = fill every window) from the
   * group's sessions to `targets` in turn.
   */
  async readouts(group: string, targets: readonly string[], rate: number, window: number): Promise<void> {
    const each = rate === Number.POSITIVE_INFINITY ? rate : rate / this.workers.length;
    await this.all((_i) => ({ op: "readouts", group, targets, rate: each, window }));
  }

  async sample(): Promise<MergedSample> {
    const samples = await this.all<Sample>(() => ({ op: "sample" }));
    const latency = new Histogram();
    for (const s of samples) latency.merge({ counts: s.latency });
    return {
      sent: samples.reduce((a, s) => a + s.sent, 0),
      skipped: samples.reduce((a, s) => a + s.skipped, 0),
      delivered: samples.reduce((a, s) => a + s.delivered, 0),
      failed: samples.reduce((a, s) => a + s.failed, 0),
      latency,
    };
  }

  async login(opts: {
    endpoint: Endpoint;
    users: readonly number[];
    concurrency: number;
    durationMs: number;
  }): Promise<{
    logins: number;
    failed: number;
    errors: string[];
    latency: Histogram;
    mechanisms: string[];
  }> {
    const results = await this.all<LoginResult>((i) => ({
      op: "login",
      endpoint: opts.endpoint,
      users: opts.users.filter((_u, k) => k % this.workers.length === i),
      concurrency: Math.max(1, Math.ceil(opts.concurrency / this.workers.length)),
      durationMs: opts.durationMs,
    }));
    const latency = new Histogram();
    for (const r of results) latency.merge({ counts: r.latency });
    return {
      logins: results.reduce((a, r) => a + r.logins, 0),
      failed: results.reduce((a, r) => a + r.failed, 0),
      errors: results.flatMap((r) => r.errors),
      latency,
      mechanisms: [...new Set(results.flatMap((r) => r.mechanisms))],
    };
  }

  /** Closes a group; returns how many of its sessions had been lost before. */
  async close(group: string): Promise<number> {
    const r = await this.all<{ lost: number }>(() => ({ op: "close", group }));
    return r.reduce((a, x) => a + x.lost, 0);
  }

  async stop(): Promise<void> {
    this.dead = new Error("load pool stopped");
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
