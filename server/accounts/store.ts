/**
 * Local accounts: who may log in to this broker, with SCRAM verifiers instead of passwords.
 * References: RFC 5802 §3 (stored credentials), RFC 7677 (SCRAM-SHA-256), RFC 7622 §3.3
 * (usernames are normalised localparts), RFC 6120 §6 (SASL looks these up per hash).
 *
 * Verifiers are derived before the transaction starts: PBKDF2 takes milliseconds, and on the
 * embedded engine an open transaction holds the whole database.
 */
import { JidError, normalizeLocalpart } from "../jid.ts";
import type { ScramCredentials } from "../sasl/mechanism.ts";
import type { Db } from "../storage/db.ts";
import {
  DEFAULT_ITERATIONS,
  deriveScramCredentials,
  SCRAM_HASHES,
  type ScramHash,
} from "./scram-credentials.ts";

export class AccountError extends Error {
  constructor(
    readonly code: "exists" | "not-found" | "invalid-username",
    message: string,
  ) {
    super(message);
    this.name = "AccountError";
  }
}

export interface AccountStore {
  /** Throws AccountError "exists" if taken, PasswordError for an unusable password. */
  create(username: string, password: string): Promise<void>;
  /** Replaces every hash's verifiers; throws AccountError "not-found" for an unknown account. */
  setPassword(username: string, password: string): Promise<void>;
  /** Deletes the account and its verifiers; false if there was none. */
  delete(username: string): Promise<boolean>;
  exists(username: string): Promise<boolean>;
  /** All usernames in code-point order. */
  list(): Promise<string[]>;
  /** The verifiers for one hash, or undefined for an unknown account. */
  credentials(username: string, hash: ScramHash): Promise<ScramCredentials | undefined>;
  count(): Promise<number>;
}

export interface AccountStoreOptions {
  /** PBKDF2 iterations for new verifiers (default 4096). */
  readonly iterations?: number;
}

interface ScramRow {
  username: string;
  hash: ScramHash;
  salt: Buffer;
  iterations: number;
  stored_key: Buffer;
  server_key: Buffer;
}

export function createAccountStore(db: Db, opts: AccountStoreOptions = {}): AccountStore {
  const iterations = opts.iterations ?? DEFAULT_ITERATIONS;

  /** Callers pass normalised localparts; normalising again is idempotent and keeps bad input out. */
  function strict(username: string): string {
    try {
      return normalizeLocalpart(username);
    } catch (err) {
      if (err instanceof JidError)
        throw new AccountError("invalid-username", `invalid username: ${err.message}`);
      throw err;
    }
  }
  function lenient(username: string): string | undefined {
    try {
      return normalizeLocalpart(username);
    } catch {
      return undefined; // no account can have this name
    }
  }

  async function verifierRows(username: string, password: string): Promise<ScramRow[]> {
    const all = await Promise.all(
      SCRAM_HASHES.map((hash) => deriveScramCredentials(password, hash, { iterations })),
    );
    return all.map((c) => ({
      username,
      hash: c.hash,
      salt: c.salt,
      iterations: c.iterations,
      stored_key: c.storedKey,
      server_key: c.serverKey,
    }));
  }

  return {
    async create(username, password) {
      const name = strict(username);
      const rows = await verifierRows(name, password);
      await db.begin(async (tx) => {
        const inserted = await tx`
          insert into accounts (username) values (${name})
          on conflict (username) do nothing
          returning username`;
        if (inserted.length === 0) throw new AccountError("exists", `account ${name} already exists`);
        await tx`insert into account_scram ${tx(rows)}`;
      });
    },

    async setPassword(username, password) {
      const name = strict(username);
      const rows = await verifierRows(name, password);
      await db.begin(async (tx) => {
        const updated = await tx`
          update accounts set password_changed_at = now() where username = ${name} returning username`;
        if (updated.length === 0) throw new AccountError("not-found", `no account ${name}`);
        await tx`
          insert into account_scram ${tx(rows)}
          on conflict (username, hash) do update set
            salt = excluded.salt,
            iterations = excluded.iterations,
            stored_key = excluded.stored_key,
            server_key = excluded.server_key`;
      });
    },

    async delete(username) {
      const name = lenient(username);
      if (name === undefined) return false;
      const deleted = await db`delete from accounts where username = ${name} returning username`;
      return deleted.length > 0;
    },

    async exists(username) {
      const name = lenient(username);
      if (name === undefined) return false;
      const rows = await db`select 1 from accounts where username = ${name}`;
      return rows.length > 0;
    },

    async list() {
      // COLLATE "C": the same (code-point) order on both engines, whatever their locale.
      const rows = await db<
        { username: string }[]
      >`select username from accounts order by username collate "C"`;
      return rows.map((r) => r.username);
    },

    async credentials(username, hash) {
      const name = lenient(username);
      if (name === undefined) return undefined;
      const [row] = await db<Omit<ScramRow, "username" | "hash">[]>`
        select salt, iterations, stored_key, server_key
        from account_scram where username = ${name} and hash = ${hash}`;
      if (!row) return undefined;
      return {
        hash,
        salt: row.salt,
        iterations: row.iterations,
        storedKey: row.stored_key,
        serverKey: row.server_key,
      };
    },

    async count() {
      const [row] = await db<{ n: number }[]>`select count(*)::int as n from accounts`;
      return row!.n;
    },
  };
}
