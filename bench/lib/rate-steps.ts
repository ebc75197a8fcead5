/**
 * The rising-rate loop the throughput scenarios share (c2s-routing, s2s, readout): offer a rate,
 * let it settle, measure counts, latency and CPU over the rest of the step, raise the rate until
 * the server falls behind, then one flood step (every session keeps its window full).
 */
import type { LoadPool, MergedSample } from "./load-pool.ts";
import { CpuMeter, load, SelfCpuMeter } from "./proc-stats.ts";
import { log, ms, round, sleep } from "./scenario.ts";

/** Offered rate of the flood step: the generator only stops at its window. */
export const FLOOD = Number.POSITIVE_INFINITY;

export interface StepTiming {
  /** Length of a step; the first warmSeconds of it are not measured. */
  readonly stepSeconds: number;
  readonly warmSeconds: number;
}

/** What one step saw, before a scenario names its fields. */
export interface StepMeasurement {
  readonly offered: number | "flood";
  readonly sample: MergedSample;
  /** Per second of the measured part of the step. */
  perSecond(count: number): number;
  /** CPU of each watched process group, in the order given. */
  readonly cpu: readonly { seconds: number; percent: number }[];
  /** CPU of this process (the generator's coordinator). */
  readonly generatorCpu: number;
  readonly p50ms: number;
  readonly p99ms: number;
  readonly loadavg: string;
}

/**
 * One step: `offer(rate)` starts the load, the first warm seconds are left out, then the pool's
 * counters and the CPU of every group in `watched` (lists of pids) are measured.
 */
export async function measureStep(
  pool: LoadPool,
  rate: number,
  offer: (rate: number) => Promise<void>,
  watched: readonly (readonly number[])[],
  timing: StepTiming,
): Promise<StepMeasurement> {
  await offer(rate);
  await sleep(timing.warmSeconds * 1000);
  await pool.sample(); // resets the counters: only the measured part counts
  const meters = watched.map((pids) => new CpuMeter(pids));
  const self = new SelfCpuMeter();
  const t0 = performance.now();
  await sleep((timing.stepSeconds - timing.warmSeconds) * 1000);
  const sample = await pool.sample();
  const seconds = (performance.now() - t0) / 1000;
  const cpu = meters.map((m) => m.lap());
  return {
    offered: rate === FLOOD ? "flood" : rate,
    sample,
    perSecond: (count) => Math.round(count / seconds),
    cpu,
    generatorCpu: Math.round(self.lap().percent),
    p50ms: ms(sample.latency.percentile(0.5)),
    p99ms: ms(sample.latency.percentile(0.99)),
    loadavg: load(),
  };
}

/** CPU microseconds per completed operation (NaN when none completed). */
export function cpuUsPer(cpuSeconds: number, completed: number): number {
  return completed > 0 ? round((cpuSeconds * 1e6) / completed, 1) : Number.NaN;
}

/** The fields the loop decides on; `throughput` names the one a scenario counts as done. */
export interface RateStep {
  readonly offered: number | "flood";
  readonly sentPerS: number;
  readonly p50ms: number;
}

export interface Ramp<S extends RateStep> {
  readonly rates: readonly number[];
  /** Measures one step at `rate` (FLOOD for the flood step). */
  step(rate: number): Promise<S>;
  /** What the scenario counts per second (delivered messages, round trips). */
  throughput(s: S): number;
  /** The console line of a step, after "offered N/s: ". */
  describe(s: S): string;
  /** What the flood step keeps in flight, for its console line ("window 50/session"). */
  floodLabel: string;
}

/**
 * Raises the offered rate step by step until saturation, then floods. Saturated: the server no
 * longer completes what is offered (or the windows are full), or a queue has built up (half the
 * operations wait more than 200 ms).
 */
export async function rampToSaturation<S extends RateStep>(ramp: Ramp<S>): Promise<S[]> {
  const steps: S[] = [];
  for (const rate of ramp.rates) {
    const s = await ramp.step(rate);
    steps.push(s);
    log(`  offered ${rate}/s: ${ramp.describe(s)}`);
    if (ramp.throughput(s) < 0.95 * rate || s.sentPerS < 0.95 * rate || s.p50ms > 200) break;
  }
  const flood = await ramp.step(FLOOD);
  steps.push(flood);
  log(`  flood (${ramp.floodLabel}): ${ramp.describe(flood)}`);
  return steps;
}

/**
 * best: the step with the highest throughput; sustained: the highest offered rate kept up with
 * (≥ 95 % of it completed, without a standing queue: median ≤ 50 ms).
 */
export function bestAndSustained<S extends RateStep>(
  steps: readonly S[],
  throughput: (s: S) => number,
): { best: S; sustained: S | undefined } {
  const sustained = steps
    .filter((s) => s.offered !== "flood" && throughput(s) >= 0.95 * s.offered && s.p50ms <= 50)
    .at(-1);
  const best = steps.reduce((a, s) => (throughput(s) > throughput(a) ? s : a));
  return { best, sustained };
}
