/**
 * Message carbons and the blocking command seen from real clients: received and sent copies reach
 * the other enabled resources (and private ones do not); a blocked JID's stanzas are refused with
 * the XEP-0191 answers and never reach the blocker, on both storage engines; the presence sent on
 * block and unblock; unblocking restores delivery.
 * References: XEP-0280 §3-§9, XEP-0297, XEP-0334 §4; XEP-0191 §3.1-§3.5; XEP-0160.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { startTestBroker, type TestBroker } from "../server/testing/broker.ts";
import { type Element, loginTo, type TestClient, xml } from "./support/xmpp-client.ts";

const CARBONS = "urn:xmpp:carbons:2";
const FORWARD = "urn:xmpp:forward:0";
const BLOCKING = "urn:xmpp:blocking";
const DISCO_INFO = "http://jabber.org/protocol/disco#info";

function stanzaError(err: unknown): string | undefined {
  return (err as { condition?: string }).condition;
}

async function sync(client: TestClient): Promise<void> {
  await client.iqCaller.request(xml("iq", { type: "get" }, xml("ping", { xmlns: "urn:xmpp:ping" })));
}

function chat(to: string, id: string, ...extra: Element[]): Element {
  return xml("message", { to, type: "chat", id }, xml("body", {}, `body of ${id}`), ...extra);
}

/** The message inside a carbon copy, checking the wrapper on the way (XEP-0280 §7/§8, §11). */
function forwarded(copy: Element, direction: "received" | "sent", user: string): Element {
  assert.equal(copy.attrs.from, user, "a carbon comes from the user's bare JID");
  const inner = copy.getChild(direction, CARBONS)?.getChild("forwarded", FORWARD)?.getChild("message");
  assert.ok(inner, `a <${direction}/> carbon: ${copy.toString()}`);
  return inner;
}

const isCarbon = (direction: "received" | "sent", id: string) => (s: Element) =>
  s.is("message") &&
  s.getChild(direction, CARBONS)?.getChild("forwarded")?.getChild("message")?.attrs.id === id;

class Users {
  readonly clients: TestClient[] = [];
  constructor(readonly broker: () => TestBroker) {}

  async login(username: string, resource: string, priority?: number): Promise<TestClient> {
    const broker = this.broker();
    const client = await loginTo(broker, username, `${username}-pw`, { resource });
    this.clients.push(client);
    if (priority !== undefined) {
      await client.send(xml("presence", {}, xml("priority", {}, String(priority))));
      await sync(client);
    }
    return client;
  }

  async stopAll(): Promise<void> {
    await Promise.all(this.clients.splice(0).map((c) => c.stop().catch(() => {})));
  }
}

async function enableCarbons(client: TestClient): Promise<void> {
  await client.iqCaller.request(xml("iq", { type: "set" }, xml("enable", { xmlns: CARBONS })));
}

describe("message carbons", () => {
  let broker: TestBroker;
  const users = new Users(() => broker);

  before(async () => {
    broker = await startTestBroker();
    for (const name of ["alice", "bob"]) await broker.addUser(name, `${name}-pw`);
  });
  after(async () => {
    await users.stopAll();
    await broker.stop();
  });

  test("the server advertises carbons (with the copying rules) and blocking", async () => {
    const alice = await users.login("alice", "disco");
    const info = await alice.iqCaller.get(xml("query", { xmlns: DISCO_INFO }), "localhost");
    const features = info?.getChildren("feature").map((f) => f.attrs.var) ?? [];
    for (const ns of [CARBONS, "urn:xmpp:carbons:rules:0", BLOCKING, "msgoffline"]) {
      assert.ok(features.includes(ns), `feature ${ns}`);
    }
    await users.stopAll();
  });

  test("received carbons reach the other enabled resources, not the one that got the message", async () => {
    const bobA = await users.login("bob", "a", 5);
    const bobB = await users.login("bob", "b", 1);
    const bobPlain = await users.login("bob", "plain", 0); // never enables carbons
    await enableCarbons(bobA);
    await enableCarbons(bobB);
    const alice = await users.login("alice", "home", 0);

    // To the bare JID: the original goes to the highest priority (a), a copy to b.
    await alice.send(chat("bob@localhost", "r1"));
    const original = await bobA.nextStanza((s) => s.attrs.id === "r1");
    assert.equal(original.getChildText("body"), "body of r1");
    const copy = await bobB.nextStanza(isCarbon("received", "r1"));
    assert.equal(copy.attrs.to, "bob@localhost/b");
    assert.equal(copy.attrs.type, "chat", "the wrapper keeps the type (XEP-0280 §7)");
    const inner = forwarded(copy, "received", "bob@localhost");
    assert.equal(inner.attrs.xmlns, "jabber:client", "XEP-0297: the forwarded stanza keeps its namespace");
    assert.equal(inner.attrs.from, "alice@localhost/home");
    assert.equal(inner.getChildText("body"), "body of r1");

    // To a full JID: the other enabled resource (a) gets the copy, the addressee (b) only the original.
    await alice.send(chat("bob@localhost/b", "r2"));
    await bobB.nextStanza((s) => s.attrs.id === "r2");
    forwarded(await bobA.nextStanza(isCarbon("received", "r2")), "received", "bob@localhost");

    // A normal message without a body (a receipt-less ping of sorts) is not eligible; one with is.
    await alice.send(xml("message", { to: "bob@localhost", id: "r3" }, xml("subject", {}, "no body")));
    await alice.send(xml("message", { to: "bob@localhost", id: "r4" }, xml("body", {}, "normal")));
    await bobB.nextStanza(isCarbon("received", "r4"));
    for (const c of [bobA, bobB, bobPlain]) await sync(c);
    assert.ok(!bobB.inbox.some(isCarbon("received", "r3")), "normal without body: no copy");
    assert.ok(
      !bobA.inbox.some(
        (s) => s.getChild("received", CARBONS)?.getChild("forwarded")?.getChild("message")?.attrs.id === "r1",
      ),
    );
    assert.ok(!bobPlain.inbox.some((s) => s.getChild("received", CARBONS) || s.getChild("sent", CARBONS)));
    await users.stopAll();
  });

  test("sent carbons reach the user's other enabled resources, never the sender", async () => {
    const bobA = await users.login("bob", "a", 1);
    const bobB = await users.login("bob", "b", 1);
    await enableCarbons(bobA);
    await enableCarbons(bobB);
    const alice = await users.login("alice", "home", 0);

    await bobA.send(chat("alice@localhost", "s1"));
    await alice.nextStanza((s) => s.attrs.id === "s1");
    const copy = await bobB.nextStanza(isCarbon("sent", "s1"));
    assert.equal(copy.attrs.to, "bob@localhost/b");
    const inner = forwarded(copy, "sent", "bob@localhost");
    assert.equal(inner.attrs.from, "bob@localhost/a");
    assert.equal(inner.attrs.to, "alice@localhost");
    await sync(bobA);
    assert.ok(!bobA.inbox.some(isCarbon("sent", "s1")), "XEP-0280 §8: not to the sending resource");
    await users.stopAll();
  });

  test("<private/> and <no-copy/> messages are not copied; disable stops copies", async () => {
    const bobA = await users.login("bob", "a", 5);
    const bobB = await users.login("bob", "b", 1);
    await enableCarbons(bobA);
    await enableCarbons(bobB);
    const alice = await users.login("alice", "home", 0);

    await bobA.send(chat("alice@localhost", "p1", xml("private", { xmlns: CARBONS })));
    await bobA.send(chat("alice@localhost", "p2", xml("no-copy", { xmlns: "urn:xmpp:hints" })));
    await alice.send(chat("bob@localhost", "p3", xml("private", { xmlns: CARBONS })));
    await alice.nextStanza((s) => s.attrs.id === "p2");
    await bobA.nextStanza((s) => s.attrs.id === "p3");
    // Control: an ordinary one is copied, so by the time it arrives the others would have.
    await alice.send(chat("bob@localhost", "p4"));
    await bobB.nextStanza(isCarbon("received", "p4"));
    await sync(bobB);
    for (const id of ["p1", "p2", "p3"]) {
      assert.ok(!bobB.inbox.some((s) => isCarbon("sent", id)(s) || isCarbon("received", id)(s)), id);
    }

    await bobB.iqCaller.request(xml("iq", { type: "set" }, xml("disable", { xmlns: CARBONS })));
    await alice.send(chat("bob@localhost", "p5"));
    await bobA.nextStanza((s) => s.attrs.id === "p5");
    await sync(bobB);
    assert.ok(!bobB.inbox.some(isCarbon("received", "p5")), "disabled: no copy");
    await users.stopAll();
  });

  test("a copy handed back by an ended session is dropped, not delivered elsewhere or stored", async () => {
    const bobA = await users.login("bob", "a", 0); // carbons not enabled
    // What XEP-0198 hands back when bob/gone ended with this copy unacknowledged.
    const copy = xml(
      "message",
      { from: "bob@localhost", to: "bob@localhost/gone", type: "chat", id: "c1" },
      xml(
        "received",
        { xmlns: CARBONS },
        xml(
          "forwarded",
          { xmlns: FORWARD },
          xml(
            "message",
            { xmlns: "jabber:client", from: "alice@localhost/x", type: "chat" },
            xml("body", {}, "hi"),
          ),
        ),
      ),
    );
    await broker.router.route(copy);
    await sync(bobA);
    assert.ok(!bobA.inbox.some((s) => s.attrs.id === "c1"));
    const [row] = await broker.storage.db<{ n: number }[]>`
      select count(*)::int as n from offline_messages where username = 'bob'`;
    assert.equal(row!.n, 0);
    await users.stopAll();
  });
});

for (const engine of ["embedded", "postgres"] as const) {
  describe(`blocking command (${engine} engine)`, () => {
    let broker: TestBroker;
    const users = new Users(() => broker);

    before(async () => {
      broker = await startTestBroker({ engine });
      for (const name of ["alice", "bob", "carol", "dave"]) await broker.addUser(name, `${name}-pw`);
    });
    after(async () => {
      await users.stopAll();
      await broker.stop();
    });

    const blocklist = async (client: TestClient) => {
      const result = await client.iqCaller.get(xml("blocklist", { xmlns: BLOCKING }));
      return result?.getChildren("item").map((i) => i.attrs.jid) ?? [];
    };
    const setBlock = (client: TestClient, name: "block" | "unblock", ...jids: string[]) =>
      client.iqCaller.set(xml(name, { xmlns: BLOCKING }, ...jids.map((jid) => xml("item", { jid }))));

    test("a blocked JID's stanzas are refused as XEP-0191 says and never reach the blocker", async () => {
      const bob = await users.login("bob", "desk", 0);
      const bobOther = await users.login("bob", "phone", 0);
      const bobQuiet = await users.login("bob", "watch", 0);
      assert.deepEqual(await blocklist(bob), []);
      assert.deepEqual(await blocklist(bobOther), []);
      const alice = await users.login("alice", "home", 0);

      await setBlock(bob, "block", "Alice@LocalHost");
      // §3.3: a push to every resource that retrieved the list (normalised JID), not to the others.
      for (const c of [bob, bobOther]) {
        const push = await c.nextStanza((s) => s.is("iq") && s.getChild("block", BLOCKING) !== undefined);
        assert.equal(push.attrs.type, "set");
        assert.deepEqual(
          push
            .getChild("block", BLOCKING)
            ?.getChildren("item")
            .map((i) => i.attrs.jid),
          ["alice@localhost"],
        );
      }
      await sync(bobQuiet);
      assert.ok(
        !bobQuiet.inbox.some((s) => s.getChild("block", BLOCKING)),
        "no push without a blocklist get",
      );
      assert.deepEqual(await blocklist(bobQuiet), ["alice@localhost"]);

      // Inbound message: service-unavailable, as for an unavailable user (§3.3).
      await alice.send(chat("bob@localhost", "b1"));
      const refused = await alice.nextStanza((s) => s.attrs.id === "b1");
      assert.equal(refused.attrs.type, "error");
      assert.ok(refused.getChild("error")?.getChild("service-unavailable"));
      // Inbound iq get: service-unavailable. Inbound presence: nothing at all.
      await assert.rejects(
        alice.iqCaller.get(xml("ping", { xmlns: "urn:xmpp:ping" }), "bob@localhost/desk"),
        (err) => stanzaError(err) === "service-unavailable",
      );
      await alice.send(xml("presence", { to: "bob@localhost/desk", id: "pres1" }));
      await sync(alice);
      assert.ok(!alice.inbox.some((s) => s.attrs.id === "pres1"), "no answer to blocked presence");

      // Outbound: not-acceptable with <blocked xmlns='urn:xmpp:blocking:errors'/> (§3.3).
      await bob.send(chat("alice@localhost/home", "b2"));
      const blocked = await bob.nextStanza((s) => s.attrs.id === "b2");
      const error = blocked.getChild("error");
      assert.ok(error?.getChild("not-acceptable"), blocked.toString());
      assert.ok(error?.getChild("blocked", "urn:xmpp:blocking:errors"));
      assert.equal(error?.attrs.type, "cancel");

      for (const c of [bob, bobOther, bobQuiet, alice]) await sync(c);
      for (const c of [bob, bobOther, bobQuiet]) {
        assert.ok(
          !c.inbox.some((s) => s.attrs.id === "b1" || s.attrs.id === "pres1"),
          "the blocker sees nothing",
        );
      }
      assert.ok(!alice.inbox.some((s) => s.attrs.id === "b2"));

      // Unblock restores delivery both ways.
      await setBlock(bob, "unblock", "alice@localhost");
      const unpush = await bobOther.nextStanza(
        (s) => s.is("iq") && s.getChild("unblock", BLOCKING) !== undefined,
      );
      assert.equal(
        unpush.getChild("unblock", BLOCKING)?.getChildren("item")[0]?.attrs.jid,
        "alice@localhost",
      );
      await alice.send(chat("bob@localhost/desk", "b3"));
      await bob.nextStanza((s) => s.attrs.id === "b3");
      await bob.send(chat("alice@localhost/home", "b4"));
      await alice.nextStanza((s) => s.attrs.id === "b4");
      await users.stopAll();
    });

    test("the block lasts across sessions: no offline storage for a blocked sender, list persisted", async () => {
      const carol = await users.login("carol", "one");
      await setBlock(carol, "block", "alice@localhost", "dave@localhost/spam", "evil.example");
      await carol.stop();

      const alice = await users.login("alice", "home", 0);
      await alice.send(chat("carol@localhost", "o1"));
      const refused = await alice.nextStanza((s) => s.attrs.id === "o1");
      assert.ok(refused.getChild("error")?.getChild("service-unavailable"));
      const [row] = await broker.storage.db<{ n: number }[]>`
        select count(*)::int as n from offline_messages where username = 'carol'`;
      assert.equal(row!.n, 0, "a blocked sender's message is not stored offline");

      // Full-JID items block only that resource (§6).
      const daveSpam = await users.login("dave", "spam", 0);
      const daveOk = await users.login("dave", "ok", 0);
      await daveSpam.send(chat("carol@localhost", "o2"));
      await daveSpam.nextStanza((s) => s.attrs.id === "o2" && s.attrs.type === "error");
      await daveOk.send(chat("carol@localhost", "o3"));
      await sync(daveOk);

      const again = await users.login("carol", "two");
      assert.deepEqual((await blocklist(again)).sort(), [
        "alice@localhost",
        "dave@localhost/spam",
        "evil.example",
      ]);
      await again.send(xml("presence"));
      const delivered = await again.nextStanza((s) => s.attrs.id === "o3");
      assert.equal(delivered.attrs.from, "dave@localhost/ok");
      await sync(again);
      assert.ok(!again.inbox.some((s) => s.attrs.id === "o1" || s.attrs.id === "o2"));

      // Unblock all (§3.5): an empty <unblock/>.
      await setBlock(again, "unblock");
      assert.deepEqual(await blocklist(again), []);
      await alice.send(chat("carol@localhost", "o4"));
      await again.nextStanza((s) => s.attrs.id === "o4");
      await users.stopAll();
    });

    test("messages stored before a block are not delivered after it; bad requests are refused", async () => {
      const alice = await users.login("alice", "home", 0);
      await alice.send(chat("dave@localhost", "x1"));
      await alice.send(chat("dave@localhost", "x2"));
      await sync(alice);
      const dave = await users.login("dave", "late"); // bound, not yet available
      await setBlock(dave, "block", "alice@localhost");
      await assert.rejects(setBlock(dave, "block"), (err) => stanzaError(err) === "bad-request");
      await assert.rejects(setBlock(dave, "block", "a@b@c"), (err) => stanzaError(err) === "jid-malformed");
      await dave.send(xml("presence"));
      await sync(dave);
      await new Promise((r) => setTimeout(r, 200));
      assert.ok(!dave.inbox.some((s) => s.attrs.id === "x1" || s.attrs.id === "x2"));
      const [row] = await broker.storage.db<{ n: number }[]>`
        select count(*)::int as n from offline_messages where username = 'dave'`;
      assert.equal(row!.n, 0, "dropped from storage, not kept for ever");
      await setBlock(dave, "unblock");
      await users.stopAll();
    });

    test("blocking a subscriber sends it unavailable presence; unblocking sends current presence", async () => {
      const bob = await users.login("bob", "desk", 0);
      const alice = await users.login("alice", "home", 0);
      // alice subscribes to bob's presence and bob approves (RFC 6121 §3.1).
      await alice.send(xml("presence", { to: "bob@localhost", type: "subscribe" }));
      await bob.nextStanza((s) => s.is("presence") && s.attrs.type === "subscribe");
      await bob.send(xml("presence", { to: "alice@localhost", type: "subscribed" }));
      await alice.nextStanza((s) => s.is("presence") && s.attrs.type === "subscribed");
      await bob.send(xml("presence", {}, xml("status", {}, "at my desk")));
      await alice.nextStanza((s) => s.is("presence") && s.getChildText("status") === "at my desk");
      await sync(alice);
      alice.inbox.length = 0;

      await setBlock(bob, "block", "alice@localhost");
      const gone = await alice.nextStanza((s) => s.is("presence") && s.attrs.from === "bob@localhost/desk");
      assert.equal(gone.attrs.type, "unavailable", "XEP-0191 §3.3: the contact sees the user go offline");
      // While blocked, bob's broadcasts do not reach alice.
      await bob.send(xml("presence", {}, xml("status", {}, "still here")));
      await sync(bob);
      await sync(alice);
      assert.ok(!alice.inbox.some((s) => s.is("presence") && s.getChildText("status") === "still here"));

      await setBlock(bob, "unblock", "alice@localhost");
      const back = await alice.nextStanza((s) => s.is("presence") && s.attrs.from === "bob@localhost/desk");
      assert.equal(back.attrs.type, undefined, "XEP-0191 §3.4: current presence again");
      assert.equal(back.getChildText("status"), "still here");
      await users.stopAll();
    });
  });
}
