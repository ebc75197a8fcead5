/**
 * What grew in the JS heap between two V8 heap snapshots, by kind and constructor, per session.
 * Usage: node --import tsx bench/heap-summary.ts BEFORE.heapsnapshot AFTER.heapsnapshot [sessions] [top]
 * Snapshots of the broker come from `HANSE_BENCH_HEAP_SNAPSHOT=DIR npm run bench -- c2s-idle`
 * (one per reading: the baseline, then each level).
 */
import { readFileSync } from "node:fs";

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[]] } };
  nodes: number[];
  strings: string[];
}

function tally(file: string): Map<string, { size: number; count: number }> {
  const s = JSON.parse(readFileSync(file, "utf8")) as Snapshot;
  const fields = s.snapshot.meta.node_fields;
  const types = s.snapshot.meta.node_types[0];
  const width = fields.length;
  const iType = fields.indexOf("type");
  const iName = fields.indexOf("name");
  const iSize = fields.indexOf("self_size");
  const out = new Map<string, { size: number; count: number }>();
  for (let i = 0; i < s.nodes.length; i += width) {
    const type = types[s.nodes[i + iType]!]!;
    let name = s.strings[s.nodes[i + iName]!]!;
    // Strings and code are many distinct names: group them by kind only.
    if (
      type === "string" ||
      type === "concatenated string" ||
      type === "sliced string" ||
      type === "code" ||
      type === "number"
    )
      name = "";
    if (type === "closure") name = `${name || "(anonymous)"}()`;
    const key = `${type}${name ? ` ${name.slice(0, 80)}` : ""}`;
    const e = out.get(key) ?? { size: 0, count: 0 };
    e.size += s.nodes[i + iSize]!;
    e.count++;
    out.set(key, e);
  }
  return out;
}

const [before, after, sessionsText, topText] = process.argv.slice(2);
if (!before || !after) {
  console.error("usage: heap-summary.ts BEFORE AFTER [sessions] [top]");
  process.exit(2);
}
const sessions = Number(sessionsText ?? 1);
const top = Number(topText ?? 30);
const a = tally(before);
const b = tally(after);
const rows: [string, number, number][] = [];
let total = 0;
for (const [k, e] of b) {
  const d = e.size - (a.get(k)?.size ?? 0);
  const dc = e.count - (a.get(k)?.count ?? 0);
  total += d;
  rows.push([k, d, dc]);
}
rows.sort((x, y) => y[1] - x[1]);
console.log(`heap growth: ${(total / 1024 / sessions).toFixed(2)} KiB per session (${sessions} sessions)`);
for (const [k, d, dc] of rows.slice(0, top)) {
  console.log(
    `  ${(d / sessions).toFixed(0).padStart(7)} B/session  ${(dc / sessions).toFixed(2).padStart(7)} objects/session  ${k}`,
  );
}
