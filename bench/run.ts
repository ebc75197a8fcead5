/**
 * `npm run bench [scenario ...]`: runs benchmark scenarios one after another, each in its own
 * process (so one scenario's heap and JIT state cannot colour the next), prints their output and
 * keeps it, with the machine's conditions, in bench/results/<date>.json (not committed; the
 * curated figures go to docs/benchmarks.md by hand, with their conditions).
 * Loopback only; every scenario is bounded in time.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, loadavg, totalmem } from "node:os";
import { join } from "node:path";

interface Scenario {
  readonly name: string;
  readonly script: string;
  readonly args: readonly string[];
  readonly timeoutMs: number;
}

const scenarios: readonly Scenario[] = [
  { name: "xml-parser", script: "bench/xml-parser.ts", args: ["200000", "16384"], timeoutMs: 120_000 },
];

const wanted = process.argv.slice(2);
const unknown = wanted.filter((w) => !scenarios.some((s) => s.name === w));
if (unknown.length > 0) {
  console.error(
    `unknown scenario(s): ${unknown.join(", ")}; known: ${scenarios.map((s) => s.name).join(", ")}`,
  );
  process.exit(2);
}
const selected = wanted.length > 0 ? scenarios.filter((s) => wanted.includes(s.name)) : scenarios;

const conditions = {
  date: new Date().toISOString(),
  node: process.version,
  cpus: `${cpus().length} × ${cpus()[0]?.model ?? "unknown"}`,
  memoryGiB: Math.round(totalmem() / 2 ** 30),
  loadavgAtStart: loadavg().map((l) => l.toFixed(2)),
};
console.log(`conditions: ${JSON.stringify(conditions)}`);

const results: Record<string, { status: number | null; seconds: number; output: string }> = {};
let failed = false;
for (const scenario of selected) {
  console.log(`\n== ${scenario.name}`);
  const t0 = Date.now();
  const run = spawnSync(process.execPath, ["--import", "tsx", scenario.script, ...scenario.args], {
    encoding: "utf8",
    timeout: scenario.timeoutMs,
  });
  const output = `${run.stdout ?? ""}${run.stderr ?? ""}`;
  process.stdout.write(output);
  results[scenario.name] = { status: run.status, seconds: (Date.now() - t0) / 1000, output };
  if (run.status !== 0) {
    failed = true;
    console.error(`${scenario.name}: exited with ${run.status ?? run.signal}`);
  }
}

const dir = join("bench", "results");
mkdirSync(dir, { recursive: true });
const file = join(dir, `${conditions.date.replace(/[:.]/g, "-")}.json`);
writeFileSync(file, `${JSON.stringify({ conditions, results }, null, 2)}\n`);
console.log(`\nresults kept in ${file}`);
process.exit(failed ? 1 : 0);
