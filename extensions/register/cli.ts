/**
 * `hanse apikey create --owner JID --max-accounts N [--expires DATE]`, `apikey list`,
 * `apikey revoke KEY`: API keys for device self-registration. Called from server/main.ts; works
 * whether or not the broker runs, like the account commands.
 * References: XEP-0348 §3.1 (a manufacturer's key with a limit on accounts), migrations.ts.
 */
import { accountMigrations } from "../../server/accounts/migrations.ts";
import type { Config } from "../../server/config.ts";
import { parseJid } from "../../server/jid.ts";
import { silentLogger } from "../../server/observability/logger.ts";
import { openStorage } from "../../server/storage/open.ts";
import { createApiKeyStore } from "./api-keys.ts";
import { registerMigrations } from "./migrations.ts";

export const APIKEY_USAGE = `  hanse apikey create --owner JID --max-accounts N [--expires DATE]
                                              an API key for device self-registration (XEP-0348)
  hanse apikey list
  hanse apikey revoke KEY`;

export interface ApikeyArgs {
  readonly sub: string | undefined;
  readonly key: string | undefined;
  readonly owner: string | undefined;
  readonly maxAccounts: string | undefined;
  readonly expires: string | undefined;
}

function parseOptions(args: ApikeyArgs, usage: (m: string) => Error) {
  if (!args.owner) throw usage("hanse apikey create needs --owner JID (the manufacturer)");
  let owner: string;
  try {
    owner = parseJid(args.owner).bare;
  } catch (err) {
    throw new Error(`invalid JID ${args.owner}: ${(err as Error).message}`);
  }
  if (!args.maxAccounts || !/^\d{1,9}$/.test(args.maxAccounts)) {
    throw usage("hanse apikey create needs --max-accounts N (a whole number)");
  }
  let expiresAt: Date | undefined;
  if (args.expires !== undefined) {
    expiresAt = new Date(args.expires);
    if (Number.isNaN(expiresAt.getTime())) throw new Error(`--expires ${args.expires} is not a date`);
  }
  return { owner, maxAccounts: Number(args.maxAccounts), expiresAt };
}

export async function apikeyCommand(
  config: Config,
  args: ApikeyArgs,
  usage: (message: string) => Error,
): Promise<number> {
  const actions = ["create", "list", "revoke"];
  if (!args.sub || !actions.includes(args.sub)) throw usage(`hanse apikey ${actions.join("|")}`);
  const create = args.sub === "create" ? parseOptions(args, usage) : undefined;
  if (args.sub === "revoke" && !args.key) throw usage("hanse apikey revoke KEY");
  const storage = await openStorage(config, silentLogger(), { role: "cli" });
  try {
    await storage.migrate("accounts", accountMigrations);
    await storage.migrate("register", registerMigrations);
    const keys = createApiKeyStore(storage.db);
    if (create) {
      const key = await keys.create(create);
      const expiry = key.expiresAt ? `, expires ${key.expiresAt.toISOString()}` : "";
      console.log(
        `created API key ${key.id} for ${key.owner} (at most ${key.maxAccounts} accounts${expiry})`,
      );
      console.log(`secret: ${key.secret}`);
      console.log("The secret is shown once; devices sign their registration form with it (XEP-0348).");
    } else if (args.sub === "revoke") {
      if (!(await keys.revoke(args.key!))) throw new Error(`no API key ${args.key}`);
      console.log(`revoked ${args.key}`);
    } else {
      for (const k of await keys.list()) {
        const state = k.revokedAt
          ? `revoked ${k.revokedAt.toISOString()}`
          : k.expiresAt && k.expiresAt.getTime() <= Date.now()
            ? `expired ${k.expiresAt.toISOString()}`
            : k.expiresAt
              ? `expires ${k.expiresAt.toISOString()}`
              : "active";
        console.log(`${k.id}\t${k.owner}\t${k.used}/${k.maxAccounts} accounts\t${state}`);
      }
    }
  } finally {
    await storage.close();
  }
  return 0;
}
