/**
 * What the server answers and how it routes, seen from real clients: server iqs (ping, disco,
 * version, time), unknown iqs, and the RFC 6121 §8.5 rules for bare and full JIDs.
 * References: RFC 6120 §8.4, §10; RFC 6121 §8.5; XEP-0030; XEP-0092; XEP-0199; XEP-0202.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { modules } from "../modules.ts";
import type { Module } from "../server/modules/module.ts";
import { startTestBroker, type TestBroker } from "../server/testing/broker.ts";
import { type Element, loginTo, type TestClient, xml } from "./support/xmpp-client.ts";

const DISCO_INFO = "http://jabber.org/protocol/disco#info";
const DISCO_ITEMS = "http://jabber.org/protocol/disco#items";

/** A component like the thing registry will be: listed in disco#items, answering its own iqs. */
const exampleComponent: Module = {
  name: "example-component",
  depends: ["disco"],
  start(api) {
    const registry = api.component("registry", "Thing registry");
    registry.identity("component", "generic", "Thing registry");
    registry.feature("urn:xmpp:iot:discovery");
  },
};

/** An iq get whose result must carry a payload. */
async function query(client: TestClient, payload: Element, to: string): Promise<Element> {
  const result = await client.iqCaller.get(payload, to);
  assert.ok(result, `a payload in the result from ${to}`);
  return result;
}

function stanzaError(err: unknown): string | undefined {
  return (err as { condition?: string }).condition;
}

describe("routing and server answers", () => {
  let broker: TestBroker;
  const clients: TestClient[] = [];

  before(async () => {
    // Without offline storage, so the RFC 6121 default answers are what is tested here
    // (test/offline.test.ts covers storage).
    broker = await startTestBroker({
      // The real registry (thing-registry) would take the example component's address;
      // provisioning needs both the registry and offline storage, and would add a component.
      modules: [
        ...modules.filter((m) => !["offline", "thing-registry", "provisioning"].includes(m.name)),
        exampleComponent,
      ],
    });
    for (const name of ["alice", "bob", "carol"]) await broker.addUser(name, `${name}-pw`);
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.stop().catch(() => {})));
    await broker.stop();
  });

  async function login(username: string, resource?: string, presence?: Element): Promise<TestClient> {
    const client = await loginTo(broker, username, `${username}-pw`, resource ? { resource } : {});
    clients.push(client);
    if (presence) {
      await client.send(presence);
      // A ping round trip guarantees the presence was processed before the test goes on.
      await client.iqCaller.request(
        xml("iq", { type: "get", to: "localhost" }, xml("ping", { xmlns: "urn:xmpp:ping" })),
      );
    }
    return client;
  }

  const available = (priority?: number) =>
    xml("presence", {}, ...(priority === undefined ? [] : [xml("priority", {}, String(priority))]));

  test("ping, version and time are answered by the server", async () => {
    const alice = await login("alice");
    const pong = await alice.iqCaller.request(
      xml("iq", { type: "get", to: "localhost" }, xml("ping", { xmlns: "urn:xmpp:ping" })),
    );
    assert.equal(pong.attrs.type, "result");
    assert.equal(pong.attrs.from, "localhost");

    // A ping without 'to' is answered on behalf of the account (RFC 6120 §10.3.3).
    const self = await alice.iqCaller.request(
      xml("iq", { type: "get" }, xml("ping", { xmlns: "urn:xmpp:ping" })),
    );
    assert.equal(self.attrs.type, "result");

    const version = await query(alice, xml("query", { xmlns: "jabber:iq:version" }), "localhost");
    assert.equal(version.getChildText("name"), "Hanse");
    assert.match(version.getChildText("version") ?? "", /^\d+\.\d+\.\d+/);
    assert.equal(version.getChild("os"), undefined, "the OS is not revealed by default (XEP-0092 §5)");

    const time = await query(alice, xml("time", { xmlns: "urn:xmpp:time" }), "localhost");
    const utc = Date.parse(time.getChildText("utc") ?? "");
    assert.ok(Math.abs(utc - Date.now()) < 60_000, "utc is now");
    assert.match(time.getChildText("tzo") ?? "", /^[+-]\d\d:\d\d$/);
    await alice.stop();
  });

  test("disco#info lists the server identity and the features of loaded modules", async () => {
    const alice = await login("alice");
    const info = await query(alice, xml("query", { xmlns: DISCO_INFO }), "localhost");
    const identity = info.getChild("identity");
    assert.deepEqual({ ...identity?.attrs }, { category: "server", type: "im", name: "Hanse" });
    const features = info.getChildren("feature").map((f) => f.attrs.var);
    for (const ns of [DISCO_INFO, DISCO_ITEMS, "urn:xmpp:ping", "jabber:iq:version", "urn:xmpp:time"]) {
      assert.ok(features.includes(ns), `feature ${ns}`);
    }
    await assert.rejects(
      query(alice, xml("query", { xmlns: DISCO_INFO, node: "nope" }), "localhost"),
      (err) => stanzaError(err) === "item-not-found",
    );
    await alice.stop();
  });

  test("components are listed in disco#items and answer disco#info and ping themselves", async () => {
    const alice = await login("alice");
    const items = await query(alice, xml("query", { xmlns: DISCO_ITEMS }), "localhost");
    assert.deepEqual(
      items.getChildren("item").map((i) => ({ ...i.attrs })),
      [{ jid: "registry.localhost", name: "Thing registry" }],
    );
    const info = await query(alice, xml("query", { xmlns: DISCO_INFO }), "registry.localhost");
    const features = info.getChildren("feature").map((f) => f.attrs.var);
    assert.ok(features.includes("urn:xmpp:iot:discovery"));
    assert.equal(info.getChild("identity")?.attrs.name, "Thing registry");
    const pong = await alice.iqCaller.request(
      xml("iq", { type: "get", to: "registry.localhost" }, xml("ping", { xmlns: "urn:xmpp:ping" })),
    );
    assert.equal(pong.attrs.from, "registry.localhost");
    await alice.stop();
  });

  test("an iq nobody understands gets service-unavailable, from the server and from a component", async () => {
    const alice = await login("alice");
    for (const to of ["localhost", "registry.localhost", undefined]) {
      await assert.rejects(
        alice.iqCaller.request(
          xml("iq", { type: "get", ...(to ? { to } : {}) }, xml("query", { xmlns: "urn:example:nothing" })),
        ),
        (err) => stanzaError(err) === "service-unavailable",
      );
    }
    await alice.stop();
  });

  test("RFC 6121 §8.5.1: unknown accounts give service-unavailable for message and iq, nothing for presence", async () => {
    const alice = await login("alice");
    await assert.rejects(
      alice.iqCaller.request(
        xml("iq", { type: "get", to: "nobody@localhost/x" }, xml("ping", { xmlns: "urn:xmpp:ping" })),
      ),
      (err) => stanzaError(err) === "service-unavailable",
    );
    await alice.send(xml("presence", { to: "nobody@localhost" }));
    await alice.send(
      xml("message", { to: "nobody@localhost", id: "u1", type: "chat" }, xml("body", {}, "hi")),
    );
    const error = await alice.nextStanza((s) => s.is("message") && s.attrs.id === "u1");
    assert.equal(error.attrs.type, "error");
    assert.equal(error.attrs.from, "nobody@localhost");
    assert.ok(error.getChild("error")?.getChild("service-unavailable"));
    assert.equal(error.getChild("body"), undefined, "the body is not echoed back");
    // Presence to an unknown account produced no error (only the message's came back).
    assert.ok(!alice.inbox.some((s) => s.is("presence") && s.attrs.type === "error"));
    await alice.stop();
  });

  test("RFC 6121 §8.5.2: a message to a bare JID goes to the highest non-negative priority resources", async () => {
    const bobLow = await login("bob", "low", available(1));
    const bobHigh = await login("bob", "high", available(5));
    const bobNegative = await login("bob", "negative", available(-1));
    const alice = await login("alice");
    await alice.send(
      xml("message", { to: "bob@localhost", type: "chat", id: "p1" }, xml("body", {}, "to the best")),
    );
    const got = await bobHigh.nextStanza((s) => s.attrs.id === "p1");
    assert.equal(got.getChildText("body"), "to the best");

    // headline goes to every non-negative resource.
    await alice.send(
      xml("message", { to: "bob@localhost", type: "headline", id: "h1" }, xml("body", {}, "news")),
    );
    await bobHigh.nextStanza((s) => s.attrs.id === "h1");
    await bobLow.nextStanza((s) => s.attrs.id === "h1");
    // A ping round trip through each client: by then anything routed to them has arrived.
    for (const c of [bobLow, bobNegative]) {
      await c.iqCaller.request(xml("iq", { type: "get" }, xml("ping", { xmlns: "urn:xmpp:ping" })));
    }
    assert.ok(!bobLow.inbox.some((s) => s.attrs.id === "p1"), "lower priority got no chat message");
    assert.ok(
      !bobNegative.inbox.some((s) => s.attrs.id === "p1" || s.attrs.id === "h1"),
      "negative priority gets nothing",
    );
    await Promise.all([bobLow.stop(), bobHigh.stop(), bobNegative.stop(), alice.stop()]);
  });

  test("RFC 6121 §8.5.3.2.1: a chat to a resource that is gone falls back to the bare JID", async () => {
    const carol = await login("carol", "desk", available(0));
    const alice = await login("alice");
    await alice.send(
      xml("message", { to: "carol@localhost/gone", type: "chat", id: "f1" }, xml("body", {}, "anyone?")),
    );
    const got = await carol.nextStanza((s) => s.attrs.id === "f1");
    assert.equal(got.attrs.to, "carol@localhost/gone");
    // groupchat to a missing resource bounces; an iq to a missing resource bounces.
    await alice.send(xml("message", { to: "carol@localhost/gone", type: "groupchat", id: "g1" }));
    const bounced = await alice.nextStanza((s) => s.attrs.id === "g1");
    assert.equal(bounced.attrs.type, "error");
    await assert.rejects(
      alice.iqCaller.request(
        xml("iq", { type: "get", to: "carol@localhost/gone" }, xml("ping", { xmlns: "urn:xmpp:ping" })),
      ),
      (err) => stanzaError(err) === "service-unavailable",
    );
    await Promise.all([carol.stop(), alice.stop()]);
  });

  test("RFC 6121 §8.5.2.2.1: with no available resource a chat bounces (offline storage is not loaded)", async () => {
    const carol = await login("carol", "invisible"); // bound but never sent presence: not available
    const alice = await login("alice");
    await alice.send(
      xml("message", { to: "carol@localhost", type: "chat", id: "o1" }, xml("body", {}, "hello?")),
    );
    const bounced = await alice.nextStanza((s) => s.attrs.id === "o1");
    assert.ok(bounced.getChild("error")?.getChild("service-unavailable"));
    await carol.iqCaller.request(xml("iq", { type: "get" }, xml("ping", { xmlns: "urn:xmpp:ping" })));
    assert.ok(
      !carol.inbox.some((s) => s.attrs.id === "o1"),
      "an unavailable resource gets no bare-JID message",
    );
    await Promise.all([carol.stop(), alice.stop()]);
  });

  test("directed presence reaches a full JID; availability to a bare JID reaches every available resource", async () => {
    const bobA = await login("bob", "a", available(0));
    const bobB = await login("bob", "b", available(0));
    const alice = await login("alice");
    await alice.send(xml("presence", { to: "bob@localhost/a", id: "d1" }));
    await bobA.nextStanza((s) => s.is("presence") && s.attrs.id === "d1");
    await alice.send(xml("presence", { to: "bob@localhost", id: "d2" }));
    await bobA.nextStanza((s) => s.attrs.id === "d2");
    await bobB.nextStanza((s) => s.attrs.id === "d2");
    await Promise.all([bobA.stop(), bobB.stop(), alice.stop()]);
  });

  test("a malformed 'to' gets jid-malformed", async () => {
    const alice = await login("alice");
    await assert.rejects(
      alice.iqCaller.request(
        xml("iq", { type: "get", to: "a@b@c d" }, xml("ping", { xmlns: "urn:xmpp:ping" })),
      ),
      (err) => stanzaError(err) === "jid-malformed",
    );
    await alice.stop();
  });

  test("a domain the server does not serve gets remote-server-not-found (no federation configured)", async () => {
    const alice = await login("alice");
    await assert.rejects(
      alice.iqCaller.request(
        xml("iq", { type: "get", to: "elsewhere.example" }, xml("ping", { xmlns: "urn:xmpp:ping" })),
      ),
      (err) => stanzaError(err) === "remote-server-not-found",
    );
    await alice.stop();
  });

  test("disco#info on one's own account says account/registered; another's is not revealed", async () => {
    const alice = await login("alice");
    const own = await query(alice, xml("query", { xmlns: DISCO_INFO }), "alice@localhost");
    assert.deepEqual({ ...own.getChild("identity")?.attrs }, { category: "account", type: "registered" });
    await assert.rejects(
      query(alice, xml("query", { xmlns: DISCO_INFO }), "bob@localhost"),
      (err) => stanzaError(err) === "service-unavailable",
    );
    await alice.stop();
  });
});
