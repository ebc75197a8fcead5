/**
 * Idle connections: a quiet client that still answers is kept, a dead one is found and closed.
 * References: RFC 6120 §4.6.1 (whitespace keepalives), §4.9.3.5 (connection-timeout); XEP-0199 §4.1.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { startTestBroker, type TestBroker } from "../server/testing/broker.ts";
import { RawStream } from "./support/raw-stream.ts";
import { connectClient, xml } from "./support/xmpp-client.ts";

describe("idle connections (idle_timeout = 1 s)", () => {
  let broker: TestBroker;
  before(async () => {
    broker = await startTestBroker({ config: { c2s: { idle_timeout: 1 } } });
    await broker.addUser("sleepy", "sleepy-pw");
  });
  after(() => broker.stop());

  test("a quiet client that answers the server's ping stays connected", async () => {
    const client = await connectClient({
      service: `xmpp://127.0.0.1:${broker.ports.c2s}`,
      domain: "localhost",
      username: "sleepy",
      password: "sleepy-pw",
      ca: broker.certificatePem,
    });
    // The server's ping arrives after a second of silence; @xmpp/client answers it.
    const ping = await client.nextStanza(
      (s) => s.is("iq") && s.getChild("ping", "urn:xmpp:ping") !== undefined,
      5000,
    );
    assert.equal(ping.attrs.from, "localhost");
    assert.equal(ping.attrs.type, "get");
    await new Promise((resolve) => setTimeout(resolve, 2500)); // several idle periods
    assert.equal(client.status, "online");
    const pong = await client.iqCaller.request(
      xml("iq", { type: "get", to: "localhost" }, xml("ping", { xmlns: "urn:xmpp:ping" })),
    );
    assert.equal(pong.attrs.type, "result");
    await client.stop();
  });

  test("a client that never answers is closed with connection-timeout", async () => {
    const raw = await RawStream.login({
      port: broker.ports.c2s!,
      ca: broker.certificatePem,
      username: "sleepy",
      password: "sleepy-pw",
    });
    const started = Date.now();
    await raw.waitFor(/<ping xmlns=['"]urn:xmpp:ping['"]/, 5000);
    const { condition } = await raw.streamError(5000);
    assert.equal(condition, "connection-timeout");
    await raw.waitClosed(5000);
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= 800 && elapsed < 5000, `closed ${elapsed} ms after the ping`);
  });

  test("whitespace keepalives from the client count as traffic", async () => {
    const raw = await RawStream.login({
      port: broker.ports.c2s!,
      ca: broker.certificatePem,
      username: "sleepy",
      password: "sleepy-pw",
    });
    const timer = setInterval(() => void raw.send(" "), 300);
    try {
      await new Promise((resolve) => setTimeout(resolve, 3000));
      assert.equal(raw.closed, false, "still connected");
      assert.doesNotMatch(raw.text, /urn:xmpp:ping/, "no ping was needed");
    } finally {
      clearInterval(timer);
      raw.destroy();
    }
  });
});
