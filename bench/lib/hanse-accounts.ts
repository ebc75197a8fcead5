/**
 * Pre-creates bench accounts in a Hanse data directory (or its PostgreSQL), whether or not the
 * broker runs: `node --import tsx bench/lib/hanse-accounts.ts CONFIG PREFIX COUNT PASSWORD`.
 *
 * The first account goes through the real AccountStore (so its verifiers are exactly what
 * `hanse user add` writes); the others copy its rows in one SQL statement per table. Every bench
 * account then shares one salt: the server's work per login is unchanged (it only ever uses the
 * stored keys), and the generator derives SaltedPassword once instead of 4096 PBKDF2 rounds per
 * account. PBKDF2 for 50,000 accounts would take minutes.
 */

import { accountMigrations } from "../../server/accounts/migrations.ts";
import { createAccountStore } from "../../server/accounts/store.ts";
import { loadConfig } from "../../server/config.ts";
import { silentLogger } from "../../server/observability/logger.ts";
import { openStorage } from "../../server/storage/open.ts";

const [configFile, prefix, countText, password] = process.argv.slice(2);
const count = Number(countText);
if (!configFile || !prefix || !(count > 0) || !password) {
  console.error("usage: hanse-accounts.ts CONFIG PREFIX COUNT PASSWORD");
  process.exit(2);
}

const config = loadConfig(configFile);
const storage = await openStorage(config, silentLogger(), { role: "cli" });
try {
  await storage.migrate("accounts", accountMigrations);
  const accounts = createAccountStore(storage.db);
  const first = `${prefix}0`;
  if (!(await accounts.exists(first))) await accounts.create(first, password);
  const db = storage.db;
  const t0 = Date.now();
  await db.begin(async (tx) => {
    await tx`
      insert into accounts (username)
      select ${prefix} || g from generate_series(1, ${count - 1}) g
      on conflict (username) do nothing`;
    await tx`
      insert into account_scram (username, hash, salt, iterations, stored_key, server_key)
      select ${prefix} || g, s.hash, s.salt, s.iterations, s.stored_key, s.server_key
      from account_scram s, generate_series(1, ${count - 1}) g
      where s.username = ${first}
      on conflict (username, hash) do nothing`;
  });
  const [row] = await db<
    { n: number }[]
  >`select count(*)::int as n from accounts where username like ${`${prefix}%`}`;
  console.log(`hanse accounts: ${row!.n} with prefix ${prefix} (${Date.now() - t0} ms)`);
} finally {
  await storage.close();
}
