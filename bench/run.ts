/**
 * `npm run bench [scenario ...] [--no-docs]`: runs benchmark scenarios one after another, each in
 * its own process (so one scenario's heap and JIT state cannot colour the next), shows their
 * output as it comes and keeps it, with the machine's conditions, in bench/results/<date>.json
 * (not committed). Each scenario's `BENCH_RESULT {...}` line also rewrites that scenario's block
 * in docs/benchmarks.md (between `<!-- bench:NAME -->` markers), unless --no-docs.
 * Loopback only; every scenario is bounded in time. Scenario options come from BENCH_*
 * environment variables (see each script's header).
 */
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, loadavg, totalmem } from "node:os";
import { join } from "node:path";
import { updateDocs } from "./lib/report.ts";

interface Scenario {
  readonly name: string;
  readonly script: string;
  readonly args: readonly string[];
  readonly timeoutMs: number;
  /** Needs many open files (idle sessions): raise the limit for it if we may. */
  readonly manyFiles?: boolean;
  /** BENCH_* options for the suite run; an option already set in the environment wins. */
  readonly env?: Readonly<Record<string, string>>;
}

/** The whole run must end within 15 minutes (issue #8); c2s-idle, last, gets what is left. */
const RUN_BUDGET_S = 870;
const IDLE_MAX_S = 490;
const IDLE_MIN_S = 120;
/** What c2s-idle takes beyond its own budget (starting and stopping the servers). */
const IDLE_OVERHEAD_S = 40;

const scenarios: readonly Scenario[] = [
  // Kill-timeouts, above the usual times (15-25 s, ~100 s, ~50 s, ~70 s, ~130 s, ~60 s, ~60 s, then c2s-idle
  // bounded by what is left of RUN_BUDGET_S), so the whole run stays bounded even on a machine
  // much busier than expected.
  { name: "xml-parser", script: "bench/xml-parser.ts", args: ["200000", "16384"], timeoutMs: 90_000 },
  { name: "c2s-routing", script: "bench/c2s-routing.ts", args: [], timeoutMs: 180_000 },
  { name: "c2s-login", script: "bench/c2s-login.ts", args: [], timeoutMs: 100_000 },
  { name: "s2s", script: "bench/s2s.ts", args: [], timeoutMs: 150_000 },
  {
    name: "registry",
    script: "bench/registry.ts",
    args: [],
    timeoutMs: 300_000,
    // PostgreSQL (a private throw-away cluster, test/support/postgres.ts); 60 searches per query
    // kind and a time limit keep it near 2 minutes.
    env: { BENCH_REGISTRY_SEARCHES: "60", BENCH_REGISTRY_MAX_SECONDS: "240" },
  },
  {
    name: "provisioning",
    script: "bench/provisioning.ts",
    args: [],
    timeoutMs: 150_000,
    // Both engines (embedded PGlite, then PostgreSQL). Fewer rules and decisions than its
    // defaults: rules are added one by one, and the embedded engine decides ~500-1,000/s from
    // rules here, so the defaults would take minutes.
    env: { BENCH_PROV_THINGS: "100", BENCH_PROV_DECISIONS: "5000" },
  },
  { name: "readout", script: "bench/readout.ts", args: [], timeoutMs: 150_000 },
  { name: "c2s-idle", script: "bench/c2s-idle.ts", args: [], timeoutMs: 560_000, manyFiles: true },
];

const flags = process.argv.slice(2).filter((a) => a.startsWith("--"));
const wanted = process.argv.slice(2).filter((a) => !a.startsWith("--"));
const unknown = wanted.filter((w) => !scenarios.some((s) => s.name === w));
const badFlags = flags.filter((f) => f !== "--no-docs" && !f.startsWith("--docs-from="));
if (unknown.length > 0 || badFlags.length > 0) {
  console.error(
    `unknown scenario(s) or option(s): ${[...unknown, ...badFlags].join(", ")}; ` +
      `known: ${scenarios.map((s) => s.name).join(", ")}; options: --no-docs, --docs-from=RESULTS.json`,
  );
  process.exit(2);
}

// --docs-from=bench/results/X.json: rewrite the blocks from a kept run (e.g. the quietest of
// several on a shared machine) instead of measuring.
const docsFrom = flags.find((f) => f.startsWith("--docs-from="))?.slice("--docs-from=".length);
if (docsFrom) {
  const kept = JSON.parse(readFileSync(docsFrom, "utf8")) as {
    conditions: Parameters<typeof updateDocs>[1];
    results: Parameters<typeof updateDocs>[2];
  };
  const runs = Object.fromEntries(
    Object.entries(kept.results).filter(([name]) => wanted.length === 0 || wanted.includes(name)),
  );
  console.log(
    `docs/benchmarks.md: updated ${updateDocs("docs/benchmarks.md", kept.conditions, runs).join(", ")}`,
  );
  process.exit(0);
}
const selected = wanted.length > 0 ? scenarios.filter((s) => wanted.includes(s.name)) : scenarios;

/**
 * The open-file limit for many-session scenarios: as high as `prlimit` may set it (root with
 * CAP_SYS_RESOURCE can go past the hard limit), else none (the scenario caps itself and says so).
 */
function fileLimitWrapper(): string[] {
  let nrOpen = 1_048_576;
  try {
    nrOpen = Number(readFileSync("/proc/sys/fs/nr_open", "utf8").trim()) || nrOpen;
  } catch {
    // not Linux
  }
  const want = Math.min(nrOpen, 1_048_576);
  const probe = spawnSync("prlimit", [`--nofile=${want}:${want}`, "true"], { stdio: "ignore" });
  return probe.status === 0 ? ["prlimit", `--nofile=${want}:${want}`] : [];
}

const conditions = {
  date: new Date().toISOString(),
  node: process.version,
  cpus: `${cpus().length} × ${cpus()[0]?.model ?? "unknown"}`,
  memoryGiB: Math.round(totalmem() / 2 ** 30),
  loadavgAtStart: loadavg().map((l) => l.toFixed(2)),
};
console.log(`conditions: ${JSON.stringify(conditions)}`);

/** c2s-idle's budget: what is left of the run's, within its usual bounds (unless set by hand). */
function idleBudget(elapsedS: number): Scenario {
  const base = scenarios.find((s) => s.name === "c2s-idle")!;
  if (process.env.BENCH_IDLE_SECONDS) return base;
  const seconds = Math.round(
    Math.max(IDLE_MIN_S, Math.min(IDLE_MAX_S, RUN_BUDGET_S - elapsedS - IDLE_OVERHEAD_S)),
  );
  return {
    ...base,
    env: { BENCH_IDLE_SECONDS: String(seconds) },
    timeoutMs: (seconds + IDLE_OVERHEAD_S + 30) * 1000,
  };
}

function runScenario(scenario: Scenario): Promise<{ status: number | null; output: string }> {
  const wrapper = scenario.manyFiles ? fileLimitWrapper() : [];
  const argv = [...wrapper, process.execPath, "--import", "tsx", scenario.script, ...scenario.args];
  return new Promise((resolve) => {
    const child = spawn(argv[0]!, argv.slice(1), {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...scenario.env, ...process.env },
    });
    let output = "";
    const take = (chunk: Buffer, to: NodeJS.WriteStream) => {
      const text = chunk.toString();
      output += text;
      // The machine-readable line is for us, not for the reader.
      to.write(
        text
          .split("\n")
          .filter((l) => !l.startsWith("BENCH_RESULT "))
          .join("\n"),
      );
    };
    child.stdout.on("data", (c: Buffer) => take(c, process.stdout));
    child.stderr.on("data", (c: Buffer) => take(c, process.stderr));
    const timer = setTimeout(() => {
      output += `\n${scenario.name}: killed after ${scenario.timeoutMs / 1000} s\n`;
      child.kill("SIGTERM");
      setTimeout(() => child.kill("SIGKILL"), 20_000).unref();
    }, scenario.timeoutMs);
    child.on("close", (status) => {
      clearTimeout(timer);
      resolve({ status, output });
    });
  });
}

const results: Record<
  string,
  { status: number | null; seconds: number; output: string; result?: Record<string, unknown> }
> = {};
let failed = false;
const started = Date.now();
for (const chosen of selected) {
  const scenario = chosen.name === "c2s-idle" ? idleBudget((Date.now() - started) / 1000) : chosen;
  console.log(`\n== ${scenario.name}`);
  if (scenario.env)
    console.log(
      `(${Object.entries(scenario.env)
        .map(([k, v]) => `${k}=${process.env[k] ?? v}`)
        .join(" ")})`,
    );
  const t0 = Date.now();
  const run = await runScenario(scenario);
  const line = run.output.split("\n").find((l) => l.startsWith("BENCH_RESULT "));
  results[scenario.name] = {
    status: run.status,
    seconds: (Date.now() - t0) / 1000,
    output: run.output
      .split("\n")
      .filter((l) => !l.startsWith("BENCH_RESULT "))
      .join("\n"),
    ...(line ? { result: JSON.parse(line.slice("BENCH_RESULT ".length)) as Record<string, unknown> } : {}),
  };
  console.log(`(${scenario.name}: ${((Date.now() - t0) / 1000).toFixed(0)} s)`);
  if (run.status !== 0) {
    failed = true;
    console.error(`${scenario.name}: exited with ${run.status}`);
  }
}

const dir = join("bench", "results");
mkdirSync(dir, { recursive: true });
const file = join(dir, `${conditions.date.replace(/[:.]/g, "-")}.json`);
const totalSeconds = (Date.now() - started) / 1000;
writeFileSync(file, `${JSON.stringify({ conditions, totalSeconds, results }, null, 2)}\n`);
console.log(`\nall scenarios: ${totalSeconds.toFixed(0)} s; results kept in ${file}`);
if (!flags.includes("--no-docs")) {
  const updated = updateDocs("docs/benchmarks.md", conditions, results);
  if (updated.length > 0) console.log(`docs/benchmarks.md: updated ${updated.join(", ")}`);
}
process.exit(failed ? 1 : 0);
