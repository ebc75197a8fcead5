/**
 * Renders scenario results as Markdown and puts each into its block of docs/benchmarks.md,
 * between `<!-- bench:NAME:start -->` and `<!-- bench:NAME:end -->`; the prose around the blocks
 * (method, profiling notes) is written by hand and left alone.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";

// biome-ignore lint/suspicious/noExplicitAny: results are plain JSON of several shapes
type Json = Record<string, any>;

interface Conditions {
  readonly date: string;
  readonly cpus: string;
  readonly memoryGiB: number;
  readonly node: string;
}

interface ScenarioRun {
  readonly status: number | null;
  readonly seconds: number;
  readonly output: string;
  readonly result?: Json;
}

const PEERS = ["prosody", "ejabberd"] as const;
const TITLE: Record<string, string> = { hanse: "Hanse", prosody: "Prosody", ejabberd: "ejabberd" };

function n(x: unknown, digits = 0): string {
  if (typeof x !== "number" || !Number.isFinite(x)) return "–";
  return x.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function ratio(a: unknown, b: unknown): string {
  if (typeof a !== "number" || typeof b !== "number" || !(b > 0)) return "–";
  return `×${(a / b).toFixed(a / b >= 10 ? 0 : a / b >= 1 ? 1 : 2)}`;
}

function when(c: Conditions, r: Json, run: ScenarioRun): string {
  const date = new Date(r.date ?? c.date).toISOString().slice(0, 16).replace("T", " ");
  return (
    `_Measured ${date} UTC by \`npm run bench\` (${Math.round(run.seconds)} s) · ${r.machine?.cpus ?? c.cpus}, ` +
    `${c.memoryGiB} GiB · Node ${c.node} · load average at the end ${r.machine?.loadavg ?? "?"} · ` +
    "**the load generator ran on the same cores as the server**._"
  );
}

function serverLabel(name: string, s: Json | undefined): string {
  return `${TITLE[name] ?? name} ${s?.version ?? ""}`.trim();
}

function missing(name: string, s: Json | undefined): string | undefined {
  if (!s) return `${TITLE[name]}: not run`;
  if (s.unavailable) return `${TITLE[name]}: not run (${s.unavailable})`;
  if (s.error) return `${TITLE[name]}: failed (${s.error})`;
  return undefined;
}

/** A step's offered rate: a number, or "flood" for the flood step. */
function offered(st: Json): string {
  return st.offered === "flood" ? "flood" : n(st.offered);
}

/** "p50 / p99" of a step, in milliseconds. */
function latency(st: Json): string {
  return `${n(st.p50ms, 1)} / ${n(st.p99ms, 1)}`;
}

/** The two last cells of a summary row: the highest rate kept up with and its latency. */
function sustainedCells(sus: Json | null | undefined): string {
  return `${sus ? n(sus.offered) : "–"} | ${sus ? latency(sus) : "–"}`;
}

/** The rising rates a scenario offered, for its description. */
function rates(p: Json): string {
  return p.rates.map((x: number) => n(x)).join(", ");
}

/** The collapsed table of every step, after a summary. */
function everyStep(header: string, align: string, rows: readonly string[]): string[] {
  return ["", "<details><summary>Every step</summary>", "", header, align, ...rows, "", "</details>"];
}

function routing(c: Conditions, run: ScenarioRun, r: Json): string {
  const p = r.parameters;
  const out: string[] = [when(c, r, run), ""];
  out.push(
    `${p.pairs * 2} sessions (${p.pairs} pairs) over ${p.tls} + SCRAM-SHA-256 send each other chat messages ` +
      `(a ${p.bodyPad}-character body plus a timestamp). Offered rates rise (${rates(p)} msg/s, ` +
      `${p.stepSeconds} s steps, the first second of each not measured) until the server falls behind ` +
      "(delivers under 95 % of the offer, or the median latency passes 200 ms); then a " +
      `flood step keeps ${p.window} messages in flight per session. Latency is send → receive.`,
    "",
    "| server | max delivered msg/s | p50 / p99 ms there | server CPU there | server CPU µs per msg | highest offered rate kept up with (≥ 95 % delivered, p50 ≤ 50 ms) | p50 / p99 ms there |",
    "|---|---:|---:|---:|---:|---:|---:|",
  );
  const notes: string[] = [];
  for (const [name, s] of Object.entries(r.servers as Json)) {
    const why = missing(name, s);
    if (why) {
      notes.push(why);
      continue;
    }
    const sat = s.saturation;
    const sus = s.sustained;
    out.push(
      `| ${serverLabel(name, s)} | ${n(sat.deliveredPerS)} | ${latency(sat)} | ` +
        `${n(sat.serverCpu)} % | ${n(sat.cpuUsPerMsg, 1)} | ${sustainedCells(sus)} |`,
    );
  }
  out.push("");
  const h = r.servers.hanse;
  if (h?.saturation) {
    for (const peer of PEERS) {
      const s = r.servers[peer];
      if (!s?.saturation) continue;
      out.push(
        `- **Hanse / ${TITLE[peer]}**: max delivered ${ratio(h.saturation.deliveredPerS, s.saturation.deliveredPerS)}, ` +
          `highest rate kept up with ${ratio(h.sustained?.offered, s.sustained?.offered)}, ` +
          `server CPU per message ${ratio(h.saturation.cpuUsPerMsg, s.saturation.cpuUsPerMsg)} (lower is better).`,
      );
    }
    const ej = r.servers.ejabberd?.saturation?.deliveredPerS;
    const pr = r.servers.prosody?.saturation?.deliveredPerS;
    const verdict = (x: number | undefined, k: number) =>
      x ? (h.saturation.deliveredPerS >= k * x ? "met" : "**not met**") : "not measured";
    out.push(
      `- Targets (max delivered): ≥ 3× ejabberd: ${verdict(ej, 3)}; ≥ 10× Prosody: ${verdict(pr, 10)}.`,
    );
  }
  for (const note of notes) out.push(`- ${note}`);
  const stepRows = Object.entries(r.servers as Json).flatMap(([name, s]) =>
    ((s.steps ?? []) as Json[]).map(
      (st) =>
        `| ${TITLE[name]} | ${offered(st)} | ${n(st.sentPerS)} | ${n(st.deliveredPerS)} | ` +
        `${n(st.p50ms, 1)} | ${n(st.p99ms, 1)} | ${n(st.serverCpu)} % | ${n(st.generatorCpu)} % | ${st.loadavg} |`,
    ),
  );
  out.push(
    ...everyStep(
      "| server | offered msg/s | sent/s | delivered/s | p50 ms | p99 ms | server CPU | generator CPU | load average |",
      "|---|---:|---:|---:|---:|---:|---:|---:|---|",
      stepRows,
    ),
  );
  return out.join("\n");
}

function login(c: Conditions, run: ScenarioRun, r: Json): string {
  const p = r.parameters;
  const out: string[] = [when(c, r, run), ""];
  out.push(
    `${p.concurrency} logins at a time for ${p.seconds} s (after a 2 s warm-up), each a new TCP connection → ` +
      `${p.tls} (full handshake, RSA-2048 certificate, no session resumption) → SCRAM-SHA-256 → resource binding → ` +
      `close, cycling over ${n(p.accounts)} accounts.`,
    "",
    "| server | logins/s | p50 / p99 ms | server CPU | server CPU ms per login | failed |",
    "|---|---:|---:|---:|---:|---:|",
  );
  const notes: string[] = [];
  for (const [name, s] of Object.entries(r.servers as Json)) {
    const why = missing(name, s);
    if (why) {
      notes.push(why);
      continue;
    }
    out.push(
      `| ${serverLabel(name, s)} | ${n(s.loginsPerS)} | ${n(s.p50ms, 1)} / ${n(s.p99ms, 1)} | ${n(s.serverCpu)} % | ` +
        `${n(s.cpuMsPerLogin, 2)} | ${n(s.failed)} |`,
    );
  }
  out.push("");
  const h = r.servers.hanse;
  if (h?.loginsPerS) {
    for (const peer of PEERS) {
      const s = r.servers[peer];
      if (!s?.loginsPerS) continue;
      out.push(
        `- **Hanse / ${TITLE[peer]}**: logins/s ${ratio(h.loginsPerS, s.loginsPerS)}, ` +
          `server CPU per login ${ratio(h.cpuMsPerLogin, s.cpuMsPerLogin)} (lower is better).`,
      );
    }
  }
  for (const note of notes) out.push(`- ${note}`);
  return out.join("\n");
}

function idle(c: Conditions, run: ScenarioRun, r: Json): string {
  const p = r.parameters;
  const out: string[] = [when(c, r, run), ""];
  out.push(
    `Authenticated, bound, available sessions that then stay quiet, opened ${p.transports.join(" and ")} ` +
      `up to ${p.levels.map((x: number) => n(x)).join(", ")} sessions` +
      (p.cappedByFileLimit
        ? ` (**wanted ${p.wantedLevels.map((x: number) => n(x)).join(", ")}: capped by this machine's open-file ` +
          `limit of ${n(p.fileLimit.soft)}, which the bench could not raise**)`
        : "") +
      (p.peerMaxSessions < p.levels.at(-1)
        ? `; Prosody and ejabberd only up to ${n(p.peerMaxSessions)} (opening 10,000 TLS sessions takes each server about a minute here, and the whole bench must fit in 15 minutes)`
        : "") +
      ". Per session: the server's resident memory (whole process tree) over its baseline, plus half of the " +
      "kernel's growth in slab and TCP buffer memory (both ends of each loopback connection are on this machine). " +
      `"Marginal" is what each session added since the previous level. With TLS, ${p.probePairs} extra pairs flood ` +
      `each other for ${p.probeSeconds} s at every level (routing throughput with that many idle sessions). KiB = 1,024 bytes.`,
    "",
    "| server | transport | sessions | opened at /s | server RSS MiB | process KiB/session | kernel KiB/session | total KiB/session | marginal KiB/session | routing msg/s (p99 ms) alongside |",
    "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
  );
  const notes: string[] = [];
  for (const [name, s] of Object.entries(r.servers as Json)) {
    const why = missing(name, s);
    if (why) {
      notes.push(why);
      continue;
    }
    for (const transport of p.transports as string[]) {
      const t = s[transport];
      if (!t || t.error) {
        notes.push(`${TITLE[name]} ${transport}: ${t?.error ? `failed (${t.error})` : "not run"}`);
        continue;
      }
      for (const l of t.levels) {
        out.push(
          `| ${serverLabel(name, s[transport])} | ${transport} | ${n(l.sessions)}${l.partial ? "*" : ""} | ${n(l.loginsPerS)} | ` +
            `${n(l.rssMiB, 1)} | ${n(l.processKiBPerSession, 1)} | ` +
            `${n(l.kernelKiBPerSession, 1)} | ${n(l.totalKiBPerSession, 1)} | ${n(l.marginalKiBPerSession, 1)} | ` +
            `${l.probe ? `${n(l.probe.deliveredPerS)} (${n(l.probe.p99ms, 0)})` : "–"} |`,
        );
      }
      if (t.levels.some((l: Json) => l.partial)) {
        notes.push(
          `${TITLE[name]} ${transport}: * = its ${n(t.openingBudgetSeconds)} s for opening sessions ran out before the next level ` +
            `(sessions opened at ${t.levels.map((l: Json) => n(l.loginsPerS)).join(", ")}/s)`,
        );
      }
      if (t.failed > 0 || t.lostSessions > 0) {
        notes.push(
          `${TITLE[name]} ${transport}: ${t.failed} sessions failed to open, ${t.lostSessions} were lost while idle`,
        );
      }
    }
  }
  out.push("");
  const top = (s: Json | undefined, transport: string) => s?.[transport]?.levels?.at(-1);
  for (const transport of p.transports as string[]) {
    const h = top(r.servers.hanse, transport);
    if (!h) continue;
    for (const peer of PEERS) {
      // Compare at the peer's highest level, with Hanse's reading at the same session count.
      const s = top(r.servers[peer], transport);
      const hs = (r.servers.hanse?.[transport]?.levels ?? []).find((l: Json) => l.sessions === s?.sessions);
      if (!s || !hs) continue;
      out.push(
        `- **Hanse / ${TITLE[peer]}**, ${transport}, ${n(hs.sessions)} sessions: memory per session ` +
          `${ratio(hs.totalKiBPerSession, s.totalKiBPerSession)} (lower is better), sessions opened per second ` +
          `${ratio(hs.loginsPerS, s.loginsPerS)}` +
          (hs.probe && s.probe
            ? `, routing alongside ${ratio(hs.probe.deliveredPerS, s.probe.deliveredPerS)}`
            : "") +
          ".",
      );
    }
    if (h.heap) {
      out.push(
        `- Hanse ${transport}, ${n(h.sessions)} sessions: JS heap after a full GC ${n(h.heap.heapUsedKiBPerSession, 1)} ` +
          "KiB per session; the rest of its process share is native (" +
          (transport === "tls" ? "TLS state in OpenSSL, " : "") +
          "libuv handles, V8 and malloc overhead).",
      );
    }
    const limitKiB = transport === "tls" ? 40_000 / 1024 : 12_000 / 1024;
    const target = transport === "tls" ? "40 KB" : "12 KB";
    const worst = Math.max(h.totalKiBPerSession, h.marginalKiBPerSession ?? 0);
    out.push(
      `- Target, Hanse ${transport} ≤ ${target} (${n(limitKiB, 1)} KiB) per idle session at ${n(h.sessions)}: ` +
        `${worst <= limitKiB ? "met" : "**not met**"} (${n(h.totalKiBPerSession, 1)} KiB average, ` +
        `${n(h.marginalKiBPerSession, 1)} marginal).`,
    );
    const levels = r.servers.hanse?.[transport]?.levels ?? [];
    if (levels[0]?.probe && levels.length > 1) {
      // "Does not fall": the last level against the best before it (10 % for noise).
      const rates = levels.map((l: Json) => l.probe.deliveredPerS as number);
      const best = Math.max(...rates.slice(0, -1));
      const last = rates.at(-1)!;
      out.push(
        `- Target, Hanse routing does not fall as idle sessions grow (${levels.map((l: Json) => n(l.sessions)).join(" → ")}): ` +
          `${rates.map((r: number) => n(r)).join(" → ")} msg/s, ` +
          `${last >= 0.9 * best ? "met (within 10 % of the best level)" : `**not met** (${n((100 * (last - best)) / best)} % from the best level)`}.`,
      );
    }
  }
  const baselines = Object.entries(r.servers as Json)
    .filter(([, s]) => s?.tls?.baselineRssMiB || s?.plain?.baselineRssMiB)
    .map(([name, s]) => `${TITLE[name]} ${n(s.plain?.baselineRssMiB ?? s.tls?.baselineRssMiB)} MiB`);
  if (baselines.length > 0) {
    out.push(
      `- Resident memory before any idle session (plain-TCP run): ${baselines.join(", ")}. ` +
        "Hanse's includes its embedded PGlite database engine.",
    );
  }
  for (const note of notes) out.push(`- ${note}`);
  return out.join("\n");
}

function s2s(c: Conditions, run: ScenarioRun, r: Json): string {
  const p = r.parameters;
  const h = r.hanse as Json;
  const out: string[] = [when(c, r, run), ""];
  out.push(
    `Two Hanse brokers, each its own process with its own data directory, federated over one link ` +
      `(${p.link}; static routes on loopback). ${p.pairs} users on broker A, logged in over STARTTLS + ` +
      `SCRAM-SHA-256, send chat messages (a ${p.bodyPad}-character body plus a timestamp) to ${p.pairs} ` +
      `users on broker B, one way. Offered rates rise (${rates(p)} msg/s, ` +
      `${p.stepSeconds} s steps, the first second of each not measured) until the brokers fall behind; then a ` +
      `flood step keeps ${p.window} messages in flight per sender. Latency is send on A → receive on B. ` +
      "The generator and both brokers share the two cores.",
    "",
  );
  if (h.error) {
    out.push(`- Hanse: failed (${h.error})`);
    return out.join("\n");
  }
  const sat = h.saturation;
  const sus = h.sustained;
  out.push(
    "| server | max delivered msg/s | p50 / p99 ms there | CPU A / B there | CPU µs per msg A / B | highest offered rate kept up with (≥ 95 % delivered, p50 ≤ 50 ms) | p50 / p99 ms there |",
    "|---|---:|---:|---:|---:|---:|---:|",
    `| ${serverLabel("hanse", h)} | ${n(sat.deliveredPerS)} | ${latency(sat)} | ` +
      `${n(sat.cpuA)} % / ${n(sat.cpuB)} % | ${n(sat.cpuUsPerMsgA, 1)} / ${n(sat.cpuUsPerMsgB, 1)} | ` +
      `${sustainedCells(sus)} |`,
    "",
    `- The link came up (connect, STARTTLS, dialback) and carried its first message ${n(h.linkSetupMs)} ms ` +
      `after the first send. Sessions lost during the run: ${n(h.lostSessions)}.`,
    ...everyStep(
      "| offered msg/s | sent/s | delivered/s | p50 ms | p99 ms | CPU A | CPU B | µs/msg A | µs/msg B | generator CPU | load average |",
      "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
      ((h.steps ?? []) as Json[]).map(
        (st) =>
          `| ${offered(st)} | ${n(st.sentPerS)} | ${n(st.deliveredPerS)} | ` +
          `${n(st.p50ms, 1)} | ${n(st.p99ms, 1)} | ${n(st.cpuA)} % | ${n(st.cpuB)} % | ${n(st.cpuUsPerMsgA, 1)} | ` +
          `${n(st.cpuUsPerMsgB, 1)} | ${n(st.generatorCpu)} % | ${st.loadavg} |`,
      ),
    ),
  );
  return out.join("\n");
}

function readout(c: Conditions, run: ScenarioRun, r: Json): string {
  const p = r.parameters;
  const h = r.hanse as Json;
  const out: string[] = [when(c, r, run), ""];
  out.push(
    `${n(p.things)} simulated thermometers (the device SDK, \`firmware/thing\`, all in one process of their own, ` +
      `each with its own STARTTLS + SCRAM connection) are online at Hanse; ${p.readers} generator sessions, approved ` +
      "as friends on the devices, send them momentary XEP-0323 readout requests in turn. A round trip is " +
      "request → `accepted` → `fields` with `done` (one iq in, an iq result and a message out, all through the " +
      `broker). Offered rates rise (${rates(p)} readouts/s, ${p.stepSeconds} s steps) ` +
      `until the round trips fall behind; then a flood step keeps ${p.window} readouts unanswered per reader. ` +
      "Broker, things and generator share the two cores.",
    "",
  );
  if (h.error) {
    out.push(`- Hanse: failed (${h.error})`);
    return out.join("\n");
  }
  const sat = h.saturation;
  const sus = h.sustained;
  out.push(
    "| server | max round trips/s | p50 / p99 ms there | CPU broker / things there | broker CPU µs per readout | highest offered rate kept up with (≥ 95 %, p50 ≤ 50 ms) | p50 / p99 ms there |",
    "|---|---:|---:|---:|---:|---:|---:|",
    `| ${serverLabel("hanse", h)} | ${n(sat.roundTripsPerS)} | ${latency(sat)} | ` +
      `${n(sat.brokerCpu)} % / ${n(sat.thingsCpu)} % | ${n(sat.brokerCpuUsPerReadout, 1)} | ` +
      `${sustainedCells(sus)} |`,
    "",
    `- Things online: ${n(h.things)} (${n(h.thingsFailed)} failed to start); readers: ${n(h.readers)}; ` +
      `sessions lost during the run: ${n(h.lostSessions)}.`,
    ...everyStep(
      "| offered/s | sent/s | round trips/s | failed/s | p50 ms | p99 ms | CPU broker | CPU things | CPU generator | broker µs/readout | load average |",
      "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
      ((h.steps ?? []) as Json[]).map(
        (st) =>
          `| ${offered(st)} | ${n(st.sentPerS)} | ${n(st.roundTripsPerS)} | ` +
          `${n(st.failedPerS)} | ${n(st.p50ms, 1)} | ${n(st.p99ms, 1)} | ${n(st.brokerCpu)} % | ${n(st.thingsCpu)} % | ` +
          `${n(st.generatorCpu)} % | ${n(st.brokerCpuUsPerReadout, 1)} | ${st.loadavg} |`,
      ),
    ),
  );
  return out.join("\n");
}

function provisioning(c: Conditions, run: ScenarioRun, r: Json): string {
  const out: string[] = [
    when(c, r, run).replace(" · **the load generator ran on the same cores as the server**", ""),
    "",
  ];
  const engines = ["embedded", "postgres"].filter((e) => r[e]);
  out.push(
    "XEP-0324 canRead decisions by the provisioning service's own decision engine, store and audit writer " +
      "(provisioning/), in the bench process, against the embedded PGlite engine and PostgreSQL; the XMPP round " +
      `trip is not included (see c2s routing for that cost). ${n(r.things)} things with ${r.rulesPerThing} rules each ` +
      `(callers, domains, everyone, narrowed fields), ${r.concurrency} decisions in flight, audit on. "From rules": ` +
      `decision cache off, ${n(r.decisions)} decisions; "from cache": every (thing, caller) pair decided once, then ` +
      `${n(r.decisions * 5)} decisions answered from the cache.`,
    "",
    "| engine | decided from | decisions/s | p50 ms | p99 ms | rules loaded in |",
    "|---|---|---:|---:|---:|---:|",
  );
  for (const e of engines) {
    const x = r[e];
    const label = e === "postgres" ? "PostgreSQL" : "embedded (PGlite)";
    for (const [from, m] of [
      ["rules (database)", x.fromRules],
      ["cache", x.fromCache],
    ] as const) {
      out.push(
        `| ${label} | ${from} | ${n(m?.perS)} | ${n(m?.p50ms, 2)} | ${n(m?.p99ms, 2)} | ${from === "cache" ? "" : `${n(x.loadSeconds, 1)} s`} |`,
      );
    }
  }
  return out.join("\n");
}

function registry(c: Conditions, run: ScenarioRun, r: Json): string {
  const sizes = Object.keys(r)
    .filter((k) => /^\d+$/.test(k))
    .sort((a, b) => Number(a) - Number(b));
  const out: string[] = [
    when(c, r, run).replace(" · **the load generator ran on the same cores as the server**", ""),
    "",
  ];
  out.push(
    `The registry's own store and search code (thing-registry/) against ${r.engine === "postgres" ? "PostgreSQL" : "the embedded PGlite engine"}` +
      `${r.postgresVersion ? ` ${r.postgresVersion}` : ""}, in the bench process; the XMPP round trip is not included ` +
      `(see c2s routing for that cost). Claimed public things with ${r.tagsPerThing} tags each, loaded with set-based SQL ` +
      "(generate_series; secondary indexes built after the load). Search: six kinds of query " +
      `(${Object.keys(r[sizes[0] ?? ""]?.perQuery ?? {}).join("; ")}), ${r.searchesPerQuery} of each, pages of ${r.page}. ` +
      `Claims: ${n(r.claims)} things registered through the store with a KEY, half claimed one at a time, half ` +
      `${r.claimConcurrency} at a time.`,
    "",
    "| things | search p50 | search p99 | slowest query kind, p50 | claims/s (one at a time) | claims/s (concurrent) | registers/s | load time |",
    "| ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |",
  );
  for (const size of sizes) {
    const x = r[size];
    const slowest = Object.entries(x.perQuery as Json).reduce(
      (a: [string, Json] | undefined, e: [string, Json]) => (!a || e[1].p50ms > a[1].p50ms ? e : a),
      undefined,
    );
    out.push(
      `| ${n(Number(size))} | ${n(x.p50ms, 1)} ms | ${n(x.p99ms, 1)} ms | ${slowest ? `${slowest[0]}: ${n(slowest[1].p50ms, 1)} ms` : "–"} | ` +
        `${n(x.claimsPerS)} | ${n(x.concurrentClaimsPerS)} | ${n(x.registerPerS)} | ${n(x.loadSeconds, 0)} s |`,
    );
  }
  if (r.skipped?.length)
    out.push(
      "",
      `- Not measured (time limit of the scenario): ${r.skipped.map((x: number) => n(x)).join(", ")} things.`,
    );
  return out.join("\n");
}

function verbatim(c: Conditions, run: ScenarioRun): string {
  const date = c.date.slice(0, 16).replace("T", " ");
  return [
    `_Measured ${date} UTC by \`npm run bench\` · ${c.cpus}, ${c.memoryGiB} GiB · Node ${c.node}._`,
    "",
    "```",
    run.output.trim(),
    "```",
  ].join("\n");
}

/** Rewrites the blocks of the scenarios in `runs`; returns the names of the blocks written. */
export function updateDocs(
  file: string,
  conditions: Conditions,
  runs: Record<string, ScenarioRun>,
): string[] {
  let doc = existsSync(file) ? readFileSync(file, "utf8") : "# Benchmarks\n";
  const updated: string[] = [];
  for (const [name, run] of Object.entries(runs)) {
    let body: string | undefined;
    const r = run.result;
    try {
      if (name === "c2s-routing" && r) body = routing(conditions, run, r);
      else if (name === "c2s-login" && r) body = login(conditions, run, r);
      else if (name === "c2s-idle" && r) body = idle(conditions, run, r);
      else if (name === "s2s" && r) body = s2s(conditions, run, r);
      else if (name === "registry" && r) body = registry(conditions, run, r);
      else if (name === "readout" && r) body = readout(conditions, run, r);
      else if (name === "provisioning" && r) body = provisioning(conditions, run, r);
      else if (name === "xml-parser" && run.status === 0) body = verbatim(conditions, run);
    } catch (err) {
      console.error(`docs: cannot render ${name}: ${(err as Error).message}`);
    }
    if (!body) continue;
    const start = `<!-- bench:${name}:start -->`;
    const end = `<!-- bench:${name}:end -->`;
    const block = `${start}\n${body}\n${end}`;
    const i = doc.indexOf(start);
    const j = doc.indexOf(end);
    if (i >= 0 && j > i) doc = doc.slice(0, i) + block + doc.slice(j + end.length);
    else doc = `${doc.trimEnd()}\n\n## ${name}\n\n${block}\n`;
    updated.push(name);
  }
  if (updated.length > 0) writeFileSync(file, doc);
  return updated;
}
