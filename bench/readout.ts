/**
 * readout: XEP-0323 readout round trips through the broker. THINGS simulated thermometers (the
 * device SDK, firmware/thing, in a process of their own: bench/lib/readout-things.ts) are online
 * at Hanse; READERS sessions of the load generator (STARTTLS + SCRAM-SHA-256, approved as
 * friends on the devices) send momentary readout requests to them in turn at a rising offered
 * rate. A round trip is request → `accepted` → the `fields` message with `done`; latency is
 * request sent → `done` received. Per step: round trips per second, p50/p99, the CPU of the
 * broker, of the things' process and of the generator. Ends at saturation, then a flood step
 * (WINDOW readouts unanswered per reader).
 * References: XEP-0323 §3.1 (request, accepted, fields, done); RFC 6121 §8.5.3 (iq to a full JID).
 *
 * Options (environment): BENCH_READOUT_THINGS=200  BENCH_READOUT_READERS=20
 * BENCH_READOUT_RATES=500,1000,2000,...  BENCH_STEP_SECONDS=4  BENCH_READOUT_WINDOW=20.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";
import { LoadPool } from "./lib/load-pool.ts";
import { processTree } from "./lib/proc-stats.ts";
import { bestAndSustained, cpuUsPer, measureStep, rampToSaturation } from "./lib/rate-steps.ts";
import type { ThingsSpec } from "./lib/readout-things.ts";
import { log, num, nums, result, sleep, table } from "./lib/scenario.ts";
import { Hanse, PASSWORD, REPO, USER_PREFIX } from "./lib/servers.ts";

const THINGS = num("READOUT_THINGS", 200);
const READERS = num("READOUT_READERS", 20);
const RATES = nums("READOUT_RATES", [500, 1_000, 2_000, 5_000, 10_000, 20_000, 30_000]);
const STEP_S = num("STEP_SECONDS", 4);
const WARM_S = 1;
const WINDOW = num("READOUT_WINDOW", 20);
const GROUP = "readers";
const RESOURCE = "sensor";

const broker = new Hanse();

/** Starts the things' process; resolves once every thing is online (or failed). */
function startThings(spec: ThingsSpec): Promise<{ child: ChildProcess; started: number; failed: number }> {
  const child = spawn(
    process.execPath,
    ["--import", "tsx", join(REPO, "bench/lib/readout-things.ts"), JSON.stringify(spec)],
    { cwd: REPO, stdio: ["ignore", "pipe", "pipe"] },
  );
  process.once("exit", () => child.kill("SIGKILL"));
  let output = "";
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`things not online in 120 s:\n${output.slice(-2000)}`)),
      120_000,
    );
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const line = output.split("\n").find((l) => l.startsWith("THINGS_READY "));
      if (!line) return;
      clearTimeout(timer);
      const r = JSON.parse(line.slice("THINGS_READY ".length)) as {
        started: number;
        failed: number;
        errors: string[];
      };
      if (r.failed > 0) log(`things: ${r.failed} failed to start: ${r.errors.join("; ")}`);
      child.stdout!.removeAllListeners("data");
      child.stdout!.resume();
      resolve({ child, started: r.started, failed: r.failed });
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", (c: Buffer) => {
      output += c.toString();
      if (output.length > 100_000) output = output.slice(-50_000);
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`things exited with ${code}:\n${output.slice(-2000)}`));
    });
  });
}

async function stopThings(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  child.kill("SIGTERM");
  if ((await Promise.race([exited, sleep(15_000).then(() => "timeout")])) === "timeout")
    child.kill("SIGKILL");
}

interface Step {
  offered: number | "flood";
  sentPerS: number;
  roundTripsPerS: number;
  failedPerS: number;
  p50ms: number;
  p99ms: number;
  brokerCpu: number;
  thingsCpu: number;
  generatorCpu: number;
  brokerCpuUsPerReadout: number;
  loadavg: string;
}

const TIMING = { stepSeconds: STEP_S, warmSeconds: WARM_S };

async function step(
  pool: LoadPool,
  targets: readonly string[],
  thingsPid: number,
  rate: number,
): Promise<Step> {
  const m = await measureStep(
    pool,
    rate,
    (r) => pool.readouts(GROUP, targets, r, WINDOW),
    [broker.pids(), processTree(thingsPid)],
    TIMING,
  );
  const [b, things] = m.cpu;
  return {
    offered: m.offered,
    sentPerS: m.perSecond(m.sample.sent),
    roundTripsPerS: m.perSecond(m.sample.delivered),
    failedPerS: m.perSecond(m.sample.failed),
    p50ms: m.p50ms,
    p99ms: m.p99ms,
    brokerCpu: Math.round(b!.percent),
    thingsCpu: Math.round(things!.percent),
    generatorCpu: m.generatorCpu,
    brokerCpuUsPerReadout: cpuUsPer(b!.seconds, m.sample.delivered),
    loadavg: m.loadavg,
  };
}

function describe(s: Step): string {
  return (
    `${s.roundTripsPerS} round trips/s (${s.failedPerS}/s failed), p50 ${s.p50ms} ms, p99 ${s.p99ms} ms, ` +
    `CPU broker ${s.brokerCpu}% things ${s.thingsCpu}% generator ${s.generatorCpu}%`
  );
}

const pool = new LoadPool(2);
const t0 = Date.now();
let things: ChildProcess | undefined;
let outcome: Record<string, unknown>;
try {
  await broker.start({ requireTls: true });
  // Accounts u0 … u(THINGS-1) are the things, then the readers.
  await broker.ensureAccounts(THINGS + READERS);
  const readerIndices = Array.from({ length: READERS }, (_, i) => THINGS + i);
  const ready = await startThings({
    domain: broker.domain,
    host: broker.host,
    port: broker.endpoint(true).port,
    prefix: USER_PREFIX,
    password: PASSWORD,
    first: 0,
    count: THINGS,
    readers: readerIndices.map((i) => `${USER_PREFIX}${i}@${broker.domain}`),
    resource: RESOURCE,
    parallel: 16,
  });
  things = ready.child;
  if (ready.started === 0) throw new Error("no thing came online");
  const targets = Array.from({ length: THINGS }, (_, i) => `${USER_PREFIX}${i}@${broker.domain}/${RESOURCE}`);
  const opened = await pool.open({
    group: GROUP,
    endpoint: broker.endpoint(true),
    users: readerIndices,
    resource: "reader",
    presence: true,
    pairs: false,
    readouts: true,
    concurrency: 20,
  });
  if (opened.failed > 0) throw new Error(`${opened.failed} readers failed: ${opened.errors.join("; ")}`);
  log(`readout: ${ready.started} things and ${opened.opened} readers online in ${Date.now() - t0} ms`);

  // Warm-up (JIT, buffers), not measured; a readout must come back.
  await pool.readouts(GROUP, targets, RATES[0]!, WINDOW);
  await sleep(2000);
  const warm = await pool.sample();
  if (warm.delivered === 0) throw new Error(`no readout answered during the warm-up (${warm.failed} failed)`);

  const thingsPid = things.pid!;
  const steps = await rampToSaturation({
    rates: RATES,
    step: (rate) => step(pool, targets, thingsPid, rate),
    throughput: (s) => s.roundTripsPerS,
    describe,
    floodLabel: `window ${WINDOW}/reader`,
  });
  await pool.readouts(GROUP, targets, 0, 0);
  const lost = await pool.close(GROUP);
  const { best, sustained } = bestAndSustained(steps, (s) => s.roundTripsPerS);
  log("");
  log(
    table(
      ["offered", "round trips/s", "failed/s", "p50 ms", "p99 ms", "broker %", "things %", "µs/readout"],
      steps.map((s) => [
        s.offered,
        s.roundTripsPerS,
        s.failedPerS,
        s.p50ms,
        s.p99ms,
        s.brokerCpu,
        s.thingsCpu,
        s.brokerCpuUsPerReadout,
      ]),
    ),
  );
  outcome = {
    version: broker.version,
    things: ready.started,
    thingsFailed: ready.failed,
    readers: opened.opened,
    lostSessions: lost,
    saturation: best,
    sustained: sustained ?? null,
    steps,
  };
} catch (err) {
  log(`readout: FAILED: ${(err as Error).message}`);
  outcome = { version: broker.version, error: (err as Error).message };
} finally {
  await pool.stop();
  if (things) await stopThings(things);
  await broker.stop();
}
result("readout", {
  parameters: { things: THINGS, readers: READERS, rates: RATES, stepSeconds: STEP_S, window: WINDOW },
  hanse: outcome,
});
if ("error" in outcome) process.exitCode = 1;
