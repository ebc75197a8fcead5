/**
 * Thing registry (XEP-0347) at scale: search latency p50/p99 with 100,000 and 1,000,000 claimed
 * public things (six tags each), and claims per second. The registry's own store and search code
 * run against the database the broker would use (PostgreSQL by default; the embedded engine with
 * BENCH_REGISTRY_ENGINE=embedded); the XMPP round trip around a search is not included (see
 * c2s-routing for that cost).
 *
 * Things are loaded with SQL (generate_series), then searched with a fixed mix of queries; claims
 * use things registered through the store (with a KEY), claimed one after another and then
 * CLAIM_CONCURRENCY at a time.
 *
 * Options (environment): BENCH_REGISTRY_THINGS="100000,1000000" BENCH_REGISTRY_SEARCHES=300
 * (per query kind) BENCH_REGISTRY_CLAIMS=2000 BENCH_REGISTRY_CLAIM_CONCURRENCY=8
 * BENCH_REGISTRY_ENGINE=postgres|embedded BENCH_REGISTRY_MAX_SECONDS=600 (skip a larger size
 * when the time per thing so far says it would end past this).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseConfig } from "../server/config.ts";
import { silentLogger } from "../server/observability/logger.ts";
import type { Db } from "../server/storage/db.ts";
import { openStorage } from "../server/storage/open.ts";
import { embeddedDataDirFromTemplate } from "../server/storage/testing.ts";
import { createDatabase } from "../test/support/postgres.ts";
import { registryMigrations } from "../thing-registry/migrations.ts";
import { searchThings } from "../thing-registry/search.ts";
import { createRegistryStore, type RegistryStore } from "../thing-registry/store.ts";
import type { SearchOp, Tag } from "../thing-registry/tags.ts";
import { Histogram } from "./lib/histogram.ts";
import { log, ms, num, nums, result, round, table } from "./lib/scenario.ts";

const SIZES = nums("REGISTRY_THINGS", [100_000, 1_000_000]);
const SEARCHES = num("REGISTRY_SEARCHES", 300);
const CLAIMS = num("REGISTRY_CLAIMS", 2000);
const CLAIM_CONCURRENCY = num("REGISTRY_CLAIM_CONCURRENCY", 8);
const MAX_SECONDS = num("REGISTRY_MAX_SECONDS", 600);
const ENGINE = process.env.BENCH_REGISTRY_ENGINE === "embedded" ? "embedded" : "postgres";
const PAGE = 20;
const CITIES = Array.from({ length: 100 }, (_, i) => `City-${String(i).padStart(3, "0")}`);

/**
 * The registry's secondary indexes (not those behind its constraints), as pg_indexes spells them.
 * A bulk load drops them and builds each once at the end: one sort instead of millions of index
 * insertions (about 3× faster at 1M things). The definitions are read from the database, so the
 * rebuilt indexes are exactly the migration's.
 */
async function secondaryIndexes(db: Db): Promise<{ name: string; definition: string }[]> {
  return db<{ name: string; definition: string }[]>`
    select indexname as name, indexdef as definition from pg_indexes
    where tablename in ('registry_things', 'registry_tags')
      and indexname not in (select conname from pg_constraint)`;
}

/** Adds things `from`..`to` (inclusive), claimed and public, with six tags each. */
async function load(db: Db, from: number, to: number): Promise<void> {
  const indexes = await secondaryIndexes(db);
  for (const { name } of indexes) await db.unsafe(`drop index "${name}"`);
  await insertThings(db, from, to);
  await db.begin(async (tx) => {
    // Enough sort memory to build each index in one pass.
    await tx`set local maintenance_work_mem = '256MB'`;
    for (const { definition } of indexes) await tx.unsafe(definition);
  });
  await db`analyze registry_things`;
  await db`analyze registry_tags`;
}

/** Set-based SQL (generate_series): the things, then six tags each. */
async function insertThings(db: Db, from: number, to: number): Promise<void> {
  await db`
    insert into registry_things (jid, owner, public, claimed_at)
    select 'thing' || i || '@bench.test', 'owner' || (i % 1000) || '@bench.test', true, now()
    from generate_series(${from}::int, ${to}::int) i`;
  const ids = db`
    select id, substring(jid from 6 for position('@' in jid) - 6)::int as i
    from registry_things where jid like 'thing%@bench.test'
      and substring(jid from 6 for position('@' in jid) - 6)::int between ${from} and ${to}`;
  await db`
    insert into registry_tags (thing_id, name_key, name, str_value, num_value)
    select t.id, n.key, n.key,
      case n.key
        when 'MAN' then 'man' || (t.i % 50) || '.test'
        when 'MODEL' then 'M-' || (t.i % 200)
        when 'SN' then lpad(t.i::text, 10, '0')
        when 'CITY' then 'City-' || lpad((t.i % 100)::text, 3, '0')
      end,
      case n.key
        when 'V' then (t.i % 30) / 10.0
        when 'LAT' then ((t.i::bigint * 7919) % 18000) / 100.0 - 90
      end
    from (${ids}) t, (values ('MAN'), ('MODEL'), ('SN'), ('CITY'), ('V'), ('LAT')) n(key)`;
}

type Query = {
  readonly name: string;
  readonly ops: (k: number, n: number) => SearchOp[];
  readonly offset?: number;
};

const QUERIES: readonly Query[] = [
  {
    name: "SN = (one thing)",
    ops: (k, n) => [{ op: "strEq", name: "SN", value: String(((k * 7877) % n) + 1).padStart(10, "0") }],
  },
  {
    name: "MAN = AND MODEL =",
    ops: (k) => [
      { op: "strEq", name: "MAN", value: `man${(k * 3) % 50}.test` },
      { op: "strEq", name: "MODEL", value: `M-${(k * 3) % 50}` },
    ],
  },
  {
    // A 7-digit prefix of the 10-digit serial numbers: about 1,000 things match.
    name: "SN mask 'prefix*'",
    ops: (k, n) => [
      {
        op: "strMask",
        name: "SN",
        value: `${String((k * 37) % Math.max(1, Math.floor(n / 1000))).padStart(7, "0")}*`,
        wildcard: "*",
      },
    ],
  },
  {
    name: "CITY = AND LAT range",
    ops: (k) => [
      { op: "strEq", name: "CITY", value: CITIES[k % 100]! },
      { op: "numRange", name: "LAT", min: 10, minIncluded: true, max: 20, maxIncluded: false },
    ],
  },
  {
    name: "V >= AND MAN <>",
    ops: (k) => [
      { op: "numGtEq", name: "V", value: (k % 30) / 10 },
      { op: "strNEq", name: "MAN", value: "man0.test" },
    ],
  },
  {
    name: "MAN =, offset 1000",
    ops: (k) => [{ op: "strEq", name: "MAN", value: `man${k % 50}.test` }],
    offset: 1000,
  },
];

async function measureSearches(db: Db, store: RegistryStore, n: number) {
  const all = new Histogram();
  const rows: unknown[][] = [];
  const perQuery: Record<string, unknown> = {};
  for (const q of QUERIES) {
    const h = new Histogram();
    let found = 0;
    for (let k = 0; k < SEARCHES + 10; k++) {
      const t0 = performance.now();
      const r = await searchThings(db, store, q.ops(k, n), q.offset ?? 0, PAGE);
      const us = (performance.now() - t0) * 1000;
      if (k >= 10) {
        h.record(us); // the first ten warm the cache and the plans
        all.record(us);
        found += r.things.length;
      }
    }
    const p50 = ms(h.percentile(0.5));
    const p99 = ms(h.percentile(0.99));
    perQuery[q.name] = { p50ms: p50, p99ms: p99, avgFound: round(found / SEARCHES, 1) };
    rows.push([q.name, p50, p99, round(found / SEARCHES, 1)]);
  }
  log(table(["query", "p50 ms", "p99 ms", "things/page"], rows));
  return { p50ms: ms(all.percentile(0.5)), p99ms: ms(all.percentile(0.99)), perQuery };
}

async function measureClaims(store: RegistryStore, round_: number) {
  const tagsOf = (i: number): Tag[] => [
    { type: "str", name: "MAN", value: "claim.test" },
    { type: "str", name: "SN", value: `C${round_}-${i}` },
    { type: "num", name: "V", value: 1 },
    { type: "str", name: "KEY", value: `key-${round_}-${i}-${(i * 2654435761) % 1e9}` },
  ];
  const t0 = performance.now();
  for (let i = 0; i < CLAIMS; i++) {
    await store.register(
      `claim${round_}-${i}@bench.test`,
      { nodeId: "", sourceId: "", cacheType: "" },
      tagsOf(i),
      false,
    );
  }
  const registerPerS = Math.round(CLAIMS / ((performance.now() - t0) / 1000));
  const half = Math.floor(CLAIMS / 2);
  const claim = async (i: number) => {
    const r = await store.claim(tagsOf(i), `owner@bench.test`, true);
    if (r.kind !== "claimed") throw new Error(`claim ${i}: ${r.kind}`);
  };
  let t = performance.now();
  for (let i = 0; i < half; i++) await claim(i);
  const sequentialPerS = Math.round(half / ((performance.now() - t) / 1000));
  t = performance.now();
  let next = half;
  await Promise.all(
    Array.from({ length: CLAIM_CONCURRENCY }, async () => {
      while (next < CLAIMS) await claim(next++);
    }),
  );
  const concurrentPerS = Math.round((CLAIMS - half) / ((performance.now() - t) / 1000));
  return { registerPerS, claimsPerS: sequentialPerS, concurrentClaimsPerS: concurrentPerS };
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "hanse-bench-registry-"));
  try {
    const database =
      ENGINE === "postgres"
        ? { url: await createDatabase("bench"), max_connections: CLAIM_CONCURRENCY + 2 }
        : { max_connections: CLAIM_CONCURRENCY + 2 };
    if (ENGINE === "embedded") await embeddedDataDirFromTemplate(join(dir, "data"));
    const config = parseConfig({ data_dir: join(dir, "data"), database }, "bench");
    const storage = await openStorage(config, silentLogger(), { role: "broker" });
    const started = performance.now();
    const out: Record<string, unknown> = {
      engine: ENGINE,
      tagsPerThing: 6,
      page: PAGE,
      searchesPerQuery: SEARCHES,
      claims: CLAIMS,
      claimConcurrency: CLAIM_CONCURRENCY,
      skipped: [] as number[],
    };
    const rows: unknown[][] = [];
    try {
      await storage.migrate("thing-registry", registryMigrations);
      const [version] = await storage.db<{ v: string }[]>`select current_setting('server_version') as v`;
      out.postgresVersion = version?.v;
      const store = createRegistryStore(storage.db);
      let loaded = 0;
      for (const [round_, size] of [...SIZES].sort((a, b) => a - b).entries()) {
        // Time per thing so far (load, searches, claims) projects the next size's cost.
        const spent = (performance.now() - started) / 1000;
        const projected = loaded > 0 ? (spent / loaded) * (size - loaded) : 0;
        if (spent + projected > MAX_SECONDS) {
          log(`skipping ${size} things: over BENCH_REGISTRY_MAX_SECONDS=${MAX_SECONDS}`);
          (out.skipped as number[]).push(size);
          continue;
        }
        const t0 = performance.now();
        await load(storage.db, loaded + 1, size);
        loaded = size;
        const loadS = round((performance.now() - t0) / 1000, 1);
        log(`${ENGINE}: ${size} things loaded in ${loadS} s`);
        const search = await measureSearches(storage.db, store, size);
        const claims = await measureClaims(store, round_);
        log(
          `${size} things: search p50 ${search.p50ms} ms, p99 ${search.p99ms} ms; ` +
            `${claims.claimsPerS} claims/s (${claims.concurrentClaimsPerS}/s with ${CLAIM_CONCURRENCY} at a time), ` +
            `${claims.registerPerS} registrations/s`,
        );
        out[String(size)] = { loadSeconds: loadS, ...search, ...claims };
        rows.push([
          size,
          search.p50ms,
          search.p99ms,
          claims.claimsPerS,
          claims.concurrentClaimsPerS,
          claims.registerPerS,
        ]);
      }
    } finally {
      await storage.close();
    }
    log(
      table(
        ["things", "search p50 ms", "p99 ms", "claims/s", `claims/s ×${CLAIM_CONCURRENCY}`, "registers/s"],
        rows,
      ),
    );
    result("registry", out);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
process.exit(0);
