/**
 * The device-side XMPP client (firmware/xmpp) when the server goes away for real: a full broker
 * restart (no resumption possible: the device binds the same full JID again and delivers what it
 * queued meanwhile), and a server that does not offer resumption (stanzas written but never
 * acknowledged are sent again on the new session).
 * References: XEP-0198 §4 (resume not granted), §6 (failed resumption: resend), RFC 6120 §7.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { pause } from "../extensions/roster/testing.ts";
import { XmppClient } from "../firmware/xmpp/client.ts";
import { startTcpRelay } from "../firmware/xmpp/testing.ts";
import { startTestBroker } from "../server/testing/broker.ts";
import { onceOnline } from "./firmware-support.ts";
import { loginTo, xml } from "./support/xmpp-client.ts";

describe("firmware XMPP client across a broker restart", () => {
  test("comes back after a full restart with a new session and delivers what it queued", async () => {
    let broker = await startTestBroker({ config: { c2s: { resume_timeout: 30 } } });
    await broker.addUser("thing", "thing-pw");
    await broker.addUser("bob", "bob-pw");
    const storage = { data_dir: broker.config.data_dir, database: broker.config.database };
    const ports = { port: broker.ports.c2s!, tls_port: broker.ports.c2sTls! };
    const d = new XmppClient({
      domain: "localhost",
      host: "127.0.0.1",
      port: ports.port,
      ca: broker.certificatePem,
      username: "thing",
      password: "thing-pw",
      reconnect: { initialDelayMs: 100, maxDelayMs: 500 },
    });
    try {
      await d.start();
      const firstJid = d.jid;
      const offline = new Promise((resolve) => d.once("offline", resolve));
      await broker.stop();
      await offline;
      d.send(xml("message", { to: "bob@localhost", type: "chat" }, xml("body", {}, "while you were down")));
      const back = onceOnline(d);
      broker = await startTestBroker({ reuse: storage, config: { c2s: { ...ports, resume_timeout: 30 } } });
      assert.deepEqual(await back, { resumed: false }, "a new process cannot resume: the device binds again");
      assert.equal(d.jid, firstJid, "the device asked for the resource it had: same full JID");
      const b = await loginTo(broker, "bob", "bob-pw");
      try {
        await b.send(xml("presence"));
        // Stored offline while bob was away, or delivered live: either way it arrives.
        await b.nextStanza(
          (s) => s.is("message") && s.getChildText("body") === "while you were down",
          10_000,
        );
      } finally {
        await b.stop().catch(() => {});
      }
    } finally {
      await d.stop();
      await broker.stop();
    }
  });
});

describe("firmware XMPP client when the server cannot resume", () => {
  test("unacknowledged stanzas are sent again on the new session", async (t) => {
    const broker = await startTestBroker({ config: { c2s: { resume_timeout: 0 } } });
    t.after(() => broker.stop());
    await broker.addUser("thing", "thing-pw");
    await broker.addUser("bob", "bob-pw");
    const relay = await startTcpRelay({ port: broker.ports.c2s! });
    t.after(() => relay.close());
    const d = new XmppClient({
      domain: "localhost",
      host: "127.0.0.1",
      port: relay.port,
      ca: broker.certificatePem,
      username: "thing",
      password: "thing-pw",
      reconnect: { initialDelayMs: 50, maxDelayMs: 200 },
    });
    t.after(() => d.stop());
    const b = await loginTo(broker, "bob", "bob-pw");
    t.after(() => b.stop().catch(() => {}));
    await b.send(xml("presence"));
    await d.start();
    assert.equal(d.streamManagement, true);
    // The message is written into a connection that silently stopped carrying data, then the
    // connection dies: the server never got it and cannot resume the session.
    relay.freeze();
    d.send(xml("message", { to: "bob@localhost", type: "chat" }, xml("body", {}, "lost in transit?")));
    await pause(100);
    const back = onceOnline(d);
    relay.cut();
    assert.deepEqual(await back, { resumed: false });
    await b.nextStanza((s) => s.is("message") && s.getChildText("body") === "lost in transit?", 5000);
  });
});
