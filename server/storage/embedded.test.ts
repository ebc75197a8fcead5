/**
 * The embedded engine: worker thread, socket, data-dir lock, failure reporting.
 * References: DESIGN.md §1.5, §6.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { describe, test } from "node:test";
import postgres from "postgres";
import { silentLogger } from "../observability/logger.ts";
import { MAX_SOCKET_PATH_BYTES, startEmbeddedEngine } from "./embedded.ts";
import { DataDirLockedError, readLock } from "./lock-file.ts";
import { embeddedPaths, openStorage, type StorageConfig } from "./open.ts";
import { embeddedDataDirFromTemplate, tempDataDir } from "./testing.ts";

const log = silentLogger();

async function templateConfig(dataDir = tempDataDir()): Promise<StorageConfig> {
  await embeddedDataDirFromTemplate(dataDir);
  return { data_dir: dataDir, database: { max_connections: 4 } };
}

describe("embedded engine", () => {
  test("data survives close and reopen; the lock and socket are cleaned up", async () => {
    const config = await templateConfig();
    const first = await openStorage(config, log, { role: "broker" });
    assert.equal(first.engine, "embedded");
    await first.db`create table notes (body text)`;
    await first.db`insert into notes values (${"kept"})`;
    await first.close();
    assert.equal(existsSync(join(config.data_dir, "db.lock")), false);
    assert.equal(existsSync(join(config.data_dir, "db.sock")), false);

    const second = await openStorage(config, log, { role: "broker" });
    try {
      const rows = await second.db`select body from notes`;
      assert.deepEqual(
        rows.map((r) => r.body),
        ["kept"],
      );
    } finally {
      await second.close();
    }
  });

  test("a second broker is refused with the holder's pid; a CLI borrows the engine", async () => {
    const config = await templateConfig();
    const broker = await openStorage(config, log, { role: "broker" });
    try {
      const lock = readLock(embeddedPaths(config.data_dir).lock);
      assert.equal(lock?.pid, process.pid);
      await assert.rejects(
        () => openStorage(config, log, { role: "broker" }),
        (err: unknown) => {
          assert.ok(err instanceof DataDirLockedError);
          assert.equal(err.message, `data directory ${config.data_dir} is in use by pid ${process.pid}`);
          return true;
        },
      );
      const cli = await openStorage(config, log, { role: "cli" });
      try {
        await cli.db`create table shared (n int)`;
        await cli.db`insert into shared values (7)`;
        const rows = await broker.db`select n from shared`;
        assert.equal(rows[0]!.n, 7);
      } finally {
        await cli.close();
      }
      // The borrower's close leaves the owner running.
      const again = await broker.db`select count(*)::int as n from shared`;
      assert.equal(again[0]!.n, 1);
    } finally {
      await broker.close();
    }
  });

  test("a lock left by a dead process is recovered", async () => {
    const config = await templateConfig();
    const dead = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"], {
      encoding: "utf8",
    });
    const deadPid = Number(dead.stdout);
    writeFileSync(embeddedPaths(config.data_dir).lock, `${deadPid}\n`);
    const storage = await openStorage(config, log, { role: "broker" });
    try {
      assert.equal(readLock(embeddedPaths(config.data_dir).lock)?.pid, process.pid);
    } finally {
      await storage.close();
    }
  });

  test("a data dir whose path is too long for a unix socket gets a private tmp socket", async () => {
    let dataDir = tempDataDir();
    while (Buffer.byteLength(join(dataDir, "db.sock")) <= MAX_SOCKET_PATH_BYTES)
      dataDir = join(dataDir, "long-name");
    const config = await templateConfig(dataDir);
    const broker = await openStorage(config, log, { role: "broker" });
    try {
      const socket = readLock(embeddedPaths(dataDir).lock)?.socket;
      assert.ok(socket && !socket.startsWith(dataDir), `socket ${socket} should be outside the data dir`);
      // A CLI finds it through the lock file.
      const cli = await openStorage(config, log, { role: "cli" });
      try {
        assert.equal((await cli.db`select 41 + 1 as n`)[0]!.n, 42);
      } finally {
        await cli.close();
      }
    } finally {
      await broker.close();
    }
  });

  test("an unusable data directory is reported with its path", async () => {
    const base = tempDataDir();
    writeFileSync(join(base, "a-file"), "");
    const underFile = join(base, "a-file", "data");
    await assert.rejects(
      () => openStorage({ data_dir: underFile, database: { max_connections: 2 } }, log, { role: "broker" }),
      (err: Error) => {
        assert.match(err.message, new RegExp(`^data directory ${underFile} is not usable: ENOTDIR`));
        return true;
      },
    );

    // Permission denied: root ignores modes, so as root ask an unprivileged user to try.
    const readOnly = join(base, "read-only");
    mkdirSync(readOnly, { mode: 0o755 });
    chmodSync(base, 0o755);
    if (process.getuid?.() !== 0) {
      chmodSync(readOnly, 0o500);
      await assert.rejects(
        () => openStorage({ data_dir: readOnly, database: { max_connections: 2 } }, log, { role: "broker" }),
        new RegExp(`^StorageError: data directory ${readOnly} is not usable: EACCES`),
      );
      return;
    }
    const child = join(import.meta.dirname, "..", "accounts", "testing-child.ts");
    const args = JSON.stringify({
      config: { data_dir: readOnly, database: { max_connections: 2 } },
      role: "broker",
    });
    const result = spawnSync(
      "runuser",
      ["-u", "nobody", "--", process.execPath, "--import", "tsx", child, args],
      {
        encoding: "utf8",
        cwd: join(import.meta.dirname, "..", ".."),
      },
    );
    assert.equal(result.status, 1, result.stderr);
    assert.match(result.stdout, new RegExp(`^error data directory ${readOnly} is not usable: EACCES`));
  });

  test("a slow query in the worker does not block the main thread's timers", async () => {
    const storage = await openStorage(await templateConfig(), log, { role: "broker" });
    try {
      await storage.db`select 1`;
      let last = performance.now();
      let worstGap = 0;
      const timer = setInterval(() => {
        const now = performance.now();
        worstGap = Math.max(worstGap, now - last);
        last = now;
      }, 10);
      const started = performance.now();
      await storage.db`select pg_sleep(1)`;
      const took = performance.now() - started;
      clearInterval(timer);
      assert.ok(took >= 950, `pg_sleep(1) took ${took} ms`);
      // In-process PGlite would freeze the timer for the whole second (DESIGN.md §6).
      assert.ok(worstGap < 250, `a 10 ms timer stalled for ${worstGap.toFixed(0)} ms`);
    } finally {
      await storage.close();
    }
  });

  test("concurrent connections never see each other's statements or portals", async () => {
    const storage = await openStorage(
      { ...(await templateConfig()), database: { max_connections: 8 } },
      log,
      { role: "broker" },
    );
    try {
      const sql = storage.db;
      await sql`create table blobs (id int primary key, b bytea)`;
      let wrong = 0;
      await Promise.all(
        Array.from({ length: 600 }, async (_, i) => {
          await new Promise((r) => setTimeout(r, Math.random() * 40));
          switch (i % 4) {
            case 0: {
              // Big enough that a Bind arrives in several socket reads.
              const big = Buffer.alloc(200_000 + i, i % 251);
              await sql`insert into blobs values (${i}, ${big})`;
              const [r] = await sql`select length(b) as l, get_byte(b, 9) as x from blobs where id = ${i}`;
              if (r!.l !== big.length || r!.x !== i % 251) wrong++;
              break;
            }
            case 1:
              await sql.begin(async (tx) => {
                const [r] = await tx`select ${i}::int as v`;
                if (r!.v !== i) wrong++;
              });
              break;
            case 2:
              await assert.rejects(() => sql`select ${i}::int / 0`, /division by zero/);
              break;
            default: {
              const rows = await sql`select ${`s${i}`}::text as s, generate_series(1, ${(i % 5) + 1}) as g`;
              if (rows.length !== (i % 5) + 1 || rows[0]!.s !== `s${i}`) wrong++;
            }
          }
        }),
      );
      assert.equal(wrong, 0);
    } finally {
      await storage.close();
    }
  });

  test("a client that dies mid-exchange inside a transaction does not wedge the engine", async () => {
    const config = await templateConfig();
    const broker = await openStorage(config, log, { role: "broker" });
    try {
      await broker.db`create table t (n int)`;
      const socket = readLock(embeddedPaths(config.data_dir).lock)!.socket!;
      // A raw protocol client (PostgreSQL docs §53.7), so we can stop half-way.
      const client = connect(socket);
      let received = Buffer.alloc(0);
      const waitFor = (bytes: number[]) =>
        new Promise<void>((resolve) => {
          const check = () => {
            if (received.includes(Buffer.from(bytes))) {
              client.off("data", onData);
              resolve();
            }
          };
          const onData = (chunk: Buffer) => {
            received = Buffer.concat([received, chunk]);
            check();
          };
          client.on("data", onData);
          check();
        });
      const message = (type: string, body: Buffer) => {
        const head = Buffer.alloc(5);
        head.write(type, 0, "latin1");
        head.writeInt32BE(body.length + 4, 1);
        return Buffer.concat([head, body]);
      };
      const params = Buffer.from("user\0postgres\0database\0postgres\0\0", "latin1");
      const startup = Buffer.alloc(8);
      startup.writeInt32BE(8 + params.length, 0);
      startup.writeInt32BE(196608, 4); // protocol 3.0
      client.write(Buffer.concat([startup, params]));
      await waitFor([0x5a, 0, 0, 0, 5, 0x49]); // ReadyForQuery, idle
      received = Buffer.alloc(0);
      client.write(message("Q", Buffer.from("begin; insert into t values (1)\0")));
      await waitFor([0x5a, 0, 0, 0, 5, 0x54]); // ReadyForQuery, in a transaction
      // A Parse that fails, and no Sync: the backend now skips everything until a Sync.
      client.write(message("P", Buffer.from("\0select * from no_such_table\0\0\0", "latin1")));
      await new Promise((r) => setTimeout(r, 100));
      client.destroy();

      const [row] = await broker.db`select count(*)::int as n from t`;
      assert.equal(row!.n, 0, "the dead client's transaction was rolled back");
      await broker.db`insert into t values (2)`;
      assert.equal((await broker.db`select count(*)::int as n from t`)[0]!.n, 1);
    } finally {
      await broker.close();
    }
  });

  test("a worker that cannot start fails with an error naming the directory", async () => {
    const dir = tempDataDir();
    const pgdata = join(dir, "db");
    writeFileSync(pgdata, "not a directory");
    await assert.rejects(
      () => startEmbeddedEngine({ pgdata, socketPath: join(dir, "s"), maxConnections: 2, log }),
      new RegExp(`^Error: embedded database in ${pgdata} failed to start`),
    );
  });

  test("a crashed worker turns queries into errors and tells the listener", async () => {
    const dataDir = tempDataDir();
    await embeddedDataDirFromTemplate(dataDir);
    const socketPath = join(dataDir, "db.sock");
    const engine = await startEmbeddedEngine({
      pgdata: embeddedPaths(dataDir).pgdata,
      socketPath,
      maxConnections: 4,
      log,
    });
    const failures: Error[] = [];
    engine.onFailure((err) => failures.push(err));
    const sql = postgres({ path: socketPath, max: 2, onnotice: () => {}, connect_timeout: 2 });
    try {
      assert.equal((await sql`select 1 as n`)[0]!.n, 1);
      const slow = sql`select pg_sleep(5)`;
      await new Promise((r) => setTimeout(r, 200));
      await engine.kill();
      const started = performance.now();
      await assert.rejects(() => slow);
      await assert.rejects(() => sql`select 1`);
      assert.ok(performance.now() - started < 5000, "errors, not a hang");
      assert.equal(failures.length, 1);
      assert.match(failures[0]!.message, /exited unexpectedly/);
    } finally {
      await sql.end({ timeout: 0 });
      await engine.stop();
    }
    assert.ok(readFileSync(join(embeddedPaths(dataDir).pgdata, "PG_VERSION"), "utf8"));
  });
});
