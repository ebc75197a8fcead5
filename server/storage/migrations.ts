/**
 * The migrations runner: each module owns an ordered list of SQL migrations; applied ones are
 * recorded in `schema_migrations` so running again is a no-op.
 * References: DESIGN.md §1.5 ("migrations are plain SQL owned by each module"); PostgreSQL docs
 * §9.28.10 (advisory locks: pg_advisory_xact_lock is released at commit or rollback).
 *
 * Each migration runs in one transaction together with the row that records it, so a failure
 * leaves neither half a schema nor a record. Every such transaction first takes one advisory lock,
 * so two brokers (or a broker and `hanse migrate`) starting together apply each migration once.
 * On the embedded engine all connections share PGlite's single backend: the advisory lock is then
 * always granted at once, and pglite-socket's queue (a transaction keeps the engine until it ends)
 * gives the same exclusion.
 */
import type { Logger } from "../observability/logger.ts";
import type { Db, Migration } from "./db.ts";

/** One lock for all modules: migrations are rare and short, and this keeps the order simple. */
const MIGRATION_LOCK = 0x48_61_6e_73_65; // "Hanse"

export class MigrationError extends Error {
  constructor(
    readonly module: string,
    readonly id: string,
    cause: unknown,
  ) {
    super(`migration ${module}/${id} failed: ${(cause as Error)?.message ?? cause}`, { cause });
    this.name = "MigrationError";
  }
}

/** Checks the list before touching the database: ids must be unique and non-empty. */
function ordered(module: string, migrations: readonly Migration[]): Migration[] {
  if (!module) throw new Error("migrations need a module name");
  const seen = new Set<string>();
  for (const m of migrations) {
    if (!m.id) throw new Error(`module ${module} has a migration without an id`);
    if (seen.has(m.id)) throw new Error(`module ${module} has two migrations with id ${m.id}`);
    seen.add(m.id);
  }
  // Code-unit order, not locale order, so "001-x" < "002-y" everywhere.
  return [...migrations].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

async function ensureTable(db: Db): Promise<void> {
  // Under the lock too: two concurrent CREATE TABLE IF NOT EXISTS can both pass the check on
  // PostgreSQL and one then fails on the catalog's unique index.
  await db.begin(async (tx) => {
    await tx`select pg_advisory_xact_lock(${MIGRATION_LOCK})`;
    await tx`
      create table if not exists schema_migrations (
        module text not null,
        id text not null,
        applied_at timestamptz not null default now(),
        primary key (module, id)
      )`;
  });
}

/** Applies `module`'s pending migrations in id order; returns the ids it applied. */
export async function runMigrations(
  db: Db,
  module: string,
  migrations: readonly Migration[],
  log?: Logger,
): Promise<string[]> {
  const list = ordered(module, migrations);
  await ensureTable(db);
  const done = new Set(
    (await db<{ id: string }[]>`select id from schema_migrations where module = ${module}`).map((r) => r.id),
  );
  const applied: string[] = [];
  for (const migration of list) {
    if (done.has(migration.id)) continue;
    let ran = false;
    try {
      await db.begin(async (tx) => {
        await tx`select pg_advisory_xact_lock(${MIGRATION_LOCK})`;
        // Another process may have applied it while we waited for the lock.
        const already =
          await tx`select 1 from schema_migrations where module = ${module} and id = ${migration.id}`;
        if (already.length > 0) return;
        // unsafe() without parameters uses the simple query protocol, which allows a migration
        // to hold several statements. The SQL is the module's own source, never user input.
        await tx.unsafe(migration.sql);
        await tx`insert into schema_migrations (module, id) values (${module}, ${migration.id})`;
        ran = true;
      });
    } catch (err) {
      throw new MigrationError(module, migration.id, err);
    }
    if (ran) {
      applied.push(migration.id);
      log?.info({ module, migration: migration.id }, "migration applied");
    }
  }
  return applied;
}
