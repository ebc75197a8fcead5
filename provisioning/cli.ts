/**
 * `hanse provisioning audit [--thing JID] [--owner JID] [--since ISO] [--limit N] [--config FILE]`:
 * the provisioning audit trail as JSON lines, oldest first. Called from server/main.ts; works
 * whether or not the broker runs, like the account commands (the embedded engine goes through the
 * running broker's database socket).
 * References: docs/protocol/provisioning-questions.md §Audit trail.
 */
import { parseArgs } from "node:util";
import { loadConfig } from "../server/config.ts";
import { parseJid } from "../server/jid.ts";
import { silentLogger } from "../server/observability/logger.ts";
import { openStorage } from "../server/storage/open.ts";
import { provisioningMigrations } from "./migrations.ts";
import { createProvisioningStore } from "./store.ts";

export const PROVISIONING_USAGE = `  hanse provisioning audit [--thing JID] [--owner JID] [--since ISO-DATE] [--limit N]
                                              the provisioning audit trail as JSON lines (oldest first)`;

/** Rows fetched per query while printing (the whole trail never sits in memory). */
const PAGE = 1000;

function bareJid(option: string, text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  try {
    return parseJid(text).bare;
  } catch (err) {
    throw new Error(`${option} ${text} is not a JID: ${(err as Error).message}`);
  }
}

export async function provisioningCommand(
  argv: string[],
  usage: (message: string) => Error,
): Promise<number> {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (err) {
    throw usage(`${(err as Error).message}\n${PROVISIONING_USAGE}`);
  }
  const { values, positionals } = parsed;
  if (positionals[0] !== "audit" || positionals.length > 1) throw usage(PROVISIONING_USAGE);
  const thing = bareJid("--thing", values.thing);
  const owner = bareJid("--owner", values.owner);
  let since: Date | undefined;
  if (values.since !== undefined) {
    since = new Date(values.since);
    if (Number.isNaN(since.getTime())) throw usage(`--since ${values.since} is not a date (ISO 8601)`);
  }
  let limit = Number.POSITIVE_INFINITY;
  if (values.limit !== undefined) {
    if (!/^\d{1,9}$/.test(values.limit) || Number(values.limit) === 0) {
      throw usage(`--limit ${values.limit} is not a positive whole number`);
    }
    limit = Number(values.limit);
  }
  const config = loadConfig(values.config);
  const storage = await openStorage(config, silentLogger(), { role: "cli" });
  try {
    await storage.migrate("provisioning", provisioningMigrations);
    const store = createProvisioningStore(storage.db);
    let afterId: number | undefined;
    let printed = 0;
    while (printed < limit) {
      const rows = await store.audit({
        thing,
        owner,
        since,
        afterId,
        limit: Math.min(PAGE, limit - printed),
      });
      for (const row of rows) {
        process.stdout.write(`${JSON.stringify({ ...row, at: row.at.toISOString() })}\n`);
      }
      printed += rows.length;
      if (rows.length === 0) break;
      afterId = rows.at(-1)!.id;
    }
  } finally {
    await storage.close();
  }
  return 0;
}

function parse(argv: string[]) {
  return parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: "string", short: "c" },
      thing: { type: "string" },
      owner: { type: "string" },
      since: { type: "string" },
      limit: { type: "string" },
    },
  });
}
