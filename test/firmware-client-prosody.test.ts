/**
 * The device-side XMPP client (firmware/xmpp) against a real Prosody (Debian's, started on a
 * loopback address of its own by test/interop/peers/prosody.sh): the device must work with any
 * XMPP server, not only Hanse. Login, requests, answering an independent client, XEP-0198
 * resumption after a network cut (Prosody's mod_smacks), and in-band registration.
 * A missing Prosody fails with the command that installs it: a quietly skipped interop test
 * would prove nothing.
 * References: RFC 6120 §5-§8, XEP-0077 §3.1, XEP-0198 §6, XEP-0199.
 */
import assert from "node:assert/strict";
import { after, before, describe, type TestContext, test } from "node:test";
import { Element } from "ltx";
import { XmppClient, type XmppClientOptions } from "../firmware/xmpp/client.ts";
import { registerAccount } from "../firmware/xmpp/register.ts";
import { startTcpRelay } from "../firmware/xmpp/testing.ts";
import { createPeer, type Peer, peerInstalled } from "./interop/support/peers.ts";
import { connectClient, type TestClient, xml } from "./support/xmpp-client.ts";

// An address of this file's own, so federation tests using 127.0.2.x can run at the same time.
const DOMAIN = "fw-prosody.test";
const IP = "127.0.3.2";
const NS_THING = "urn:example:thing";

describe("firmware XMPP client against Prosody", () => {
  let peer: Peer;
  const devices: XmppClient[] = [];
  const others: TestClient[] = [];

  before(async () => {
    if (!peerInstalled("prosody"))
      throw new Error("prosody is not installed: apt-get install prosody lua-unbound");
    peer = createPeer({ kind: "prosody", domain: DOMAIN, ip: IP, hosts: { [DOMAIN]: IP } });
    await peer.start();
    for (const name of ["device", "friend"]) await peer.register(name, `${name}-pw`);
  });
  after(async () => {
    await Promise.all(devices.map((d) => d.stop().catch(() => {})));
    await Promise.all(others.map((c) => c.stop().catch(() => {})));
    await peer?.stop();
    peer?.remove();
  });

  function device(opts: Partial<XmppClientOptions> = {}): XmppClient {
    const client = new XmppClient({
      domain: DOMAIN,
      host: IP,
      port: 5222,
      ca: peer.certificate(),
      username: "device",
      password: "device-pw",
      resource: "thing",
      reconnect: { initialDelayMs: 50, maxDelayMs: 400 },
      requestTimeoutMs: 5000,
      ...opts,
    });
    devices.push(client);
    return client;
  }

  /** Runs `fn`, adding Prosody's log to a failure. */
  const withLog = (fn: (t: TestContext) => Promise<void>) => async (t: TestContext) => {
    try {
      await fn(t);
    } catch (err) {
      (err as Error).message += `\n--- prosody log ---\n${peer.logTail()}`;
      throw err;
    }
  };

  test(
    "logs in, asks the server, and answers a friend's request",
    withLog(async (t) => {
      const d = device();
      d.onIq("get", NS_THING, "query", () =>
        new Element("query", { xmlns: NS_THING }).c("value").t("42").root(),
      );
      await d.start();
      assert.equal(d.jid, `device@${DOMAIN}/thing`);
      assert.match(d.mechanism ?? "", /^SCRAM-SHA-(1|256)/);
      t.diagnostic(`Prosody login: ${d.mechanism}`);
      assert.equal(d.streamManagement, true, "Prosody's mod_smacks is on");
      const pong = await d.request(
        xml("iq", { type: "get", to: DOMAIN }, xml("ping", { xmlns: "urn:xmpp:ping" })),
      );
      assert.equal(pong.attrs.type, "result");
      const version = await d.request(
        xml("iq", { type: "get", to: DOMAIN }, xml("query", { xmlns: "jabber:iq:version" })),
      );
      assert.equal(version.getChild("query")?.getChildText("name"), "Prosody");

      const friend = await connectClient({
        service: peer.service,
        domain: DOMAIN,
        username: "friend",
        password: "friend-pw",
        ca: peer.certificate(),
        mechanism: "SCRAM-SHA-1",
      });
      others.push(friend);
      const answer = await friend.iqCaller.request(
        xml("iq", { type: "get", to: d.jid }, xml("query", { xmlns: NS_THING })),
      );
      assert.equal(answer.getChild("query", NS_THING)?.getChildText("value"), "42");
      const err = await d
        .request(
          xml("iq", { type: "get", to: `friend@${DOMAIN}/nowhere` }, xml("query", { xmlns: NS_THING })),
        )
        .catch((e: { condition?: string }) => e);
      assert.equal((err as { condition?: string }).condition, "service-unavailable");
      await d.stop();
    }),
  );

  test(
    "resumes its session with Prosody after a network cut",
    withLog(async () => {
      const relay = await startTcpRelay({ host: IP, port: 5222 });
      try {
        const d = device({ port: relay.port, host: "127.0.0.1", resource: "roaming" });
        await d.start();
        const back = new Promise<{ resumed: boolean }>((resolve) => d.once("online", resolve));
        relay.cut();
        assert.deepEqual(await back, { resumed: true });
        const pong = await d.request(
          xml("iq", { type: "get", to: DOMAIN }, xml("ping", { xmlns: "urn:xmpp:ping" })),
        );
        assert.equal(pong.attrs.type, "result");
        await d.stop();
      } finally {
        await relay.close();
      }
    }),
  );

  test(
    "registers an account in band (XEP-0077) and logs in with it",
    withLog(async () => {
      const opts = { domain: DOMAIN, host: IP, port: 5222, ca: peer.certificate() };
      await registerAccount(opts, (query) => {
        assert.ok(query.getChild("username") && query.getChild("password"), "Prosody asks for both");
        return xml(
          "query",
          { xmlns: "jabber:iq:register" },
          xml("username", {}, "newbie"),
          xml("password", {}, "newbie-pw"),
        );
      });
      const d = device({ username: "newbie", password: "newbie-pw" });
      await d.start();
      assert.equal(d.jid, `newbie@${DOMAIN}/thing`);
      await d.stop();
    }),
  );
});
