/**
 * Helpers shared by the scenario scripts: options from the environment, printing, and the one
 * machine-readable line (`BENCH_RESULT {...}`) that bench/run.ts collects into the JSON results
 * and docs/benchmarks.md.
 */
import { cpus, totalmem } from "node:os";
import { load } from "./proc-stats.ts";

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** A numeric option from the environment (BENCH_<NAME>), or the default. */
export function num(name: string, fallback: number): number {
  const v = process.env[`BENCH_${name}`];
  return v !== undefined && v !== "" && Number.isFinite(Number(v)) ? Number(v) : fallback;
}

/** A list of numbers from the environment (BENCH_<NAME>="1,2,3"), or the default. */
export function nums(name: string, fallback: readonly number[]): number[] {
  const v = process.env[`BENCH_${name}`];
  if (!v) return [...fallback];
  return v
    .split(",")
    .map(Number)
    .filter((n) => Number.isFinite(n));
}

export function log(line: string): void {
  process.stdout.write(`${line}\n`);
}

export function ms(us: number): number {
  return Math.round(us / 10) / 100;
}

export function round(n: number, digits = 0): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

export function machine(): Record<string, unknown> {
  return {
    cpus: `${cpus().length} × ${cpus()[0]?.model ?? "unknown"}`,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    loadavg: load(),
  };
}

/** Emits the scenario's result for bench/run.ts (exactly one per scenario run). */
export function result(scenario: string, data: Record<string, unknown>): void {
  log(
    `BENCH_RESULT ${JSON.stringify({ scenario, date: new Date().toISOString(), machine: machine(), ...data })}`,
  );
}

/** A fixed-width table for the console. */
export function table(header: readonly string[], rows: readonly (readonly unknown[])[]): string {
  const cells = [header, ...rows].map((r) => r.map((c) => (c === undefined ? "" : String(c))));
  const widths = header.map((_h, i) => Math.max(...cells.map((r) => r[i]?.length ?? 0)));
  return cells.map((r) => r.map((c, i) => c.padStart(widths[i]!)).join("  ")).join("\n");
}
