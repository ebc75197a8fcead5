/**
 * Client connections through an independent client (@xmpp/client): STARTTLS and direct TLS, every
 * SASL mechanism we offer, binding, and conversations between two clients.
 * References: RFC 6120 §5, §6, §7; XEP-0368.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { startTestBroker, type TestBroker } from "../server/testing/broker.ts";
import { RawStream } from "./support/raw-stream.ts";
import { type ClientMechanismName, connectClient, type TestClient, xml } from "./support/xmpp-client.ts";

describe("client connections", () => {
  let broker: TestBroker;
  const clients: TestClient[] = [];

  before(async () => {
    broker = await startTestBroker();
    await broker.addUser("alice", "alice-secret");
    await broker.addUser("bob", "bob-secret");
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.stop().catch(() => {})));
    await broker.stop();
  });

  async function login(
    username: string,
    opts: { mechanism?: ClientMechanismName; direct?: boolean; resource?: string; password?: string } = {},
  ): Promise<TestClient> {
    const client = await connectClient({
      service: opts.direct
        ? `xmpps://127.0.0.1:${broker.ports.c2sTls}`
        : `xmpp://127.0.0.1:${broker.ports.c2s}`,
      domain: "localhost",
      username,
      password: opts.password ?? `${username}-secret`,
      ca: broker.certificatePem,
      ...(opts.mechanism ? { mechanism: opts.mechanism } : {}),
      ...(opts.resource ? { resource: opts.resource } : {}),
    });
    clients.push(client);
    return client;
  }

  for (const mechanism of [
    "SCRAM-SHA-1",
    "SCRAM-SHA-256",
    "SCRAM-SHA-1-PLUS",
    "SCRAM-SHA-256-PLUS",
    "PLAIN",
  ] as const) {
    for (const direct of [false, true]) {
      test(`${mechanism} over ${direct ? "direct TLS" : "STARTTLS"}`, async () => {
        const client = await login("alice", { mechanism, direct });
        assert.equal(client.sasl.chosen, mechanism);
        if (mechanism.startsWith("SCRAM")) assert.equal(client.sasl.serverFinalVerified, true);
        assert.equal(client.jid?.bare().toString(), "alice@localhost");
        assert.ok(client.tlsSocket()?.encrypted, "the stream is encrypted");
        await client.stop();
      });
    }
  }

  test("the best mechanism offered is SCRAM-SHA-256-PLUS with tls-exporter", async () => {
    const client = await login("alice");
    assert.deepEqual(client.sasl.offered.slice(0, 4), [
      "SCRAM-SHA-256-PLUS",
      "SCRAM-SHA-1-PLUS",
      "SCRAM-SHA-256",
      "SCRAM-SHA-1",
    ]);
    assert.equal(client.sasl.chosen, "SCRAM-SHA-256-PLUS");
    await client.stop();
  });

  test("a wrong password gets not-authorized, for SCRAM and PLAIN alike", async () => {
    for (const mechanism of ["SCRAM-SHA-256", "PLAIN"] as const) {
      await assert.rejects(
        login("alice", { mechanism, password: "wrong" }),
        (err: { condition?: string }) => {
          assert.equal(err.condition, "not-authorized");
          return true;
        },
      );
    }
  });

  test("an unknown user gets the same not-authorized as a wrong password", async () => {
    await assert.rejects(login("mallory", { password: "whatever" }), (err: { condition?: string }) => {
      assert.equal(err.condition, "not-authorized");
      return true;
    });
  });

  test("usernames are case-insensitive (RFC 7622 §3.3 case mapping)", async () => {
    const client = await login("ALICE", { password: "alice-secret" });
    assert.equal(client.jid?.bare().toString(), "alice@localhost");
    await client.stop();
  });

  test("the server makes up a resource when the client asks for none, and honours a requested one", async () => {
    const generated = await login("alice");
    assert.ok(generated.jid?.resource, "a resource was assigned");
    const named = await login("alice", { resource: "kitchen-sensor" });
    assert.equal(named.jid?.resource, "kitchen-sensor");
    await Promise.all([generated.stop(), named.stop()]);
  });

  test("a second login with the same resource replaces the first with <conflict/>", async () => {
    const first = await login("alice", { resource: "phone" });
    const closed = new Promise<void>((resolve) => first.once("disconnect", () => resolve()));
    const second = await login("alice", { resource: "phone" });
    await closed;
    assert.ok(
      first.errors.some((e) => (e as { condition?: string }).condition === "conflict"),
      `first session got conflict: ${first.errors.map((e) => e.message).join(", ")}`,
    );
    // The new session is the one that receives stanzas.
    const bob = await login("bob");
    await bob.send(
      xml("message", { to: "alice@localhost/phone", type: "chat" }, xml("body", {}, "who is there?")),
    );
    const got = await second.nextStanza((s) => s.is("message"));
    assert.equal(got.getChildText("body"), "who is there?");
    await Promise.all([second.stop(), bob.stop()]);
  });

  test("two clients exchange messages and iqs; from is stamped with the sender's full JID", async () => {
    const alice = await login("alice", { direct: true, resource: "laptop" });
    const bob = await login("bob");
    await alice.send(xml("presence"));
    await bob.send(xml("presence"));
    await bob.send(
      xml("message", { to: "alice@localhost", type: "chat", id: "m1" }, xml("body", {}, "hello")),
    );
    const message = await alice.nextStanza((s) => s.is("message"));
    assert.equal(message.attrs.from, bob.jid?.toString());
    assert.equal(message.getChildText("body"), "hello");

    // An iq to a full JID reaches that client, and its answer comes back.
    alice.iqCallee.get("urn:example:echo", "echo", () => xml("echo", { xmlns: "urn:example:echo" }, "pong"));
    const reply = await bob.iqCaller.request(
      xml("iq", { type: "get", to: alice.jid!.toString() }, xml("echo", { xmlns: "urn:example:echo" })),
    );
    assert.equal(reply.attrs.from, alice.jid?.toString());
    assert.equal(reply.getChildText("echo", "urn:example:echo"), "pong");
    await Promise.all([alice.stop(), bob.stop()]);
  });

  test("an old client's <session/> request gets an empty result (RFC 3921 §3)", async () => {
    const client = await login("bob");
    const result = await client.iqCaller.request(
      xml("iq", { type: "set" }, xml("session", { xmlns: "urn:ietf:params:xml:ns:xmpp-session" })),
    );
    assert.equal(result.attrs.type, "result");
    await client.stop();
  });

  test("after authentication the features offer bind, session, stream management and module features", async () => {
    const raw = await RawStream.login({
      port: broker.ports.c2s!,
      ca: broker.certificatePem,
      username: "bob",
      password: "bob-secret",
      bind: false,
    });
    try {
      const features = raw.text.slice(raw.text.lastIndexOf("<stream:features"));
      for (const ns of [
        "urn:ietf:params:xml:ns:xmpp-bind",
        "urn:ietf:params:xml:ns:xmpp-session",
        "urn:xmpp:sm:3",
        "urn:xmpp:features:rosterver",
        "urn:xmpp:features:pre-approval",
      ]) {
        assert.match(features, new RegExp(`xmlns=["']${ns}["']`), `feature ${ns}`);
      }
    } finally {
      raw.destroy();
    }
  });
});
