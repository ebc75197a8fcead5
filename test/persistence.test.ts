/**
 * Accounts survive restarts and crashes, on both engines (DESIGN.md §1.5): the real `hanse start`
 * process, accounts added with `hanse user add` while it runs (embedded engine: through the
 * broker's database socket), a clean SIGTERM restart, then a kill -9 right after a write and a
 * restart that must recover the stale data-directory lock. Also times a first start on an empty
 * data directory (initdb + certificate) against a restart.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { tempDataDir } from "../server/storage/testing.ts";
import {
  type BrokerProcess,
  type ExitStatus,
  startBrokerProcess,
  writePasswordFile,
} from "./support/broker-process.ts";
import { createDatabase } from "./support/postgres.ts";

const ALICE_PW = "alice's secret 1";
const BOB_PW = "bob's secret 2";

async function assertLogin(broker: BrokerProcess, username: string, password: string): Promise<void> {
  const client = await broker.login(username, password);
  try {
    assert.equal(client.jid?.bare().toString(), `${username}@${broker.domain}`);
  } finally {
    await client.stop();
  }
}

async function assertRefused(broker: BrokerProcess, username: string, password: string): Promise<void> {
  await assert.rejects(broker.login(username, password), (err: { condition?: string }) => {
    assert.equal(err.condition, "not-authorized", String(err));
    return true;
  });
}

async function addUser(broker: BrokerProcess, jid: string, password: string): Promise<void> {
  const r = await broker.cli(["user", "add", jid, "--password-file", writePasswordFile(password)]);
  assert.equal(r.code, 0, `hanse user add ${jid}: ${r.stdout}${r.stderr}`);
  assert.match(r.stdout, new RegExp(`created ${jid}`));
}

for (const engine of ["embedded", "postgres"] as const) {
  describe(`persistence (${engine} engine)`, () => {
    test("accounts survive a SIGTERM restart and a kill -9", async (t) => {
      const databaseUrl = engine === "postgres" ? await createDatabase("hanse_persist") : undefined;
      const common = { ...(databaseUrl && { databaseUrl }) };
      let broker = await startBrokerProcess(common);
      const dataDir = broker.dataDir;
      t.after(() => broker.kill9());

      // Added while the broker runs: on the embedded engine the CLI cannot open the database
      // itself (the broker holds the lock) and must use the broker's socket.
      await addUser(broker, "alice@localhost", ALICE_PW);
      if (engine === "embedded") {
        const lock = readFileSync(join(dataDir, "db.lock"), "utf8");
        assert.equal(lock.split("\n")[0], String(broker.pid), "the broker kept its database");
        assert.match(lock, /^socket=/m, "the broker announces its database socket");
      }
      await assertLogin(broker, "alice", ALICE_PW);

      let exit: ExitStatus = await broker.stop("SIGTERM");
      assert.deepEqual([exit.code, exit.signal], [0, null], broker.output());
      if (engine === "embedded") assert.equal(existsSync(join(dataDir, "db.lock")), false, "lock released");

      broker = await startBrokerProcess({ ...common, dataDir });
      await assertLogin(broker, "alice", ALICE_PW);

      // A write acknowledged to the CLI, then the broker dies without any cleanup.
      await addUser(broker, "bob@localhost", BOB_PW);
      const killedPid = broker.pid;
      exit = await broker.kill9();
      assert.equal(exit.signal, "SIGKILL");
      if (engine === "embedded") {
        const lock = readFileSync(join(dataDir, "db.lock"), "utf8");
        assert.equal(lock.split("\n")[0], String(killedPid), "the dead broker's lock is left behind");
      }

      broker = await startBrokerProcess({ ...common, dataDir });
      if (engine === "embedded") {
        const lock = readFileSync(join(dataDir, "db.lock"), "utf8");
        assert.equal(lock.split("\n")[0], String(broker.pid), "the stale lock was recovered");
      }
      await assertLogin(broker, "alice", ALICE_PW);
      await assertLogin(broker, "bob", BOB_PW);
      await assertRefused(broker, "bob", ALICE_PW);
      await assertRefused(broker, "nobody", BOB_PW);

      const list = await broker.cli(["user", "list"]);
      assert.equal(list.code, 0, list.stderr);
      assert.deepEqual(list.stdout.trim().split("\n"), ["alice@localhost", "bob@localhost"]);

      exit = await broker.stop("SIGTERM");
      assert.equal(exit.code, 0, broker.output());
    });
  });
}

describe("first start", () => {
  test("an empty data dir: database and certificate are created; timed against a restart", async (t) => {
    const dataDir = join(tempDataDir("hanse-fresh-"), "data");
    let broker = await startBrokerProcess({ dataDir, template: false, timeoutMs: 100_000 });
    t.after(() => broker.kill9());
    const firstMs = broker.startMs;
    assert.ok(existsSync(join(dataDir, "db", "PG_VERSION")), "embedded database created");
    assert.match(broker.certPem, /BEGIN CERTIFICATE/);
    assert.match(broker.output(), /embedded database initialised/);
    assert.match(broker.output(), /generated self-signed TLS certificate/);

    await addUser(broker, "carol@localhost", "carol's secret");
    await assertLogin(broker, "carol", "carol's secret");
    const certPem = broker.certPem;
    assert.equal((await broker.stop()).code, 0, broker.output());

    broker = await startBrokerProcess({ dataDir });
    const restartMs = broker.startMs;
    assert.equal(broker.certPem, certPem, "the certificate is reused");
    assert.doesNotMatch(broker.output(), /generated self-signed TLS certificate/);
    await assertLogin(broker, "carol", "carol's secret");
    assert.equal((await broker.stop()).code, 0, broker.output());

    t.diagnostic(
      `first start on an empty data dir: ${firstMs} ms (initdb + certificate); restart: ${restartMs} ms`,
    );
  });
});
