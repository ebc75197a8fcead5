/**
 * Federation with real third-party servers: Hanse as broker.test, Prosody as peer-prosody.test,
 * ejabberd as peer-ejabberd.test, all on loopback addresses of this file (127.0.2.x). The peers
 * have self-signed certificates, so both directions authenticate with dialback (XEP-0220) over
 * STARTTLS. Each peer is started and stopped here, from a private state directory.
 * A peer whose Debian packages are missing fails with the command that installs it (.ci/run
 * installs them): an interop suite that quietly skips would prove nothing.
 * References: RFC 6120 §5 (STARTTLS), RFC 6121 §3-§4 (subscriptions, presence), XEP-0199 (ping),
 * XEP-0220 (dialback), RFC 7590.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { type LoginOptions, loginAs, presenceFrom, pushShowing } from "../../extensions/roster/testing.ts";
import { startTestBroker, type TestBroker } from "../../server/testing/broker.ts";
import { connectClient, type Element, type TestClient, xml } from "../support/xmpp-client.ts";
import { createPeer, type Peer, type PeerKind, peerInstalled } from "./support/peers.ts";

const BROKER = "broker.test";
// The peers expect broker.test on port 5269 of this address (they resolve it from PEERLAB_HOSTS).
const ADDRESSES: Record<string, string> = {
  [BROKER]: "127.0.2.1",
  "peer-prosody.test": "127.0.2.2",
  "peer-ejabberd.test": "127.0.2.3",
};
const TIMEOUT = 20_000;

const isMessage = (body: string) => (s: Element) => s.is("message") && s.getChildText("body") === body;
const ping = (to: string) => xml("iq", { type: "get", to }, xml("ping", { xmlns: "urn:xmpp:ping" }));

let broker: TestBroker | undefined;
const clients: TestClient[] = [];

async function hanseClient(username: string, opts?: LoginOptions): Promise<TestClient> {
  const b = broker!;
  return loginAs(
    async (user, resource) => {
      const client = await connectClient({
        service: `xmpp://127.0.0.1:${b.ports.c2s}`,
        domain: BROKER,
        username: user,
        password: `${user}-pw`,
        ca: b.certificatePem,
        ...(resource ? { resource } : {}),
      });
      clients.push(client);
      return client;
    },
    username,
    opts,
  );
}

async function peerClient(peer: Peer, username: string, opts?: LoginOptions): Promise<TestClient> {
  return loginAs(
    async (user) => {
      const client = await connectClient({
        service: peer.service,
        domain: peer.domain,
        username: user,
        password: `${user}-pw`,
        ca: peer.certificate(),
        // COMPAT: ejabberd 23.01 refuses our SCRAM-*-PLUS (tls-exporter): "Invalid channel binding".
        mechanism: "SCRAM-SHA-1",
      });
      clients.push(client);
      return client;
    },
    username,
    opts,
  );
}

before(async () => {
  if (!peerInstalled("prosody") && !peerInstalled("ejabberd")) return;
  broker = await startTestBroker({
    domain: BROKER,
    config: {
      s2s: {
        port: 5269,
        bind: ADDRESSES[BROKER]!,
        routes: {
          "peer-prosody.test": `${ADDRESSES["peer-prosody.test"]}:5269`,
          "peer-ejabberd.test": `${ADDRESSES["peer-ejabberd.test"]}:5269`,
        },
        connect_timeout: 15,
        max_retry_delay: 1,
      },
    },
  });
  for (const name of ["hans", "hanna", "henrik", "hilde"]) await broker.addUser(name, `${name}-pw`);
});

after(async () => {
  await Promise.all(clients.map((c) => c.stop().catch(() => {})));
  await broker?.stop();
});

for (const kind of ["prosody", "ejabberd"] as const satisfies readonly PeerKind[]) {
  const domain = `peer-${kind}.test`;
  const missing = peerInstalled(kind)
    ? undefined
    : `${kind} is not installed: apt-get install ${kind === "prosody" ? "prosody lua-unbound" : "ejabberd"}`;
  // Hanse users of this suite: one pair for messages and pings, one for presence.
  const [hUser, hFriend] = kind === "prosody" ? ["hans", "hanna"] : ["henrik", "hilde"];

  describe(`federation with ${kind} (${domain})`, () => {
    let peer: Peer;

    before(async () => {
      if (missing) throw new Error(missing);
      peer = createPeer({ kind, domain, ip: ADDRESSES[domain]!, hosts: ADDRESSES });
      await peer.start();
      for (const name of ["petra", "pia"]) await peer.register(name, `${name}-pw`);
    });
    after(async () => {
      await peer?.stop();
      peer?.remove();
    });

    /** Runs `fn`, adding the peer's log to a failure. */
    const withLog = async (fn: () => Promise<void>) => {
      try {
        await fn();
      } catch (err) {
        (err as Error).message += `\n--- ${kind} log ---\n${peer.logTail()}`;
        throw err;
      }
    };

    test("chat messages both ways", () =>
      withLog(async () => {
        const hans = await hanseClient(hUser);
        const petra = await peerClient(peer, "petra");
        await hans.send(xml("message", { to: `petra@${domain}`, type: "chat" }, xml("body", {}, "moin")));
        const got = await petra.nextStanza(isMessage("moin"), TIMEOUT);
        assert.equal(got.attrs.from, hans.jid!.toString());
        await petra.send(xml("message", { to: `${hUser}@${BROKER}`, type: "chat" }, xml("body", {}, "hej")));
        assert.equal((await hans.nextStanza(isMessage("hej"), TIMEOUT)).attrs.from, petra.jid!.toString());
        await Promise.all([hans.stop(), petra.stop()]);
      }));

    test("iq ping both ways: to the servers and to the clients", () =>
      withLog(async () => {
        const hans = await hanseClient(hUser);
        const petra = await peerClient(peer, "petra");
        assert.equal((await hans.iqCaller.request(ping(domain), TIMEOUT)).attrs.type, "result");
        assert.equal((await petra.iqCaller.request(ping(BROKER), TIMEOUT)).attrs.type, "result");
        assert.equal(
          (await hans.iqCaller.request(ping(petra.jid!.toString()), TIMEOUT)).attrs.type,
          "result",
        );
        assert.equal(
          (await petra.iqCaller.request(ping(hans.jid!.toString()), TIMEOUT)).attrs.type,
          "result",
        );
        await Promise.all([hans.stop(), petra.stop()]);
      }));

    test("a subscription handshake; then each sees the other come online and go offline", () =>
      withLog(async () => {
        const hanseJid = `${hFriend}@${BROKER}`;
        const peerJid = `pia@${domain}`;
        let h = await hanseClient(hFriend);
        let p = await peerClient(peer, "pia");
        // RFC 6121 §3.1: Hanse's user asks, the peer's user approves, then the other way round.
        await h.send(xml("presence", { type: "subscribe", to: peerJid }));
        await presenceFrom(p, hanseJid, "subscribe", TIMEOUT);
        await p.send(xml("presence", { type: "subscribed", to: hanseJid }));
        await pushShowing(h, peerJid, "to");
        await presenceFrom(h, p.jid!.toString(), undefined, TIMEOUT);
        await p.send(xml("presence", { type: "subscribe", to: hanseJid }));
        await presenceFrom(h, peerJid, "subscribe", TIMEOUT);
        await h.send(xml("presence", { type: "subscribed", to: peerJid }));
        await pushShowing(h, peerJid, "both");
        await presenceFrom(p, h.jid!.toString(), undefined, TIMEOUT);

        // RFC 6121 §4.5.2 / §4.2.2: offline and back online, seen from the other server.
        const pFull = p.jid!.toString();
        await p.stop();
        await presenceFrom(h, pFull, "unavailable", TIMEOUT);
        p = await peerClient(peer, "pia");
        await presenceFrom(h, p.jid!.toString(), undefined, TIMEOUT);
        await presenceFrom(p, h.jid!.toString(), undefined, TIMEOUT); // the peer probed us
        const hFull = h.jid!.toString();
        await h.stop();
        await presenceFrom(p, hFull, "unavailable", TIMEOUT);
        h = await hanseClient(hFriend);
        await presenceFrom(p, h.jid!.toString(), undefined, TIMEOUT);
        await presenceFrom(h, p.jid!.toString(), undefined, TIMEOUT); // we probed the peer
        await Promise.all([h.stop(), p.stop()]);
      }));

    test("a stopped peer: stanzas bounce at once; the link comes back by itself", () =>
      withLog(async () => {
        const hans = await hanseClient(hUser);
        let petra = await peerClient(peer, "petra");
        await hans.send(xml("message", { to: `petra@${domain}` }, xml("body", {}, "still there?")));
        await petra.nextStanza(isMessage("still there?"), TIMEOUT);
        await petra.stop();
        await peer.stop();

        const started = Date.now();
        await hans.send(xml("message", { to: `petra@${domain}`, id: "gone" }, xml("body", {}, "hello?")));
        const bounce = await hans.nextStanza((s) => s.attrs.id === "gone", TIMEOUT);
        assert.equal(bounce.attrs.type, "error");
        assert.ok(Date.now() - started < 15_000, "bounced within connect_timeout");

        await peer.start();
        // Nothing is sent meanwhile: the pool reconnects while the domain is wanted.
        const deadline = Date.now() + TIMEOUT;
        while (!broker!.s2s.pool.link(BROKER, domain)?.isReady) {
          assert.ok(Date.now() < deadline, `the link to ${domain} did not come back`);
          await new Promise((resolve) => setTimeout(resolve, 200));
        }
        petra = await peerClient(peer, "petra");
        await hans.send(xml("message", { to: `petra@${domain}` }, xml("body", {}, "welcome back")));
        await petra.nextStanza(isMessage("welcome back"), TIMEOUT);
        await Promise.all([hans.stop(), petra.stop()]);
      }));
  });
}
