/**
 * Running Hanse as an operator does: signals, start-up failures with messages that say what to
 * fix, /metrics and /health, no passwords in the log, and the README's `npm start` with no
 * configuration file. All against the real `hanse start` process.
 * References: RFC 6120 §4.9.3.22 (system-shutdown), Prometheus text exposition format 0.0.4,
 * server/main.ts, server/broker.ts, README "Getting started".
 */
import assert from "node:assert/strict";
import { existsSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import { describe, test } from "node:test";
import { tempDataDir } from "../server/storage/testing.ts";
import {
  type BrokerProcess,
  freePorts,
  launchBroker,
  prepareBroker,
  runHanse,
  startBrokerProcess,
  writePasswordFile,
} from "./support/broker-process.ts";
import { connectClient, type TestClient, xml } from "./support/xmpp-client.ts";

async function addUser(broker: BrokerProcess, jid: string, password: string): Promise<void> {
  const r = await broker.cli(["user", "add", jid, "--password-file", writePasswordFile(password)]);
  assert.equal(r.code, 0, `hanse user add ${jid}: ${r.stdout}${r.stderr}`);
}

/** Resolves with the condition of the next stream error the client receives. */
function nextStreamError(client: TestClient, timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no stream error within ${timeoutMs} ms`)), timeoutMs);
    const onError = (err: Error & { condition?: string }) => {
      if (err.name !== "StreamError") return;
      clearTimeout(timer);
      client.off("error", onError);
      resolve(err.condition ?? "");
    };
    client.on("error", onError);
  });
}

/** Sample values of one metric family from Prometheus text, keyed by their label set. */
function samples(text: string, name: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)/.exec(line);
    if (m && m[1] === name) out.set(m[2] ?? "", Number(m[3]));
  }
  return out;
}

const sum = (values: Map<string, number>) => [...values.values()].reduce((a, b) => a + b, 0);

function occupy(port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer((socket) => socket.destroy());
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve(server));
  });
}

describe("signals", { concurrency: true }, () => {
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    test(`${signal}: connected clients get system-shutdown, the process exits 0`, async (t) => {
      const broker = await startBrokerProcess();
      t.after(() => broker.kill9());
      await addUser(broker, "alice@localhost", "alice's password");
      const client = await broker.login("alice", "alice's password");
      t.after(() => client.stop().catch(() => {}));

      const streamError = nextStreamError(client);
      const exit = await broker.stop(signal, 10_000);
      assert.equal(await streamError, "system-shutdown");
      assert.deepEqual([exit.code, exit.signal], [0, null], broker.output());
      assert.ok(exit.ms < 5000, `exited ${exit.ms} ms after ${signal}`);
      t.diagnostic(`exited ${exit.ms} ms after ${signal}`);
      assert.match(broker.output(), new RegExp(`"signal":"${signal}".*"msg":"shutdown requested"`));
      assert.equal(existsSync(join(broker.dataDir, "db.lock")), false, "the data dir lock is released");
    });
  }
});

describe("start-up failures", { concurrency: true }, () => {
  test("a taken c2s port: exit 1, the message names the port and c2s", async (t) => {
    const ports = await freePorts();
    const squatter = await occupy(ports.c2s);
    t.after(() => new Promise((resolve) => squatter.close(resolve)));
    const prepared = await prepareBroker({ ports });

    const r = await runHanse(["start", "--config", prepared.configPath], { timeoutMs: 30_000 });
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(
      r.stderr,
      new RegExp(`^hanse: port ${ports.c2s} on 127\\.0\\.0\\.1 is already in use \\(c2s\\)`),
    );
    assert.doesNotMatch(r.stdout, /Hanse is serving/);
    // What was opened before the failure was closed again.
    assert.equal(existsSync(join(prepared.dataDir, "db.lock")), false, "the data dir lock is released");
  });

  test("an unusable data dir: exit 1, the message names the path", async () => {
    const dir = tempDataDir("hanse-ops-");
    writeFileSync(join(dir, "a-file"), "not a directory\n");
    const dataDir = join(dir, "a-file", "data");
    const prepared = await prepareBroker({ dataDir, template: false });

    const r = await runHanse(["start", "--config", prepared.configPath], { timeoutMs: 30_000 });
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stderr, /^hanse: /);
    assert.ok(r.stderr.includes(dataDir), r.stderr);
    assert.match(r.stderr, /not writable|not usable/);
    assert.doesNotMatch(r.stderr, /\n\s+at /, "no stack trace");
  });

  test("a second broker on the same data dir: exit 1, in use by the first one's pid", async (t) => {
    const first = await startBrokerProcess();
    t.after(() => first.kill9());
    const prepared = await prepareBroker({ dataDir: first.dataDir });

    const r = await runHanse(["start", "--config", prepared.configPath], { timeoutMs: 30_000 });
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(
      r.stderr,
      new RegExp(`^hanse: data directory ${first.dataDir} is in use by pid ${first.pid}`),
    );

    // The first broker is unharmed.
    const health = await fetch(`http://127.0.0.1:${first.ports.http}/health`);
    assert.equal(health.status, 200);
    await addUser(first, "zoe@localhost", "zoe's password");
    await (await first.login("zoe", "zoe's password")).stop();
    assert.equal((await first.stop()).code, 0, first.output());
  });
});

describe("observability", { concurrency: true }, () => {
  test("/metrics and /health on the loopback HTTP port", async (t) => {
    const broker = await startBrokerProcess();
    t.after(() => broker.kill9());
    const base = `http://127.0.0.1:${broker.ports.http}`;

    const health = await fetch(`${base}/health`);
    assert.equal(health.status, 200);
    assert.deepEqual(await health.json(), { status: "ok" });

    await addUser(broker, "mia@localhost", "mia's password");
    const client = await broker.login("mia", "mia's password");
    t.after(() => client.stop().catch(() => {}));
    // A message to our own bare JID goes through the router and comes back (once available).
    await client.send(xml("presence"));
    await client.send(xml("message", { to: "mia@localhost", type: "chat", id: "m1" }, xml("body", {}, "hi")));
    await client.nextStanza((s) => s.is("message") && s.attrs["id"] === "m1");
    await assert.rejects(broker.login("mia", "not mia's password"), (err: { condition?: string }) => {
      assert.equal(err.condition, "not-authorized");
      return true;
    });

    const res = await fetch(`${base}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /^text\/plain/);
    const text = await res.text();
    const connections = samples(text, "hanse_connections");
    assert.equal(connections.get('{kind="c2s",state="authenticated"}'), 1, text);
    assert.ok(sum(samples(text, "hanse_stanzas_total")) >= 1, text);
    assert.ok(sum(samples(text, "hanse_auth_failures_total")) >= 1, text);
    assert.match(text, /^# TYPE hanse_stanzas_total counter$/m);

    await client.stop();
    assert.equal((await broker.stop()).code, 0, broker.output());
    assert.match(broker.output(), /"msg":"listening"/, "the log is pino JSON on stdout");
  });

  test("the log never contains a password, even at debug level", async (t) => {
    const broker = await startBrokerProcess({ logLevel: "debug" });
    t.after(() => broker.kill9());
    const secrets = {
      first: "Ultra-Secret-Pass-4711",
      second: "Changed-Secret-Pass-0815",
      wrong: "Wrong-Guess-Pass-1234",
    };
    const cli: string[] = [];
    const run = async (args: string[], input: string) => {
      const r = await broker.cli(args, { input });
      cli.push(r.stdout, r.stderr);
      assert.equal(r.code, 0, r.stdout + r.stderr);
    };
    await run(["user", "add", "noah@localhost"], `${secrets.first}\n`);

    // SCRAM, then PLAIN (whose payload carries the password itself), then a failure.
    await (await broker.login("noah", secrets.first)).stop();
    await (
      await connectClient({
        service: `xmpp://127.0.0.1:${broker.ports.c2s}`,
        domain: broker.domain,
        username: "noah",
        password: secrets.first,
        ca: broker.certPem,
        mechanism: "PLAIN",
      })
    ).stop();
    await assert.rejects(broker.login("noah", secrets.wrong));
    await run(["user", "passwd", "noah@localhost"], `${secrets.second}\n`);
    await (await broker.login("noah", secrets.second)).stop();
    assert.equal((await broker.stop()).code, 0, broker.output());

    const log = broker.output();
    assert.match(log, /"level":20/, "debug lines were written");
    const forms = Object.values(secrets).flatMap((s) => [
      s,
      Buffer.from(s).toString("base64"),
      Buffer.from(`\0noah\0${s}`).toString("base64"), // a PLAIN <auth/> payload
    ]);
    for (const form of forms) {
      assert.ok(!log.includes(form), `the broker log contains ${form}`);
      assert.ok(!cli.join("").includes(form), `the CLI output contains ${form}`);
    }
  });
});

describe("README: npm start with no configuration file", () => {
  test("creates ./data with a certificate and the embedded database; clients can log in", async (t) => {
    const cwd = tempDataDir("hanse-readme-");
    const ports = await freePorts();
    const env = {
      HANSE_C2S_PORT: String(ports.c2s),
      HANSE_C2S_TLS_PORT: String(ports.c2sTls),
      HANSE_HTTP_PORT: String(ports.http),
      // No config file: the environment keeps this test's listeners on loopback.
      HANSE_C2S_BIND: "127.0.0.1",
      HANSE_S2S_PORT: "0", // no s2s listener on 0.0.0.0:5269 (other tests may hold 5269)
    };
    const broker = await launchBroker({
      cwd,
      dataDir: join(cwd, "data"),
      domain: "localhost",
      ports,
      env,
      timeoutMs: 100_000,
    });
    t.after(() => broker.kill9());

    const out = broker.stdout();
    assert.match(out, /Hanse is serving localhost/);
    assert.match(out, new RegExp(`c2s \\(STARTTLS\\) +127\\.0\\.0\\.1:${ports.c2s}`));
    assert.match(out, new RegExp(`c2s \\(direct TLS\\) +127\\.0\\.0\\.1:${ports.c2sTls}`));
    assert.match(out, new RegExp(`http://127\\.0\\.0\\.1:${ports.http}/metrics`));
    assert.match(out, new RegExp(`data +${join(cwd, "data")} \\(embedded database\\)`));
    assert.ok(existsSync(join(cwd, "data", "certs", "localhost.crt")), "certificate created");
    assert.ok(existsSync(join(cwd, "data", "db", "PG_VERSION")), "embedded database created");
    assert.deepEqual(readdirSync(cwd).sort(), ["data"], "nothing else is written to the cwd");
    // It holds the database (password verifiers), its socket and the TLS key.
    assert.equal(statSync(join(cwd, "data")).mode & 0o777, 0o700, "./data is owner-only");

    // `hanse user add` in the same directory finds ./data and the running broker's database.
    const r = await broker.cli(["user", "add", "olivia@localhost"], { input: "olivia's password\n" });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const client = await broker.login("olivia", "olivia's password");
    await client.stop();
    assert.equal((await broker.stop()).code, 0, broker.output());
  });
});
