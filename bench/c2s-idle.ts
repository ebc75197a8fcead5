/**
 * c2s idle memory: authenticated, bound, available sessions that then say nothing, at rising
 * counts (LEVELS), over STARTTLS and over plain TCP. At each level: the server's resident memory
 * (its whole process tree, /proc/PID/status VmRSS) minus its baseline, and the kernel's (slab +
 * TCP buffers, system-wide, halved: both ends of every loopback connection are on this machine).
 * With TLS, a flood probe between PROBE_PAIRS extra pairs at each level shows whether routing
 * throughput holds as idle sessions grow.
 *
 * Hanse runs with a bench-only preload (bench/lib/hanse-preload.mjs) that forces a full GC before
 * each reading and reports its heap/external split; Prosody and ejabberd are read as they are.
 *
 * Options (environment): BENCH_SERVERS  BENCH_IDLE_LEVELS=1000,10000,50000
 * BENCH_PEER_IDLE_MAX=10000 (Prosody and ejabberd stop there: they open sessions several times
 * slower than Hanse, and the whole bench must fit in 15 minutes)
 * BENCH_IDLE_TRANSPORTS=tls,plain  BENCH_PROBE_PAIRS=50  BENCH_PROBE_SECONDS=3
 * BENCH_IDLE_CONCURRENCY=200 (handshakes in flight while opening)
 * BENCH_IDLE_SECONDS=490 (the whole scenario; each server and transport gets a share of what is
 * left for opening sessions, weighted: TLS ×2, Hanse ×1.5; a level not reached in time is
 * measured as far as it got, and the higher ones are skipped)
 */
import { LoadPool } from "./lib/load-pool.ts";
import { CpuMeter, fileLimit, type KernelMemory, kernelMemory, load, rssKiB } from "./lib/proc-stats.ts";
import { log, ms, num, nums, result, round, sleep, table } from "./lib/scenario.ts";
import { type ServerUnderTest, selectedServers } from "./lib/servers.ts";

const WANTED_LEVELS = nums("IDLE_LEVELS", [1_000, 10_000, 50_000]);
const TRANSPORTS = (process.env.BENCH_IDLE_TRANSPORTS ?? "tls,plain").split(",") as ("tls" | "plain")[];
const PROBE_PAIRS = num("PROBE_PAIRS", 50);
const PROBE_S = num("PROBE_SECONDS", 3);
const CONCURRENCY = num("IDLE_CONCURRENCY", 200);
const PEER_MAX = num("PEER_IDLE_MAX", 10_000);
const TOTAL_MS = num("IDLE_SECONDS", 490) * 1000;
/** Time a (server, transport) needs besides opening sessions: start, settling, probes, stop. */
const OVERHEAD_MS = 25_000;
const started = performance.now();
const SETTLE_MS = 3000;

// Every client socket lives in this process and every server socket in the server's, both under
// the same open-file limit (the servers inherit ours): leave room for everything else.
const limit = fileLimit();
const MAX_SESSIONS = Math.floor(Math.min(limit.soft, 1e7) - 2 * PROBE_PAIRS - 600);
const LEVELS = [...new Set(WANTED_LEVELS.map((l) => Math.min(l, MAX_SESSIONS)))].sort((a, b) => a - b);
const CAPPED = WANTED_LEVELS.some((l) => l > MAX_SESSIONS);

interface Level {
  sessions: number;
  openSeconds: number;
  loginsPerS: number;
  rssMiB: number;
  processKiBPerSession: number;
  kernelKiBPerSession: number;
  totalKiBPerSession: number;
  /** Between this level and the previous one: what one more session costs. */
  marginalKiBPerSession: number | null;
  heap?: { heapUsedKiBPerSession: number; externalKiBPerSession: number };
  probe?: { deliveredPerS: number; p50ms: number; p99ms: number; serverCpu: number };
  failed: number;
  /** The opening budget ran out before this level was reached. */
  partial: boolean;
  loadavg: string;
}

interface Reading {
  rss: number;
  kernel: KernelMemory;
  heap?: Record<string, number> | undefined;
}

async function read(server: ServerUnderTest): Promise<Reading> {
  await sleep(SETTLE_MS);
  const heap = await server.collectGarbage?.();
  if (heap) await sleep(500); // let freed pages leave the RSS
  return { rss: rssKiB(server.pids()), kernel: kernelMemory(), heap };
}

async function probe(pool: LoadPool, server: ServerUnderTest): Promise<Level["probe"]> {
  await pool.traffic("probe", Number.POSITIVE_INFINITY, 20, 60);
  await sleep(1000);
  await pool.sample();
  const cpu = new CpuMeter(server.pids());
  const t0 = performance.now();
  await sleep(PROBE_S * 1000);
  const s = await pool.sample();
  const seconds = (performance.now() - t0) / 1000;
  await pool.traffic("probe", 0, 0, 0);
  await sleep(500); // in-flight messages drain before the next memory reading
  return {
    deliveredPerS: Math.round(s.delivered / seconds),
    p50ms: ms(s.latency.percentile(0.5)),
    p99ms: ms(s.latency.percentile(0.99)),
    serverCpu: Math.round(cpu.lap().percent),
  };
}

async function measure(
  server: ServerUnderTest,
  pool: LoadPool,
  transport: "tls" | "plain",
  budgetMs: number,
): Promise<Record<string, unknown>> {
  const tls = transport === "tls";
  const levelsHere = server.name === "hanse" ? LEVELS : LEVELS.filter((l) => l <= PEER_MAX);
  await server.start({ requireTls: tls });
  try {
    const top = levelsHere.at(-1)!;
    await server.ensureAccounts(2 * PROBE_PAIRS + top);
    if (tls) {
      const pairs = await pool.open({
        group: "probe",
        endpoint: server.endpoint(true),
        users: Array.from({ length: 2 * PROBE_PAIRS }, (_, i) => i),
        resource: "probe",
        presence: true,
        pairs: true,
        concurrency: 50,
      });
      if (pairs.failed > 0) throw new Error(`probe sessions failed: ${pairs.errors.join("; ")}`);
    }
    const base = await read(server);
    log(
      `${server.name} ${transport}: baseline RSS ${round(base.rss / 1024, 1)} MiB` +
        (tls ? ` (with ${2 * PROBE_PAIRS} probe sessions)` : ""),
    );
    const levels: Level[] = [];
    let open = 0;
    let failedTotal = 0;
    let previous: { sessions: number; reading: Reading } = { sessions: 0, reading: base };
    let openingMs = 0;
    for (const level of levelsHere) {
      if (openingMs >= budgetMs) break;
      const users = Array.from({ length: level - open }, (_, i) => 2 * PROBE_PAIRS + open + i);
      const t0 = performance.now();
      const r = await pool.open({
        group: "idle",
        endpoint: server.endpoint(tls),
        users,
        resource: "idle",
        presence: true,
        pairs: false,
        concurrency: CONCURRENCY,
        spreadSources: level > 25_000,
        budgetMs: budgetMs - openingMs,
      });
      openingMs += performance.now() - t0;
      const openSeconds = (performance.now() - t0) / 1000;
      open += r.opened;
      failedTotal += r.failed;
      if (r.failed > 0) log(`  ${r.failed} sessions failed: ${r.errors.slice(0, 3).join("; ")}`);
      const reading = await read(server);
      const kernel = (k: KernelMemory) => k.slabKiB + k.tcpKiB;
      // Both ends of each loopback connection are in this kernel; the server's share is about half.
      const kernelPer = (kernel(reading.kernel) - kernel(base.kernel)) / 2 / open;
      const processPer = (reading.rss - base.rss) / open;
      const marginal =
        previous.sessions > 0
          ? (reading.rss -
              previous.reading.rss +
              (kernel(reading.kernel) - kernel(previous.reading.kernel)) / 2) /
            (open - previous.sessions)
          : null;
      const entry: Level = {
        sessions: open,
        openSeconds: round(openSeconds, 1),
        loginsPerS: Math.round(r.opened / openSeconds),
        rssMiB: round(reading.rss / 1024, 1),
        processKiBPerSession: round(processPer, 1),
        kernelKiBPerSession: round(kernelPer, 1),
        totalKiBPerSession: round(processPer + kernelPer, 1),
        marginalKiBPerSession: marginal === null ? null : round(marginal, 1),
        failed: r.failed,
        partial: open + r.failed < level,
        loadavg: load(),
      };
      if (reading.heap && base.heap) {
        entry.heap = {
          heapUsedKiBPerSession: round((reading.heap.heapUsed! - base.heap.heapUsed!) / 1024 / open, 1),
          externalKiBPerSession: round(
            (reading.heap.external! +
              reading.heap.arrayBuffers! -
              base.heap.external! -
              base.heap.arrayBuffers!) /
              1024 /
              open,
            1,
          ),
        };
      }
      if (tls) entry.probe = await probe(pool, server);
      levels.push(entry);
      log(
        `  ${open} sessions${entry.partial ? ` (of ${level}: opening budget spent)` : ""} (opened at ${entry.loginsPerS}/s): RSS ${entry.rssMiB} MiB, ` +
          `${entry.processKiBPerSession} KiB/session process + ${entry.kernelKiBPerSession} kernel = ` +
          `${entry.totalKiBPerSession} KiB` +
          (entry.marginalKiBPerSession !== null ? ` (marginal ${entry.marginalKiBPerSession})` : "") +
          (entry.heap
            ? `; JS heap ${entry.heap.heapUsedKiBPerSession}, external ${entry.heap.externalKiBPerSession}`
            : "") +
          (entry.probe
            ? `; probe ${entry.probe.deliveredPerS} msg/s p50 ${entry.probe.p50ms} ms p99 ${entry.probe.p99ms} ms`
            : ""),
      );
      previous = { sessions: open, reading };
    }
    const lost = await pool.close("idle");
    if (tls) await pool.close("probe");
    return {
      version: server.version,
      baselineRssMiB: round(base.rss / 1024, 1),
      levels,
      failed: failedTotal,
      lostSessions: lost,
      openingBudgetSeconds: Math.round(budgetMs / 1000),
    };
  } finally {
    await server.stop();
  }
}

log(
  `levels ${LEVELS.join(", ")}` +
    (CAPPED
      ? ` (wanted ${WANTED_LEVELS.join(", ")}; capped by the open-file limit ${limit.soft}/${limit.hard}, ` +
        "which this process could not raise)"
      : ""),
);
const pool = new LoadPool(2);
const servers: Record<string, Record<string, unknown>> = {};
const rows: unknown[][] = [];
const available = selectedServers().filter((s) => !s.unavailable);
const units = available.length * TRANSPORTS.length;
let done = 0;
const weightOf = (name: string, transport: string) =>
  (transport === "tls" ? 2 : 1) * (name === "hanse" ? 1.5 : 1);
let weightsLeft = available.reduce(
  (sum, s) => sum + TRANSPORTS.reduce((w, t) => w + weightOf(s.name, t), 0),
  0,
);
for (const server of selectedServers()) {
  servers[server.name] = {};
  if (server.unavailable) {
    log(`${server.name}: skipped: ${server.unavailable}`);
    servers[server.name] = { unavailable: server.unavailable };
    continue;
  }
  for (const transport of TRANSPORTS) {
    // A share of the time left, so the scenario ends in time whatever the machine's speed:
    // TLS handshakes make a TLS run need about twice as long, and Hanse goes to higher levels.
    const weight = weightOf(server.name, transport);
    const left = TOTAL_MS - (performance.now() - started) - (units - done) * OVERHEAD_MS;
    const budget = Math.max(5_000, Math.min(120_000, (left * weight) / weightsLeft));
    weightsLeft -= weight;
    done++;
    try {
      const r = await measure(server, pool, transport, budget);
      servers[server.name]![transport] = r;
      for (const l of r.levels as Level[]) {
        rows.push([
          server.name,
          transport,
          l.sessions,
          l.rssMiB,
          l.processKiBPerSession,
          l.kernelKiBPerSession,
          l.totalKiBPerSession,
          l.marginalKiBPerSession ?? "-",
          l.probe?.deliveredPerS ?? "-",
        ]);
      }
    } catch (err) {
      log(`${server.name} ${transport}: FAILED: ${(err as Error).message}`);
      servers[server.name]![transport] = { error: (err as Error).message };
    }
  }
}
await pool.stop();
log("");
log(
  table(
    [
      "server",
      "transport",
      "sessions",
      "RSS MiB",
      "KiB/s proc",
      "KiB/s kernel",
      "KiB/s total",
      "marginal",
      "probe msg/s",
    ],
    rows,
  ),
);
result("c2s-idle", {
  parameters: {
    levels: LEVELS,
    peerMaxSessions: PEER_MAX,
    wantedLevels: WANTED_LEVELS,
    fileLimit: limit,
    cappedByFileLimit: CAPPED,
    transports: TRANSPORTS,
    probePairs: PROBE_PAIRS,
    probeSeconds: PROBE_S,
    seconds: TOTAL_MS / 1000,
  },
  servers,
});
