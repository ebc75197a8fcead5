/**
 * An owner on another Hanse broker claims a thing over s2s: the thing registers at
 * registry.a.test, the owner on b.test sends `mine` across the federation, both are told.
 * References: XEP-0347 §3.9 (claim), §3.10 (claimed to the thing); RFC 6120 §10.4 (remote routing);
 * XEP-0220 (the brokers authenticate each other by dialback: self-signed certificates).
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { startTestBroker, type TestBroker } from "../server/testing/broker.ts";
import { type Element, loginTo, type TestClient, xml } from "./support/xmpp-client.ts";

const NS = "urn:xmpp:iot:discovery";
const HOST = "127.0.0.1";

describe("claiming a thing from another broker (over s2s)", () => {
  let a: TestBroker;
  let b: TestBroker;
  const clients: TestClient[] = [];

  before(async () => {
    const s2s = { s2s: { connect_timeout: 5, max_retry_delay: 1 } };
    a = await startTestBroker({ domain: "a.test", config: s2s });
    b = await startTestBroker({ domain: "b.test", config: s2s });
    // Static routes, no DNS: each broker (and A's registry component) reaches the other.
    for (const domain of [a.domain, `registry.${a.domain}`]) b.s2s.setRoute(domain, `${HOST}:${a.ports.s2s}`);
    a.s2s.setRoute(b.domain, `${HOST}:${b.ports.s2s}`);
    await a.addUser("t1", "t1-pw");
    await b.addUser("olga", "olga-pw");
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.stop().catch(() => {})));
    await Promise.all([a?.stop(), b?.stop()]);
  });

  async function login(broker: TestBroker, username: string): Promise<TestClient> {
    const client = await loginTo(broker, username, `${username}-pw`, { resource: "r" });
    clients.push(client);
    await client.send(xml("presence"));
    return client;
  }

  test("register on a.test, claim from b.test, claimed reaches both", async () => {
    const thing = await login(a, "t1");
    const toThing: Element[] = [];
    thing.iqCallee.set(NS, "claimed", ({ stanza }) => {
      toThing.push(stanza.getChildElements()[0]!);
      return {};
    });
    const tags = [
      xml("str", { name: "MAN", value: "acme.test" }),
      xml("str", { name: "SN", value: "fed-0001" }),
      xml("str", { name: "KEY", value: "9c41d2" }),
    ];
    await thing.iqCaller.request(
      xml("iq", { type: "set", to: "registry.a.test" }, xml("register", { xmlns: NS }, ...tags)),
    );

    const owner = await login(b, "olga");
    const result = await owner.iqCaller.request(
      xml("iq", { type: "set", to: "registry.a.test" }, xml("mine", { xmlns: NS }, ...tags)),
      30_000,
    );
    const claimed = result.getChildElements()[0];
    assert.equal(claimed?.name, "claimed");
    assert.equal(claimed?.attrs.jid, "t1@a.test");

    const deadline = Date.now() + 10_000;
    while (toThing.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.equal(toThing[0]?.attrs.jid, "olga@b.test", "the thing learns its owner on the other broker");
    assert.equal(toThing[0]?.attrs.public, "true");

    // A second federated claim of the same tags by someone else fails: the KEY is gone.
    await b.addUser("mallory", "mallory-pw");
    const mallory = await login(b, "mallory");
    await assert.rejects(
      mallory.iqCaller.request(
        xml("iq", { type: "set", to: "registry.a.test" }, xml("mine", { xmlns: NS }, ...tags)),
      ),
      (err: { condition?: string }) => err.condition === "item-not-found",
    );
  });
});
