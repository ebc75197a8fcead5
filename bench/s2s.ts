/**
 * s2s: two Hanse brokers, each its own process with its own data directory, on loopback
 * (a.bench.test on 127.0.1.4, b.bench.test on 127.0.1.5), federated by static routes over one
 * authenticated link (STARTTLS with self-signed certificates, so dialback, XEP-0220, authenticates
 * each side). PAIRS users on A (over STARTTLS + SCRAM-SHA-256) send chat messages to PAIRS users
 * on B at a rising offered rate; per step: messages delivered per second, latency p50/p99 (send on
 * A → receive on B), the CPU of each broker. Ends at saturation, then a flood step (WINDOW
 * messages in flight per sender) gives the highest delivered rate.
 * References: RFC 6120 §5 (STARTTLS), §13.7 (certificates); XEP-0220 (dialback); RFC 6121 §8.5.3
 * (messages to a full JID).
 *
 * Options (environment): BENCH_PAIRS=100  BENCH_RATES=1000,2000,5000,...  BENCH_STEP_SECONDS=4
 * BENCH_WINDOW=50  BENCH_PAD=60.
 */
import { LoadPool } from "./lib/load-pool.ts";
import { bestAndSustained, cpuUsPer, measureStep, rampToSaturation } from "./lib/rate-steps.ts";
import { log, num, nums, result, sleep, table } from "./lib/scenario.ts";
import { Hanse } from "./lib/servers.ts";

const PAIRS = num("PAIRS", 100);
const RATES = nums("RATES", [1_000, 2_000, 5_000, 10_000, 20_000, 30_000, 40_000, 60_000, 80_000]);
const STEP_S = num("STEP_SECONDS", 4);
const WARM_S = 1;
const WINDOW = num("WINDOW", 50);
const PAD = num("PAD", 60);
const GROUP = "federated";

const A = { domain: "a.bench.test", host: "127.0.1.4", s2sPort: 25269 };
const B = { domain: "b.bench.test", host: "127.0.1.5", s2sPort: 25269 };
const brokerA = new Hanse({
  key: "s2s-a",
  domain: A.domain,
  host: A.host,
  s2s: { port: A.s2sPort, routes: { [B.domain]: `${B.host}:${B.s2sPort}` } },
});
const brokerB = new Hanse({
  key: "s2s-b",
  domain: B.domain,
  host: B.host,
  s2s: { port: B.s2sPort, routes: { [A.domain]: `${A.host}:${A.s2sPort}` } },
});

interface Step {
  offered: number | "flood";
  sentPerS: number;
  deliveredPerS: number;
  p50ms: number;
  p99ms: number;
  cpuA: number;
  cpuB: number;
  generatorCpu: number;
  /** Both brokers' CPU time per delivered message (each message passes through both). */
  cpuUsPerMsgA: number;
  cpuUsPerMsgB: number;
  loadavg: string;
}

const TIMING = { stepSeconds: STEP_S, warmSeconds: WARM_S };

async function step(pool: LoadPool, rate: number): Promise<Step> {
  const m = await measureStep(
    pool,
    rate,
    (r) => pool.traffic(GROUP, r, WINDOW, PAD),
    [brokerA.pids(), brokerB.pids()],
    TIMING,
  );
  const [a, b] = m.cpu;
  return {
    offered: m.offered,
    sentPerS: m.perSecond(m.sample.sent),
    deliveredPerS: m.perSecond(m.sample.delivered),
    p50ms: m.p50ms,
    p99ms: m.p99ms,
    cpuA: Math.round(a!.percent),
    cpuB: Math.round(b!.percent),
    generatorCpu: m.generatorCpu,
    cpuUsPerMsgA: cpuUsPer(a!.seconds, m.sample.delivered),
    cpuUsPerMsgB: cpuUsPer(b!.seconds, m.sample.delivered),
    loadavg: m.loadavg,
  };
}

function describe(s: Step): string {
  return (
    `delivered ${s.deliveredPerS}/s, p50 ${s.p50ms} ms, p99 ${s.p99ms} ms, ` +
    `CPU A ${s.cpuA}% B ${s.cpuB}%, generator ${s.generatorCpu}%`
  );
}

const pool = new LoadPool(2);
const t0 = Date.now();
let outcome: Record<string, unknown>;
try {
  await Promise.all([brokerA.start({ requireTls: true }), brokerB.start({ requireTls: true })]);
  await Promise.all([brokerA.ensureAccounts(PAIRS), brokerB.ensureAccounts(PAIRS)]);
  // Pair k: u<k> on A sends to u<k> on B.
  const users = Array.from({ length: PAIRS }, (_, k) => [k, k]).flat();
  const opened = await pool.open({
    group: GROUP,
    endpoint: brokerA.endpoint(true),
    partnerEndpoint: brokerB.endpoint(true),
    users,
    resource: "bench",
    presence: true,
    pairs: true,
    concurrency: 50,
  });
  if (opened.failed > 0) throw new Error(`${opened.failed} sessions failed: ${opened.errors.join("; ")}`);
  log(`s2s: ${opened.opened} sessions (${PAIRS} on each broker) in ${Date.now() - t0} ms`);

  // The first message opens the link (connect, STARTTLS, dialback both ways): not measured.
  const linkT0 = Date.now();
  await pool.traffic(GROUP, 50, WINDOW, PAD);
  let linkMs = Number.NaN;
  for (let i = 0; i < 300; i++) {
    await sleep(100);
    if ((await pool.sample()).delivered > 0) {
      linkMs = Date.now() - linkT0;
      break;
    }
  }
  if (!Number.isFinite(linkMs)) throw new Error("no message crossed the s2s link within 30 s");
  log(`s2s: link up, first message delivered after ${linkMs} ms`);
  // Warm-up (JIT, buffers), not measured.
  await pool.traffic(GROUP, RATES[0]!, WINDOW, PAD);
  await sleep(2000);

  const steps = await rampToSaturation({
    rates: RATES,
    step: (rate) => step(pool, rate),
    throughput: (s) => s.deliveredPerS,
    describe,
    floodLabel: `window ${WINDOW}/sender`,
  });
  await pool.traffic(GROUP, 0, 0, 0);
  const lost = await pool.close(GROUP);
  const { best, sustained } = bestAndSustained(steps, (s) => s.deliveredPerS);
  log("");
  log(
    table(
      ["offered", "delivered/s", "p50 ms", "p99 ms", "CPU A %", "CPU B %", "µs/msg A", "µs/msg B"],
      steps.map((s) => [
        s.offered,
        s.deliveredPerS,
        s.p50ms,
        s.p99ms,
        s.cpuA,
        s.cpuB,
        s.cpuUsPerMsgA,
        s.cpuUsPerMsgB,
      ]),
    ),
  );
  outcome = {
    version: brokerA.version,
    sessions: opened.opened,
    lostSessions: lost,
    linkSetupMs: linkMs,
    saturation: best,
    sustained: sustained ?? null,
    steps,
  };
} catch (err) {
  log(`s2s: FAILED: ${(err as Error).message}`);
  outcome = { version: brokerA.version, error: (err as Error).message };
} finally {
  await pool.stop();
  await Promise.all([brokerA.stop(), brokerB.stop()]);
}
result("s2s", {
  parameters: {
    pairs: PAIRS,
    rates: RATES,
    stepSeconds: STEP_S,
    window: WINDOW,
    bodyPad: PAD,
    link: "STARTTLS, self-signed certificates, dialback (XEP-0220)",
  },
  hanse: outcome,
});
if ("error" in outcome) process.exitCode = 1;
