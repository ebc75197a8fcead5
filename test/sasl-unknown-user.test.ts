/**
 * An unknown user must look like a known one, also across a restart: the fake SCRAM salt and
 * iteration count the server makes up for a user it does not have are derived from a secret kept
 * in the data directory, so they are the same before and after a restart, like a real user's.
 * References: RFC 5802 §5.1 (server-first-message: s=salt, i=iteration-count), §9 (security:
 * a server should not reveal whether a user exists).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { startTestBroker, type TestBroker } from "../server/testing/broker.ts";
import { NS_SASL, RawStream } from "./support/raw-stream.ts";

/** The salt and iteration count of the server-first-message for `username`. */
async function saltFor(broker: TestBroker, username: string): Promise<string> {
  const raw = await RawStream.connect({
    port: broker.ports.c2sTls!,
    tls: { ca: broker.certificatePem, servername: "localhost" },
  });
  try {
    await raw.open({ to: "localhost" });
    const clientFirst = Buffer.from(`n,,n=${username},r=0123456789abcdef`).toString("base64");
    await raw.send(`<auth xmlns='${NS_SASL}' mechanism='SCRAM-SHA-256'>${clientFirst}</auth>`);
    const [, payload] = await raw.waitFor(/<challenge[^>]*>([^<]+)<\/challenge>/);
    const serverFirst = Buffer.from(payload!, "base64").toString("utf8");
    const found = /,s=([^,]+),i=(\d+)/.exec(serverFirst);
    assert.ok(found, `server-first-message: ${serverFirst}`);
    return `${found[1]} ${found[2]}`;
  } finally {
    raw.destroy();
  }
}

test("an unknown user's fake salt is stable across a restart, like a real user's", async (t) => {
  const first = await startTestBroker();
  let second: TestBroker | undefined;
  let other: TestBroker | undefined;
  t.after(async () => {
    await first.stop().catch(() => {});
    await second?.stop();
    await other?.stop();
  });
  await first.addUser("alice", "alice-pw");
  const before = { alice: await saltFor(first, "alice"), mallory: await saltFor(first, "mallory") };
  assert.equal(await saltFor(first, "mallory"), before.mallory, "deterministic within one run");
  assert.notEqual(before.mallory, before.alice);
  await first.stop();

  second = await startTestBroker({
    reuse: { data_dir: first.config.data_dir, database: first.config.database },
  });
  assert.equal(await saltFor(second, "alice"), before.alice);
  assert.equal(
    await saltFor(second, "mallory"),
    before.mallory,
    "the unknown user looks the same after a restart",
  );

  // The salt comes from the data directory's secret (not from this process): another server, in
  // the same process, makes up a different one.
  other = await startTestBroker();
  assert.notEqual(await saltFor(other, "mallory"), before.mallory);
});
