/**
 * A separate process for storage tests that need two processes or a SIGKILL: opens storage,
 * creates accounts, prints "ready", optionally keeps committing more, and waits to be killed.
 * References: DESIGN.md §1.5 (broker and CLI sharing the embedded engine).
 *
 * Usage: node --import tsx testing-child.ts '<json Args>'. Output lines: "ready <pid>",
 * "committed <username>" (after each commit), "error <message>".
 */
import { silentLogger } from "../observability/logger.ts";
import { openStorage, type StorageConfig } from "../storage/open.ts";
import { accountMigrations } from "./migrations.ts";
import { createAccountStore } from "./store.ts";

export interface ChildArgs {
  readonly config: StorageConfig;
  readonly role: "broker" | "cli";
  /** Accounts created (password "pw-<name>") before "ready". */
  readonly accounts?: readonly string[];
  /** After "ready", keep creating bulk-0, bulk-1, ... until killed. */
  readonly keepCreating?: boolean;
}

const args = JSON.parse(process.argv[2] ?? "{}") as ChildArgs;

try {
  const storage = await openStorage(args.config, silentLogger(), { role: args.role });
  await storage.migrate("accounts", accountMigrations);
  // Low iteration count: these tests are about durability, not PBKDF2 cost.
  const accounts = createAccountStore(storage.db, { iterations: 64 });
  for (const name of args.accounts ?? []) await accounts.create(name, `pw-${name}`);
  process.stdout.write(`ready ${process.pid}\n`);
  if (args.keepCreating) {
    for (let i = 0; ; i++) {
      await accounts.create(`bulk-${i}`, `pw-${i}`);
      process.stdout.write(`committed bulk-${i}\n`);
    }
  }
  // Hold the engine until told to stop (SIGTERM) or killed (SIGKILL).
  process.once("SIGTERM", () => {
    void storage.close().then(() => process.exit(0));
  });
  setInterval(() => {}, 1 << 30);
} catch (err) {
  process.stdout.write(`error ${(err as Error).message}\n`);
  process.exit(1);
}
