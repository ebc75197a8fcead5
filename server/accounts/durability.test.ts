/**
 * Two processes, and a process killed with SIGKILL, on both engines: committed accounts survive,
 * a dead holder's lock is recovered, a running broker is shared with a CLI and refuses a second
 * broker.
 * References: DESIGN.md §1.5, §6 (PGlite never fsyncs: it survives a process kill, not a kernel
 * crash).
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { describe, test } from "node:test";
import { silentLogger } from "../observability/logger.ts";
import { DataDirLockedError, readLock } from "../storage/lock-file.ts";
import { embeddedPaths, openStorage } from "../storage/open.ts";
import { testEngines } from "../storage/testing.ts";
import { accountMigrations } from "./migrations.ts";
import { createAccountStore } from "./store.ts";
import type { ChildArgs } from "./testing-child.ts";

const log = silentLogger();
const CHILD = join(import.meta.dirname, "testing-child.ts");

interface Child {
  readonly proc: ChildProcess;
  readonly lines: string[];
  /** Resolves with the first output line (past or future) matching. */
  waitFor(match: (line: string) => boolean): Promise<string>;
}

function startChild(args: ChildArgs): Child {
  const proc = spawn(process.execPath, ["--import", "tsx", CHILD, JSON.stringify(args)], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const lines: string[] = [];
  const waiters: Array<() => void> = [];
  createInterface({ input: proc.stdout! }).on("line", (line) => {
    lines.push(line);
    for (const w of waiters.splice(0)) w();
  });
  const waitFor = (match: (line: string) => boolean) =>
    new Promise<string>((resolve, reject) => {
      const check = () => {
        const found = lines.find(match);
        const error = lines.find((l) => l.startsWith("error "));
        if (found) resolve(found);
        else if (error) reject(new Error(`child failed: ${error}`));
        else if (proc.exitCode !== null) reject(new Error(`child exited (${proc.exitCode}) without a match`));
        else waiters.push(check);
      };
      proc.once("exit", () => waiters.includes(check) && check());
      check();
    });
  return { proc, lines, waitFor };
}

async function kill(child: Child, signal: NodeJS.Signals): Promise<void> {
  if (child.proc.exitCode !== null || child.proc.signalCode !== null) return;
  const exited = once(child.proc, "exit");
  child.proc.kill(signal);
  await exited;
}

for (const engine of testEngines) {
  describe(`accounts across processes (${engine.name})`, () => {
    test("accounts committed before a SIGKILL survive it", async () => {
      const config = await engine.storageConfig();
      const child = startChild({
        config,
        role: "broker",
        accounts: ["early-1", "early-2"],
        keepCreating: true,
      });
      try {
        await child.waitFor((l) => l.startsWith("ready "));
        await child.waitFor((l) => l === "committed bulk-4");
      } finally {
        await kill(child, "SIGKILL");
      }
      assert.equal(child.proc.signalCode, "SIGKILL");
      const committed = child.lines.filter((l) => l.startsWith("committed ")).map((l) => l.slice(10));

      if (engine.name === "embedded") {
        // The dead child's lock is still there; reopening must treat it as stale.
        assert.equal(readLock(embeddedPaths(config.data_dir).lock)?.pid, child.proc.pid);
      }
      const storage = await openStorage(config, log, { role: "broker" });
      try {
        await storage.migrate("accounts", accountMigrations);
        const names = await createAccountStore(storage.db).list();
        for (const name of ["early-1", "early-2", ...committed])
          assert.ok(names.includes(name), `${name} lost`);
        // The engine is fully usable after recovery.
        await createAccountStore(storage.db, { iterations: 64 }).create("after-crash", "pw");
        if (engine.name === "embedded") {
          assert.equal(readLock(embeddedPaths(config.data_dir).lock)?.pid, process.pid);
        }
      } finally {
        await storage.close();
      }
    });

    test("a running broker serves a CLI and refuses a second broker", async () => {
      const config = await engine.storageConfig();
      const broker = startChild({ config, role: "broker", accounts: ["alice"] });
      try {
        const ready = await broker.waitFor((l) => l.startsWith("ready "));
        assert.equal(Number(ready.slice(6)), broker.proc.pid);

        if (engine.name === "embedded") {
          await assert.rejects(
            () => openStorage(config, log, { role: "broker" }),
            (err: unknown) =>
              err instanceof DataDirLockedError &&
              err.message === `data directory ${config.data_dir} is in use by pid ${broker.proc.pid}`,
          );
        }
        const cli = await openStorage(config, log, { role: "cli" });
        try {
          const accounts = createAccountStore(cli.db, { iterations: 64 });
          assert.deepEqual(await accounts.list(), ["alice"]);
          await accounts.create("bob", "pw-bob");
        } finally {
          await cli.close();
        }
      } finally {
        await kill(broker, "SIGTERM");
      }
      assert.equal(broker.proc.exitCode, 0, "the broker closed cleanly");

      // With no broker running, the CLI opens the engine itself.
      const cli = await openStorage(config, log, { role: "cli" });
      try {
        assert.deepEqual(await createAccountStore(cli.db).list(), ["alice", "bob"]);
        if (engine.name === "embedded") {
          assert.equal(readLock(embeddedPaths(config.data_dir).lock)?.pid, process.pid);
        }
      } finally {
        await cli.close();
      }
    });
  });
}
