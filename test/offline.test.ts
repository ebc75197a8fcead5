/**
 * Offline messages seen from real clients, on both storage engines: 1,000 messages stored and
 * delivered complete and in order with delay stamps, the quota, a broker restart, messages sent
 * while a flush runs, a session that dies in the middle of a flush, and what is not stored. The
 * "msgoffline" disco feature is checked with the others in carbons-blocking.test.ts.
 * References: XEP-0160 §2-§4, XEP-0203, RFC 6121 §8.5.2.2.1, RFC 6120 §8.3.3.18.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { startTestBroker, type TestBroker } from "../server/testing/broker.ts";
import { connectClient, type Element, loginTo, type TestClient, xml } from "./support/xmpp-client.ts";

const DELAY = "urn:xmpp:delay";

function login(broker: TestBroker, username: string, resource?: string): Promise<TestClient> {
  return loginTo(broker, username, `${username}-pw`, resource ? { resource } : {});
}

/** A ping round trip: everything the client sent before has been processed by the server. */
async function sync(client: TestClient): Promise<void> {
  await client.iqCaller.request(xml("iq", { type: "get" }, xml("ping", { xmlns: "urn:xmpp:ping" })));
}

function chat(to: string, n: number | string, type = "chat"): Element {
  return xml("message", { to, type, id: `m${n}` }, xml("body", {}, `message ${n}`));
}

/** Sends `count` numbered chats, starting at `from`, then waits until the server processed them. */
async function sendNumbered(client: TestClient, to: string, from: number, count: number): Promise<void> {
  for (let i = from; i < from + count; i++) await client.send(chat(to, i));
  await sync(client);
}

/** Waits for `count` messages with a body and returns them in arrival order. */
async function bodies(client: TestClient, count: number, timeoutMs = 30_000): Promise<Element[]> {
  const got: Element[] = [];
  for (let i = 0; i < count; i++) {
    got.push(await client.nextStanza((s) => s.is("message") && s.getChild("body") !== undefined, timeoutMs));
  }
  return got;
}

/** Polls until `check` holds (the server finishes work the client cannot see). */
async function waitFor(check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("condition not reached in time");
    await new Promise((r) => setTimeout(r, 50));
  }
}

const numberOf = (m: Element) => Number(m.getChildText("body")!.replace("message ", ""));

async function storedCount(broker: TestBroker, username: string): Promise<number> {
  const [row] = await broker.storage.db<{ n: number }[]>`
    select count(*)::int as n from offline_messages where username = ${username}`;
  return row!.n;
}

for (const engine of ["embedded", "postgres"] as const) {
  describe(`offline messages (${engine} engine)`, () => {
    let broker: TestBroker;
    const clients: TestClient[] = [];
    const open = async (username: string, resource?: string) => {
      const c = await login(broker, username, resource);
      clients.push(c);
      return c;
    };

    before(async () => {
      broker = await startTestBroker({
        engine,
        config: {
          // Without resumption a dropped XEP-0198 session ends at once and hands its
          // unacknowledged stanzas back (the mid-flush test needs that).
          c2s: { resume_timeout: 0 },
          modules: { offline: { max_messages: 1000, max_bytes: 1_000_000, batch_size: 10 } },
        },
      });
      for (const name of ["alice", "bob", "carol", "dave", "erin"]) await broker.addUser(name, `${name}-pw`);
    });
    after(async () => {
      await Promise.all(clients.map((c) => c.stop().catch(() => {})));
      await broker.stop();
    });

    test("1,000 messages to an offline user arrive after login, complete, in order, delay-stamped", async () => {
      const alice = await open("alice");
      const started = Date.now();
      await sendNumbered(alice, "bob@localhost", 1, 1000);
      assert.equal(await storedCount(broker, "bob"), 1000);
      assert.ok(!alice.inbox.some((s) => s.attrs.type === "error"), "no errors: all were stored");

      const bob = await open("bob");
      await bob.send(xml("presence"));
      const got = await bodies(bob, 1000);
      assert.deepEqual(
        got.map(numberOf),
        Array.from({ length: 1000 }, (_, i) => i + 1),
      );
      for (const m of got) {
        const delay = m.getChild("delay", DELAY);
        assert.ok(delay, "each message carries a XEP-0203 delay stamp");
        assert.equal(delay.attrs.from, "localhost");
        const stamp = Date.parse(delay.attrs.stamp);
        assert.match(delay.attrs.stamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/, "XEP-0082 UTC");
        assert.ok(stamp >= started - 1000 && stamp <= Date.now(), "stamped when stored");
        assert.equal(m.attrs.from, "alice@localhost/" + alice.jid?.resource);
      }
      // Rows are deleted after each batch is handed over; the last delete may still be committing.
      await waitFor(async () => (await storedCount(broker, "bob")) === 0);
      await Promise.all([alice.stop(), bob.stop()]);
    });

    test("over the quota the sender gets resource-constraint, never a silent drop", async () => {
      const quotaBroker = await startTestBroker({
        engine,
        config: { modules: { offline: { max_messages: 3, max_bytes: 2000 } } },
      });
      try {
        await quotaBroker.addUser("alice", "alice-pw");
        await quotaBroker.addUser("bob", "bob-pw");
        const alice = await login(quotaBroker, "alice");
        clients.push(alice);
        await sendNumbered(alice, "bob@localhost", 1, 4);
        const error = await alice.nextStanza((s) => s.attrs.type === "error");
        assert.equal(error.attrs.id, "m4");
        assert.ok(error.getChild("error")?.getChild("resource-constraint"), error.toString());
        assert.equal(error.getChild("error")?.attrs.type, "wait");

        // The byte quota: one message larger than what is left.
        const big = xml("message", { to: "carol@localhost", type: "chat", id: "big" });
        await quotaBroker.addUser("carol", "carol-pw");
        big.c("body").t("x".repeat(2500));
        await alice.send(big);
        const bigError = await alice.nextStanza((s) => s.attrs.id === "big");
        assert.ok(bigError.getChild("error")?.getChild("resource-constraint"));

        // Delivery gives the room back.
        const bob = await login(quotaBroker, "bob");
        clients.push(bob);
        await bob.send(xml("presence"));
        assert.deepEqual((await bodies(bob, 3)).map(numberOf), [1, 2, 3]);
        await bob.stop();
        await sendNumbered(alice, "bob@localhost", 5, 3);
        assert.ok(!alice.inbox.some((s) => s.attrs.type === "error"));
        await alice.stop();
      } finally {
        await quotaBroker.stop();
      }
    });

    test("stored messages survive a broker restart", async () => {
      const first = await startTestBroker({ engine });
      let second: TestBroker | undefined;
      try {
        await first.addUser("alice", "alice-pw");
        await first.addUser("bob", "bob-pw");
        const alice = await login(first, "alice");
        await sendNumbered(alice, "bob@localhost", 1, 20);
        await alice.stop();
        await first.stop();

        second = await startTestBroker({
          engine,
          reuse: { data_dir: first.config.data_dir, database: first.config.database },
        });
        const bob = await login(second, "bob");
        await bob.send(xml("presence"));
        const got = await bodies(bob, 20);
        assert.deepEqual(
          got.map(numberOf),
          Array.from({ length: 20 }, (_, i) => i + 1),
        );
        assert.ok(got.every((m) => m.getChild("delay", DELAY)));
        await bob.stop();
      } finally {
        await first.stop();
        await second?.stop();
      }
    });

    test("messages sent while a flush runs arrive after the stored ones", async () => {
      const alice = await open("alice", "writer");
      await sendNumbered(alice, "carol@localhost", 1, 500);
      const carol = await open("carol");
      // Presence and the next messages leave at once: the live ones race the 10-message batches.
      const live = (async () => {
        for (let i = 501; i <= 600; i++) await alice.send(chat("carol@localhost", i));
      })();
      await carol.send(xml("presence"));
      await live;
      const got = await bodies(carol, 600);
      assert.deepEqual(
        got.map(numberOf),
        Array.from({ length: 600 }, (_, i) => i + 1),
      );
      // Once the flush is over, messages go straight through again, without a stamp.
      await waitFor(async () => (await storedCount(broker, "carol")) === 0);
      await new Promise((r) => setTimeout(r, 200));
      await alice.send(chat("carol@localhost", 601));
      const direct = (await bodies(carol, 1))[0]!;
      assert.equal(numberOf(direct), 601);
      assert.equal(direct.getChild("delay", DELAY), undefined);
      await Promise.all([alice.stop(), carol.stop()]);
    });

    test("a session that dies mid-flush: the rest stays stored for the next login", async () => {
      const alice = await open("alice");
      await sendNumbered(alice, "dave@localhost", 1, 400);
      const first = await open("dave", "phone");
      await first.send(xml("presence"));
      const seen = new Set((await bodies(first, 60)).map(numberOf));
      // Gone without a goodbye while batches are still being handed over.
      first.tlsSocket()?.destroy();
      const second = await open("dave", "laptop");
      await second.send(xml("presence"));
      await waitFor(async () => (await storedCount(broker, "dave")) === 0);
      await sync(second);
      for (const m of first.inbox) if (m.is("message")) seen.add(numberOf(m));
      const rest = second.inbox.filter((s) => s.is("message")).map(numberOf);
      assert.ok(rest.length > 0, "the first session cannot have taken all 400 at once");
      assert.deepEqual(
        rest,
        Array.from({ length: rest.length }, (_, i) => rest[0]! + i),
        "the rest, in order",
      );
      assert.equal(rest.at(-1), 400);
      // Without XEP-0198 what was written to the dying socket is lost (the next test covers
      // that case): only messages before the rest may be missing.
      for (const n of rest) seen.add(n);
      const missing = Array.from({ length: 400 }, (_, i) => i + 1).filter((n) => !seen.has(n));
      assert.ok(
        missing.every((n) => n < rest[0]!),
        `missing: ${missing.join(",")}`,
      );
      await Promise.all([alice.stop(), second.stop()]);
    });

    test("with XEP-0198 a session that dies mid-flush loses nothing: unacknowledged ones come back first", async () => {
      await broker.addUser("gina", "gina-pw");
      const alice = await open("alice");
      await sendNumbered(alice, "gina@localhost", 1, 400);
      const first = await connectClient({
        service: `xmpp://127.0.0.1:${broker.ports.c2s}`,
        domain: "localhost",
        username: "gina",
        password: "gina-pw",
        ca: broker.certificatePem,
        resource: "phone",
        streamManagement: true,
      });
      clients.push(first);
      await first.send(xml("presence"));
      // Far enough in that some were acknowledged (the client answers <r/>), some not.
      const seen = new Set((await bodies(first, 120)).map(numberOf));
      first.tlsSocket()?.destroy();
      const second = await open("gina", "laptop");
      await second.send(xml("presence"));
      const rest: number[] = [];
      await waitFor(async () => {
        for (const m of second.inbox.splice(0)) if (m.is("message")) rest.push(numberOf(m));
        return rest.at(-1) === 400 && (await storedCount(broker, "gina")) === 0;
      });
      assert.deepEqual(
        rest,
        Array.from({ length: rest.length }, (_, i) => rest[0]! + i),
        "one ordered run: what was never acknowledged first, then what was still stored",
      );
      assert.ok(rest[0]! <= 121, "nothing between what the first session saw and the rest is skipped");
      for (const n of rest) seen.add(n);
      assert.equal(seen.size, 400, "every message reached a session (at least once)");
      await Promise.all([alice.stop(), second.stop()]);
    });

    test("unknown accounts, headlines, no-store hints and typing notifications are not stored", async () => {
      const alice = await open("alice");
      await alice.send(chat("nobody@localhost", "u"));
      const unknown = await alice.nextStanza((s) => s.attrs.id === "mu");
      assert.ok(unknown.getChild("error")?.getChild("service-unavailable"));

      await alice.send(chat("erin@localhost", "h", "headline"));
      const noStore = chat("erin@localhost", "n");
      noStore.c("no-store", { xmlns: "urn:xmpp:hints" });
      await alice.send(noStore);
      const refused = await alice.nextStanza((s) => s.attrs.id === "mn");
      assert.ok(refused.getChild("error")?.getChild("service-unavailable"));
      await alice.send(
        xml(
          "message",
          { to: "erin@localhost", type: "chat", id: "typing" },
          xml("composing", { xmlns: "http://jabber.org/protocol/chatstates" }),
        ),
      );
      await sync(alice);
      assert.ok(!alice.inbox.some((s) => s.attrs.id === "typing" || s.attrs.id === "mh"), "dropped quietly");
      assert.equal(await storedCount(broker, "erin"), 0);
      await alice.stop();
    });

    test("deleting an account deletes its stored messages", async () => {
      await broker.addUser("frank", "frank-pw");
      const alice = await open("alice");
      await sendNumbered(alice, "frank@localhost", 1, 5);
      assert.equal(await storedCount(broker, "frank"), 5);
      assert.equal(await broker.accounts.delete("frank"), true);
      assert.equal(await storedCount(broker, "frank"), 0);
      await alice.stop();
    });
  });
}
