/**
 * Where the time goes in a V8 CPU profile (node --cpu-prof): self time by function and by file,
 * and inclusive time for the project's own functions.
 * Usage: node --import tsx bench/profile-summary.ts FILE.cpuprofile [top=25]
 * A profile of the broker under load comes from `BENCH_CPU_PROFILE=DIR npm run bench -- SCENARIO`
 * (Hanse runs with --cpu-prof and writes DIR/*.cpuprofile when it stops).
 */
import { readFileSync } from "node:fs";
import { relative } from "node:path";
import { REPO } from "./lib/servers.ts";

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
}

const [file, topText] = process.argv.slice(2);
if (!file) {
  console.error("usage: profile-summary.ts FILE.cpuprofile [top]");
  process.exit(2);
}
const top = Number(topText ?? 25);
const profile = JSON.parse(readFileSync(file, "utf8")) as Profile;

const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

const selfUs = new Map<number, number>();
let totalUs = 0;
profile.samples.forEach((id, i) => {
  const dt = profile.timeDeltas[i] ?? 0;
  selfUs.set(id, (selfUs.get(id) ?? 0) + dt);
  totalUs += dt;
});

function where(n: Node): string {
  const url = n.callFrame.url.replace(/^file:\/\//, "");
  if (!url) return "(native)";
  const rel = url.startsWith(REPO) ? relative(REPO, url) : url.replace(/^.*node_modules\//, "");
  return `${rel}:${n.callFrame.lineNumber + 1}`;
}
function label(n: Node): string {
  return `${n.callFrame.functionName || "(anonymous)"} ${where(n)}`;
}
function fileOf(n: Node): string {
  const url = n.callFrame.url.replace(/^file:\/\//, "");
  if (!url) return `(${n.callFrame.functionName || "native"})`;
  if (url.includes("/node_modules/"))
    return url.replace(/^.*node_modules\/((@[^/]+\/)?[^/]+).*$/, "$1 (package)");
  return url.startsWith(REPO) ? relative(REPO, url) : url;
}

function rank(m: Map<string, number>): [string, number][] {
  return [...m].sort((a, b) => b[1] - a[1]).slice(0, top);
}
const pct = (us: number) => `${((100 * us) / totalUs).toFixed(1).padStart(5)} %`;

const selfByFunction = new Map<string, number>();
const selfByFile = new Map<string, number>();
const inclusive = new Map<string, number>();
for (const [id, us] of selfUs) {
  const n = byId.get(id)!;
  selfByFunction.set(label(n), (selfByFunction.get(label(n)) ?? 0) + us);
  selfByFile.set(fileOf(n), (selfByFile.get(fileOf(n)) ?? 0) + us);
  // Inclusive: every distinct project function on the stack gets the sample once.
  const seen = new Set<string>();
  for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
    const node = byId.get(cur)!;
    const url = node.callFrame.url;
    if (!url.includes(REPO) || url.includes("node_modules")) continue;
    const key = label(node);
    if (seen.has(key)) continue;
    seen.add(key);
    inclusive.set(key, (inclusive.get(key) ?? 0) + us);
  }
}

console.log(`${file}: ${(totalUs / 1e6).toFixed(1)} s sampled`);
console.log("\nself time by function:");
for (const [k, us] of rank(selfByFunction)) console.log(`  ${pct(us)}  ${k}`);
console.log("\nself time by file / package:");
for (const [k, us] of rank(selfByFile)) console.log(`  ${pct(us)}  ${k}`);
console.log("\ninclusive time, project functions:");
for (const [k, us] of rank(inclusive)) console.log(`  ${pct(us)}  ${k}`);
