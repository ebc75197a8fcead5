/**
 * The storage contract every module codes against: one SQL dialect (PostgreSQL), one driver
 * (postgres.js), two engines (a real PostgreSQL server, or the embedded PGlite served over a unix
 * socket). See DESIGN.md §1.5.
 */
import type postgres from "postgres";

/** A postgres.js connection pool. Always use tagged templates: parameters are never spliced. */
export type Db = postgres.Sql<Record<string, never>>;

/** A migration owned by one module; `id`s sort in the order they must run ("001-accounts"). */
export interface Migration {
  readonly id: string;
  readonly sql: string;
}

export interface Storage {
  readonly db: Db;
  /** "postgres" (a server at database.url) or "embedded" (PGlite in a worker). */
  readonly engine: "postgres" | "embedded";
  /** Runs each module's pending migrations in order, recording them; idempotent. */
  migrate(module: string, migrations: readonly Migration[]): Promise<void>;
  /** Closes the pool and, for the embedded engine, flushes and stops the worker. */
  close(): Promise<void>;
  /**
   * Registers a callback for the engine dying under us (the embedded worker crashing), so the
   * broker can stop instead of failing every query. Absent where there is nothing to watch.
   */
  onFailure?(listener: (err: Error) => void): void;
}
