/**
 * "No stanza lost": a device with stream management has its TCP connection cut without a closing
 * handshake at random points while numbered messages stream to it. After it resumes (or logs in
 * again) it must have every message. Duplicates are counted and reported: XEP-0198 allows them
 * for stanzas the device received but had not yet acknowledged when the connection died.
 * References: XEP-0198 §4–§6; RFC 6121 §8.5.2.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { startTestBroker, type TestBroker } from "../server/testing/broker.ts";
import { SmDevice } from "./support/sm-device.ts";
import { connectClient, type TestClient, xml } from "./support/xmpp-client.ts";

/** A seeded PRNG (mulberry32) so a failing run can be repeated with HANSE_TEST_SEED. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("stream management: no silent loss", () => {
  let broker: TestBroker;
  let sender: TestClient;

  before(async () => {
    broker = await startTestBroker({ config: { c2s: { resume_timeout: 30 } } });
    await broker.addUser("sender", "sender-pw");
    await broker.addUser("device", "device-pw");
    sender = await connectClient({
      service: `xmpp://127.0.0.1:${broker.ports.c2s}`,
      domain: "localhost",
      username: "sender",
      password: "sender-pw",
      ca: broker.certificatePem,
    });
  });
  after(async () => {
    await sender?.stop().catch(() => {});
    await broker.stop();
  });

  async function streamWithCuts(opts: { total: number; resume: (cut: number) => boolean; seed: number }) {
    const random = prng(opts.seed);
    const counts = new Map<number, number>();
    const errors: string[] = [];
    const device = new SmDevice({
      port: broker.ports.c2s!,
      ca: broker.certificatePem,
      username: "device",
      password: "device-pw",
      resource: "sensor",
      onMessage: (xmlText) => {
        const n = Number(/<body>(\d+)<\/body>/.exec(xmlText)?.[1]);
        if (Number.isInteger(n)) counts.set(n, (counts.get(n) ?? 0) + 1);
      },
    });
    await device.start();
    sender.on("stanza", (s) => {
      if (s.is("message") && s.attrs.type === "error") errors.push(s.toString());
    });

    // The sender streams numbered messages to the device's bare JID, a few at a time.
    let sent = false;
    const sending = (async () => {
      for (let n = 1; n <= opts.total; n++) {
        await sender.send(
          xml("message", { to: "device@localhost", type: "chat", id: `n${n}` }, xml("body", {}, String(n))),
        );
        if (n % 10 === 0) await sleep(2);
      }
      sent = true;
    })();

    // Meanwhile the device loses its connection at random moments.
    let cuts = 0;
    let resumed = 0;
    let relogins = 0;
    const cutting = (async () => {
      // Cut while messages are in flight (at least twice, however fast the sender was), then let
      // the device collect the rest.
      while (!sent || cuts < 2) {
        await sleep(20 + random() * 120);
        await device.cut();
        cuts++;
        await sleep(random() * 50);
        if (opts.resume(cuts) && (await device.resume())) resumed++;
        else {
          await device.start();
          relogins++;
        }
      }
    })();

    await sending;
    const deadline = Date.now() + 30_000;
    while (counts.size < opts.total && Date.now() < deadline) await sleep(20);
    await cutting;
    await device.stop();

    const missing = [];
    for (let n = 1; n <= opts.total; n++) if (!counts.has(n)) missing.push(n);
    const duplicates = [...counts.values()].reduce((sum, c) => sum + c - 1, 0);
    return { missing, duplicates, cuts, resumed, relogins, errors };
  }

  test("1,000 messages, connection cut at random points, always resumed", async (t) => {
    const seed = Number(process.env.HANSE_TEST_SEED ?? Date.now() % 100_000);
    const result = await streamWithCuts({ total: 1000, resume: () => true, seed });
    t.diagnostic(
      `seed ${seed}: ${result.cuts} cuts, ${result.resumed} resumptions, ` +
        `${result.duplicates} duplicates (unacknowledged when cut, resent as XEP-0198 allows)`,
    );
    assert.ok(result.cuts >= 3, "the connection was cut several times");
    assert.deepEqual(result.missing, [], `missing messages (seed ${seed})`);
    assert.deepEqual(result.errors, [], "the sender got no errors");
  });

  test("1,000 messages, cut at random points, sometimes logging in again instead of resuming", async (t) => {
    const seed = Number(process.env.HANSE_TEST_SEED ?? (Date.now() + 1) % 100_000);
    // The first cut always logs in again; later ones resume except every third.
    const result = await streamWithCuts({ total: 1000, resume: (cut) => cut !== 1 && cut % 3 !== 0, seed });
    t.diagnostic(
      `seed ${seed}: ${result.cuts} cuts, ${result.resumed} resumptions, ${result.relogins} fresh logins, ` +
        `${result.duplicates} duplicates`,
    );
    assert.ok(result.relogins >= 1, "at least one fresh login without resumption");
    assert.deepEqual(result.missing, [], `missing messages (seed ${seed})`);
    assert.deepEqual(result.errors, [], "the sender got no errors");
  });
});
