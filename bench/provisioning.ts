/**
 * Provisioning decisions (XEP-0324 canRead) per second and their latency p50/p99, decided from
 * the rules in the database and from the decision cache, on the embedded engine and PostgreSQL.
 * The service's own decision engine, store and audit writer run against the database the broker
 * would use; the XMPP round trip around a decision is not included (see c2s-routing for that).
 * Ownership comes from an in-memory map (the registry is not what is measured here).
 *
 * Rules: BENCH_PROV_THINGS things, each with BENCH_PROV_RULES rules (callers, domains, everyone,
 * narrowed fields). Callers are drawn from a fixed set so that most requests match a rule.
 * Options (environment): BENCH_PROV_THINGS=1000 BENCH_PROV_RULES=20 BENCH_PROV_DECISIONS=20000
 * BENCH_PROV_CONCURRENCY=8 BENCH_PROV_ENGINES=embedded,postgres (1 = embedded, 2 = postgres).
 * Prints a markdown table and one BENCH_RESULT line.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { AuditLog } from "../provisioning/audit.ts";
import { provisioningConfigSchema } from "../provisioning/config.ts";
import { DecisionEngine } from "../provisioning/decisions.ts";
import { provisioningMigrations } from "../provisioning/migrations.ts";
import type { AccessRequest } from "../provisioning/rules.ts";
import { createProvisioningStore, type ProvisioningStore } from "../provisioning/store.ts";
import { parseConfig } from "../server/config.ts";
import { silentLogger } from "../server/observability/logger.ts";
import { openStorage } from "../server/storage/open.ts";
import { embeddedDataDirFromTemplate } from "../server/storage/testing.ts";
import { createDatabase } from "../test/support/postgres.ts";
import type { ThingRegistryService } from "../thing-registry/module.ts";
import { Histogram } from "./lib/histogram.ts";
import { log, ms, num, nums, result } from "./lib/scenario.ts";

const THINGS = num("PROV_THINGS", 1000);
const RULES = num("PROV_RULES", 20);
const DECISIONS = num("PROV_DECISIONS", 20_000);
const CONCURRENCY = num("PROV_CONCURRENCY", 8);
const ENGINES = nums("PROV_ENGINES", [1, 2]).map((n) => (n === 2 ? "postgres" : "embedded"));
const CALLERS = 50;

const thingJid = (i: number) => `thing${i}@bench.test`;
const ownerOf = (i: number) => `owner${i % 100}@bench.test`;
const callerJid = (i: number) => `caller${i % CALLERS}@d${i % 5}.test`;

async function loadRules(store: ProvisioningStore): Promise<void> {
  for (let t = 0; t < THINGS; t++) {
    for (let r = 0; r < RULES; r++) {
      const scope = r % 10 === 0 ? "everyone" : r % 3 === 0 ? "domain" : "caller";
      await store.addRule(
        {
          thing: thingJid(t),
          owner: ownerOf(t),
          kind: r % 4 === 3 ? "control" : "read",
          allow: r % 7 !== 6,
          scope,
          subject: scope === "caller" ? callerJid(t + r) : scope === "domain" ? `d${r % 5}.test` : "",
          nodes: null,
          fieldNames: r % 2 === 0 ? ["Temperature", "Humidity"] : null,
          categories: null,
          parameterNames: null,
          once: false,
          origin: "bench",
        },
        RULES + 1,
      );
    }
  }
}

interface Measured {
  readonly perS: number;
  readonly p50ms: number;
  readonly p99ms: number;
}

async function measure(engine: DecisionEngine, count: number): Promise<Measured> {
  const h = new Histogram();
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < count) {
        const i = next++;
        const req: AccessRequest = {
          kind: "read",
          caller: callerJid(i * 7),
          nodes: [],
          fieldNames: ["Temperature"],
          categories: ["momentary"],
          parameterNames: [],
        };
        const t = performance.now();
        await engine.decide(thingJid(i % THINGS), req, "thing");
        h.record((performance.now() - t) * 1000);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  return { perS: Math.round(count / seconds), p50ms: ms(h.percentile(0.5)), p99ms: ms(h.percentile(0.99)) };
}

async function run(kind: "embedded" | "postgres"): Promise<Record<string, Measured | number>> {
  const dir = mkdtempSync(join(tmpdir(), "hanse-bench-prov-"));
  try {
    const database =
      kind === "postgres"
        ? { url: await createDatabase("bench_prov"), max_connections: CONCURRENCY + 2 }
        : { max_connections: CONCURRENCY + 2 };
    if (kind === "embedded") await embeddedDataDirFromTemplate(join(dir, "data"));
    const storage = await openStorage(
      parseConfig({ data_dir: join(dir, "data"), database }, "bench"),
      silentLogger(),
      {
        role: "broker",
      },
    );
    try {
      await storage.migrate("provisioning", provisioningMigrations);
      const store = createProvisioningStore(storage.db);
      const t0 = performance.now();
      await loadRules(store);
      const loadSeconds = Math.round((performance.now() - t0) / 100) / 10;
      log(`${kind}: ${THINGS * RULES} rules loaded in ${loadSeconds} s`);
      const owners = new Map(Array.from({ length: THINGS }, (_, i) => [thingJid(i), ownerOf(i)]));
      const registry: ThingRegistryService = {
        ownerOf: async (thing) => owners.get(thing),
        thingsOf: async () => [],
        onOwnershipChange: () => () => {},
      };
      const audit = new AuditLog(store, silentLogger());
      const flusher = setInterval(() => void audit.flush(), 200);
      const engineWith = (cacheSize: number) =>
        new DecisionEngine({
          store,
          registry,
          config: provisioningConfigSchema.parse({ decision_cache_size: cacheSize }),
          serviceJid: "provisioning.bench.test",
          audit,
          log: silentLogger(),
          ask: () => {},
          rulesConsumed: () => {},
        });
      try {
        const fromRules = await measure(engineWith(0), DECISIONS);
        log(`${kind} from rules: ${fromRules.perS}/s, p50 ${fromRules.p50ms} ms, p99 ${fromRules.p99ms} ms`);
        const cached = engineWith(1_000_000);
        await measure(cached, THINGS * CALLERS); // warm: every (thing, caller) pair once
        const fromCache = await measure(cached, DECISIONS * 5);
        log(`${kind} from cache: ${fromCache.perS}/s, p50 ${fromCache.p50ms} ms, p99 ${fromCache.p99ms} ms`);
        await audit.flush();
        return { loadSeconds, fromRules, fromCache };
      } finally {
        clearInterval(flusher);
        await audit.flush();
      }
    } finally {
      await storage.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const out: Record<string, unknown> = {
    things: THINGS,
    rulesPerThing: RULES,
    decisions: DECISIONS,
    concurrency: CONCURRENCY,
  };
  const lines = ["| engine | decided from | decisions/s | p50 ms | p99 ms |", "|---|---|---:|---:|---:|"];
  for (const kind of ENGINES) {
    const r = await run(kind);
    out[kind] = r;
    for (const [label, m] of [
      ["rules (DB)", r.fromRules],
      ["cache", r.fromCache],
    ] as const) {
      const v = m as Measured;
      lines.push(`| ${kind} | ${label} | ${v.perS} | ${v.p50ms} | ${v.p99ms} |`);
    }
  }
  log(
    `\n${THINGS} things × ${RULES} rules, ${CONCURRENCY} decisions in flight, audit on; load average ${loadavg()
      .map((l) => l.toFixed(2))
      .join(" ")}\n`,
  );
  log(lines.join("\n"));
  result("provisioning", out);
}

await main();
process.exit(0);
