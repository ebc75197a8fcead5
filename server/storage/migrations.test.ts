/**
 * The migrations runner on both engines: ordered, recorded, idempotent, atomic per migration,
 * safe when two pools race.
 * References: DESIGN.md §1.5.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { silentLogger } from "../observability/logger.ts";
import type { Migration, Storage } from "./db.ts";
import { MigrationError, runMigrations } from "./migrations.ts";
import { openStorage } from "./open.ts";
import { testEngines } from "./testing.ts";

const log = silentLogger();

const widgets: Migration[] = [
  // Deliberately listed out of order: the runner sorts by id.
  { id: "002-colour", sql: "alter table widgets add column colour text not null default 'red';" },
  {
    id: "001-widgets",
    sql: "create table widgets (id int primary key); insert into widgets values (1), (2);",
  },
];

for (const engine of testEngines) {
  describe(`migrations (${engine.name})`, () => {
    let storage: Storage;
    before(async () => {
      storage = await openStorage(await engine.storageConfig(), log, { role: "broker" });
    });
    after(() => storage.close());

    test("applies pending migrations in id order and records them", async () => {
      await storage.migrate("widgets", widgets);
      const rows = await storage.db`select id, colour from widgets order by id`;
      assert.deepEqual(
        rows.map((r) => ({ ...r })),
        [
          { id: 1, colour: "red" },
          { id: 2, colour: "red" },
        ],
      );
      const recorded = await storage.db`
        select id, applied_at from schema_migrations where module = 'widgets' order by id`;
      assert.deepEqual(
        recorded.map((r) => r.id),
        ["001-widgets", "002-colour"],
      );
      assert.ok(recorded.every((r) => r.applied_at instanceof Date));
    });

    test("is idempotent, and applies only what is new", async () => {
      assert.deepEqual(await runMigrations(storage.db, "widgets", widgets), []);
      const more = [...widgets, { id: "003-more", sql: "insert into widgets values (3);" }];
      assert.deepEqual(await runMigrations(storage.db, "widgets", more), ["003-more"]);
      const [count] = await storage.db`select count(*)::int as n from widgets`;
      assert.equal(count!.n, 3);
    });

    test("modules are recorded separately", async () => {
      await storage.migrate("gadgets", [{ id: "001-widgets", sql: "create table gadgets (id int);" }]);
      const rows =
        await storage.db`select module from schema_migrations where id = '001-widgets' order by module`;
      assert.deepEqual(
        rows.map((r) => r.module),
        ["gadgets", "widgets"],
      );
    });

    test("a failing migration leaves nothing behind and names module and id", async () => {
      const broken: Migration[] = [
        { id: "001-ok", sql: "create table sprockets (id int);" },
        // The first statement would succeed on its own; the transaction must undo it.
        { id: "002-broken", sql: "create table cogs (id int); insert into cogs values ('not a number');" },
        { id: "003-never", sql: "create table never (id int);" },
      ];
      await assert.rejects(
        () => storage.migrate("sprockets", broken),
        (err: unknown) => {
          assert.ok(err instanceof MigrationError);
          assert.equal(err.module, "sprockets");
          assert.equal(err.id, "002-broken");
          assert.match(err.message, /^migration sprockets\/002-broken failed: .*invalid input syntax/);
          return true;
        },
      );
      const tables = await storage.db`
        select table_name from information_schema.tables
        where table_name in ('sprockets', 'cogs', 'never') order by table_name`;
      assert.deepEqual(
        tables.map((t) => t.table_name),
        ["sprockets"],
      );
      const recorded = await storage.db`select id from schema_migrations where module = 'sprockets'`;
      assert.deepEqual(
        recorded.map((r) => r.id),
        ["001-ok"],
      );
      // The pool is still healthy after the rolled-back transaction.
      const [one] = await storage.db`select 1 as x`;
      assert.equal(one!.x, 1);
    });

    test("refuses duplicate ids before touching the database", async () => {
      await assert.rejects(
        () =>
          storage.migrate("dupes", [
            { id: "001", sql: "create table dupes_a (id int);" },
            { id: "001", sql: "create table dupes_b (id int);" },
          ]),
        /two migrations with id 001/,
      );
      const rows = await storage.db`select 1 from information_schema.tables where table_name like 'dupes%'`;
      assert.equal(rows.length, 0);
    });

    test("concurrent runners apply each migration exactly once", async () => {
      // Non-idempotent SQL: a second application would fail (table exists) or double the rows.
      const racing: Migration[] = Array.from({ length: 5 }, (_, i) => ({
        id: `00${i}-step`,
        sql: i === 0 ? "create table race (n int);" : `insert into race values (${i});`,
      }));
      const results = await Promise.all(
        Array.from({ length: 4 }, () => runMigrations(storage.db, "race", racing)),
      );
      assert.equal(results.flat().length, racing.length);
      const [count] = await storage.db`select count(*)::int as n from race`;
      assert.equal(count!.n, 4);
    });
  });
}

describe("advisory locks", () => {
  test("pg_advisory_xact_lock is granted and released with the transaction on PGlite", async () => {
    const storage = await openStorage(await testEngines[0]!.storageConfig(), log, { role: "broker" });
    try {
      await storage.db.begin(async (tx) => {
        await tx`select pg_advisory_xact_lock(42)`;
        const held = await tx`select count(*)::int as n from pg_locks where locktype = 'advisory'`;
        assert.equal(held[0]!.n, 1);
      });
      const released = await storage.db`select count(*)::int as n from pg_locks where locktype = 'advisory'`;
      assert.equal(released[0]!.n, 0);
    } finally {
      await storage.close();
    }
  });
});
