/**
 * API keys for device self-registration: create, list, revoke; reserve a quota slot for a new
 * account (with nonce replay protection) and release it if the account cannot be made; audit.
 * References: XEP-0348 §3.1 (signed in-band registration, a limit on accounts), §2.7 (the secret is
 * looked up by oauth_consumer_key), the spec digest §8.2; migrations.ts for the tables.
 */
import { randomBytes } from "node:crypto";
import type { Db } from "../../server/storage/db.ts";

export interface ApiKey {
  readonly id: string;
  readonly secret: string;
  readonly owner: string;
  readonly maxAccounts: number;
  readonly expiresAt: Date | undefined;
  readonly revokedAt: Date | undefined;
  readonly createdAt: Date;
}

export interface ApiKeyInfo extends Omit<ApiKey, "secret"> {
  /** Accounts created with the key so far. */
  readonly used: number;
}

interface KeyRow {
  id: string;
  secret: string;
  owner: string;
  max_accounts: number;
  expires_at: Date | null;
  revoked_at: Date | null;
  created_at: Date;
}

function toKey(r: KeyRow): ApiKey {
  return {
    id: r.id,
    secret: r.secret,
    owner: r.owner,
    maxAccounts: r.max_accounts,
    expiresAt: r.expires_at ?? undefined,
    revokedAt: r.revoked_at ?? undefined,
    createdAt: r.created_at,
  };
}

export type ReserveOutcome =
  | { readonly kind: "reserved" }
  | { readonly kind: "unknown" | "revoked" | "expired" | "replayed" }
  | { readonly kind: "quota"; readonly max: number };

export interface AuditEntry {
  readonly keyId: string | undefined;
  readonly outcome: string;
  readonly username?: string | undefined;
  readonly remoteAddress?: string | undefined;
  readonly detail?: string | undefined;
}

export function createApiKeyStore(db: Db) {
  return {
    async create(opts: {
      owner: string;
      maxAccounts: number;
      expiresAt?: Date | undefined;
    }): Promise<ApiKey> {
      const id = `hk_${randomBytes(12).toString("hex")}`;
      const secret = randomBytes(32).toString("base64url");
      const [row] = await db<KeyRow[]>`
        insert into api_keys (id, secret, owner, max_accounts, expires_at)
        values (${id}, ${secret}, ${opts.owner}, ${opts.maxAccounts}, ${opts.expiresAt ?? null})
        returning *`;
      return toKey(row!);
    },

    async get(id: string): Promise<ApiKey | undefined> {
      const [row] = await db<KeyRow[]>`select * from api_keys where id = ${id}`;
      return row ? toKey(row) : undefined;
    },

    async list(): Promise<ApiKeyInfo[]> {
      const rows = await db<(KeyRow & { used: number })[]>`
        select k.*, (select count(*)::int from api_key_accounts a where a.key_id = k.id) as used
        from api_keys k order by k.created_at, k.id`;
      return rows.map((r) => {
        const { secret: _secret, ...rest } = toKey(r);
        return { ...rest, used: r.used };
      });
    },

    /** Revokes at once; false if there is no such key (revoking twice keeps the first time). */
    async revoke(id: string): Promise<boolean> {
      const rows = await db`
        update api_keys set revoked_at = coalesce(revoked_at, now()) where id = ${id} returning id`;
      return rows.length > 0;
    },

    /**
     * Under the key's row lock: the key must be usable, the nonce new (it is recorded whatever
     * follows, so a replay is always caught), and a quota slot free, which is then taken for
     * `username`.
     */
    async reserve(keyId: string, nonce: string, username: string): Promise<ReserveOutcome> {
      return db.begin(async (tx) => {
        const [key] = await tx<KeyRow[]>`select * from api_keys where id = ${keyId} for update`;
        if (!key) return { kind: "unknown" } as const;
        if (key.revoked_at) return { kind: "revoked" } as const;
        if (key.expires_at && key.expires_at.getTime() <= Date.now()) return { kind: "expired" } as const;
        const fresh = await tx`
          insert into api_key_nonces (key_id, nonce) values (${keyId}, ${nonce})
          on conflict do nothing returning nonce`;
        if (fresh.length === 0) return { kind: "replayed" } as const;
        const [used] = await tx<{ n: number }[]>`
          select count(*)::int as n from api_key_accounts where key_id = ${keyId}`;
        if (used!.n >= key.max_accounts) return { kind: "quota", max: key.max_accounts } as const;
        await tx`insert into api_key_accounts (key_id, username) values (${keyId}, ${username})`;
        return { kind: "reserved" } as const;
      });
    },

    /** Gives the slot back when the account could not be created after all. */
    async release(keyId: string, username: string): Promise<void> {
      await db`delete from api_key_accounts where key_id = ${keyId} and username = ${username}`;
    },

    async accounts(keyId: string): Promise<string[]> {
      const rows = await db<{ username: string }[]>`
        select username from api_key_accounts where key_id = ${keyId} order by created_at, username`;
      return rows.map((r) => r.username);
    },

    async audit(entry: AuditEntry): Promise<void> {
      await db`
        insert into api_key_audit (key_id, outcome, username, remote_address, detail)
        values (${entry.keyId ?? null}, ${entry.outcome}, ${entry.username ?? null},
                ${entry.remoteAddress ?? null}, ${entry.detail ?? null})`;
    },

    async auditTrail(keyId: string): Promise<{ outcome: string; username: string | null }[]> {
      return [
        ...(await db<{ outcome: string; username: string | null }[]>`
          select outcome, username from api_key_audit where key_id = ${keyId} order by id`),
      ];
    },

    /** Nonces older than the timestamp window can go: their requests are refused as stale. */
    async purgeNonces(olderThanSeconds: number): Promise<void> {
      await db`delete from api_key_nonces where seen_at < now() - make_interval(secs => ${olderThanSeconds})`;
    },
  };
}

export type ApiKeyStore = ReturnType<typeof createApiKeyStore>;
