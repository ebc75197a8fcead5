/**
 * c2s routing: PAIRS authenticated pairs over STARTTLS + SCRAM-SHA-256 send each other chat
 * messages at a rising offered rate; per step: messages delivered per second, latency p50/p99
 * (send → receive, from a timestamp in the body), server CPU. Ends at saturation, then one flood
 * step (every session keeps WINDOW messages in flight) gives the highest delivered rate.
 * Runs against Hanse and, when installed, Prosody and ejabberd, with the same generator.
 *
 * Options (environment): BENCH_SERVERS=hanse,prosody,ejabberd  BENCH_PAIRS=100
 * BENCH_RATES=1000,2000,5000,...  BENCH_STEP_SECONDS=4  BENCH_WINDOW=50  BENCH_PAD=60
 * BENCH_CPU_PROFILE=DIR (Hanse runs with --cpu-prof, profile written to DIR).
 */
import { LoadPool } from "./lib/load-pool.ts";
import { bestAndSustained, cpuUsPer, measureStep, rampToSaturation } from "./lib/rate-steps.ts";
import { log, num, nums, result, sleep, table } from "./lib/scenario.ts";
import { measureEach, type ServerUnderTest } from "./lib/servers.ts";

const PAIRS = num("PAIRS", 100);
const RATES = nums("RATES", [1_000, 2_000, 5_000, 10_000, 20_000, 30_000, 40_000, 60_000, 80_000, 120_000]);
const STEP_S = num("STEP_SECONDS", 4);
const WARM_S = 1;
const WINDOW = num("WINDOW", 50);
const PAD = num("PAD", 60);

interface Step {
  offered: number | "flood";
  sentPerS: number;
  deliveredPerS: number;
  p50ms: number;
  p99ms: number;
  serverCpu: number;
  generatorCpu: number;
  cpuUsPerMsg: number;
  loadavg: string;
}

const TIMING = { stepSeconds: STEP_S, warmSeconds: WARM_S };

/** One step: offer `rate` for STEP_S seconds, measure the last STEP_S - WARM_S. */
async function step(pool: LoadPool, server: ServerUnderTest, rate: number): Promise<Step> {
  const m = await measureStep(
    pool,
    rate,
    (r) => pool.traffic("pairs", r, WINDOW, PAD),
    [server.pids()],
    TIMING,
  );
  const [c] = m.cpu;
  return {
    offered: m.offered,
    sentPerS: m.perSecond(m.sample.sent),
    deliveredPerS: m.perSecond(m.sample.delivered),
    p50ms: m.p50ms,
    p99ms: m.p99ms,
    serverCpu: Math.round(c!.percent),
    generatorCpu: m.generatorCpu,
    cpuUsPerMsg: cpuUsPer(c!.seconds, m.sample.delivered),
    loadavg: m.loadavg,
  };
}

function describe(s: Step): string {
  return (
    `delivered ${s.deliveredPerS}/s, p50 ${s.p50ms} ms, p99 ${s.p99ms} ms, ` +
    `server CPU ${s.serverCpu}%, generator CPU ${s.generatorCpu}%`
  );
}

async function measure(server: ServerUnderTest, pool: LoadPool): Promise<Record<string, unknown>> {
  const t0 = Date.now();
  await server.start({ requireTls: true });
  try {
    await server.ensureAccounts(2 * PAIRS);
    const users = Array.from({ length: 2 * PAIRS }, (_, i) => i);
    const opened = await pool.open({
      group: "pairs",
      endpoint: server.endpoint(true),
      users,
      resource: "bench",
      presence: true,
      pairs: true,
      concurrency: 50,
    });
    if (opened.failed > 0) throw new Error(`${opened.failed} sessions failed: ${opened.errors.join("; ")}`);
    log(
      `${server.name}: ${opened.opened} sessions (${opened.mechanisms.join(", ")}) in ${Date.now() - t0} ms`,
    );
    // Warm-up (JIT, buffers), not measured.
    await pool.traffic("pairs", RATES[0]!, WINDOW, PAD);
    await sleep(2000);
    const steps = await rampToSaturation({
      rates: RATES,
      step: (rate) => step(pool, server, rate),
      throughput: (s) => s.deliveredPerS,
      describe,
      floodLabel: `window ${WINDOW}/session`,
    });
    await pool.traffic("pairs", 0, 0, 0);
    const lost = await pool.close("pairs");
    const { best, sustained } = bestAndSustained(steps, (s) => s.deliveredPerS);
    return {
      version: server.version,
      sessions: opened.opened,
      lostSessions: lost,
      mechanism: opened.mechanisms.join(", "),
      saturation: {
        deliveredPerS: best.deliveredPerS,
        p50ms: best.p50ms,
        p99ms: best.p99ms,
        serverCpu: best.serverCpu,
        generatorCpu: best.generatorCpu,
        cpuUsPerMsg: best.cpuUsPerMsg,
      },
      sustained: sustained ?? null,
      steps,
    };
  } finally {
    await server.stop();
  }
}

const pool = new LoadPool(2);
const { servers, rows } = await measureEach(
  (server) => measure(server, pool),
  (name, r) => {
    const sat = r.saturation as Step;
    const sus = r.sustained as Step | null;
    return [
      name,
      sat.deliveredPerS,
      sat.p50ms,
      sat.p99ms,
      sat.serverCpu,
      sat.cpuUsPerMsg,
      sus?.offered ?? "-",
      sus?.p50ms ?? "-",
      sus?.p99ms ?? "-",
    ];
  },
);
await pool.stop();
log("");
log(
  table(
    ["server", "max msg/s", "p50 ms", "p99 ms", "CPU %", "CPU µs/msg", "sustained /s", "p50 ms", "p99 ms"],
    rows,
  ),
);
result("c2s-routing", {
  parameters: {
    pairs: PAIRS,
    rates: RATES,
    stepSeconds: STEP_S,
    window: WINDOW,
    bodyPad: PAD,
    tls: "STARTTLS",
  },
  servers,
});
