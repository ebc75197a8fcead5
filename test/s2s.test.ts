/**
 * Federation between Hanse brokers on loopback: a.test and b.test with self-signed certificates
 * (dialback both ways), then with certificates from a test CA (SASL EXTERNAL only), and the
 * failure cases: forged addresses and keys, unknown and unreachable domains, a peer that stops
 * and comes back.
 * References: RFC 6120 §4.9.3 (stream errors), §8.3.3.15/16 (remote-server-not-found/-timeout),
 * §13.7 (certificates), RFC 6121 §3-§4 (subscriptions and presence), XEP-0178, XEP-0220,
 * XEP-0185, XEP-0199, XEP-0368.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import {
  type Connect,
  type LoginOptions,
  loginAs,
  pause,
  presenceFrom,
  pushShowing,
} from "../extensions/roster/testing.ts";
import { createTestCa, type IssuedCertificate, issueCertificate } from "../server/net/certs.ts";
import { dialbackKey, secretFrom } from "../server/s2s/dialback.ts";
import { startTestBroker, type TestBroker } from "../server/testing/broker.ts";
import { RawS2s, s2sHeader } from "./interop/support/raw-s2s.ts";
import { freePort } from "./support/broker-process.ts";
import { connectClient, type Element, type TestClient, xml } from "./support/xmpp-client.ts";

// Every listener is on an ephemeral loopback port; routes point the brokers at each other.
const HOST = "127.0.0.1";

const condition = (err: unknown) => (err as { condition?: string }).condition;
const errorOf = (stanza: Element) =>
  stanza
    .getChild("error")
    ?.getChildElements()
    .find((c) => c.attrs.xmlns === "urn:ietf:params:xml:ns:xmpp-stanzas")?.name;
const isMessage = (body: string) => (s: Element) => s.is("message") && s.getChildText("body") === body;

function s2sConfig(extra: Record<string, unknown> = {}) {
  return { s2s: { connect_timeout: 2, max_retry_delay: 1, ...extra } };
}

/** Each broker routes the other's domain to its s2s port. */
function link(x: TestBroker, y: TestBroker): void {
  x.s2s.setRoute(y.domain, `${HOST}:${y.ports.s2s}`);
  y.s2s.setRoute(x.domain, `${HOST}:${x.ports.s2s}`);
}

function clientFor(broker: TestBroker, clients: TestClient[], ca?: string): Connect {
  return async (username, resource) => {
    const client = await connectClient({
      service: `xmpp://127.0.0.1:${broker.ports.c2s}`,
      domain: broker.domain,
      username,
      password: `${username}-pw`,
      ca: ca ?? broker.certificatePem,
      ...(resource ? { resource } : {}),
    });
    clients.push(client);
    return client;
  };
}

async function metricLines(broker: TestBroker, name: string): Promise<string[]> {
  const text = await broker.metrics.registry.metrics();
  return text.split("\n").filter((l) => l.startsWith(name));
}

describe("federation with dialback (self-signed certificates)", () => {
  let a: TestBroker;
  let b: TestBroker;
  const clients: TestClient[] = [];
  let hole: net.Server;
  const holeSockets = new Set<net.Socket>();
  const loginA = (u: string, o?: LoginOptions) => loginAs(clientFor(a, clients), u, o);
  const loginB = (u: string, o?: LoginOptions) => loginAs(clientFor(b, clients), u, o);

  before(async () => {
    hole = net.createServer((socket) => {
      holeSockets.add(socket);
      socket.on("error", () => {});
    });
    await new Promise<void>((resolve) => hole.listen(0, HOST, resolve));
    a = await startTestBroker({ domain: "a.test", config: s2sConfig() });
    b = await startTestBroker({ domain: "b.test", config: s2sConfig() });
    link(a, b);
    a.s2s.setRoute("down.test", `${HOST}:${await freePort()}`); // nothing listens there
    a.s2s.setRoute("blackhole.test", `${HOST}:${(hole.address() as net.AddressInfo).port}`);
    for (const name of ["alice", "amy"]) await a.addUser(name, `${name}-pw`);
    for (const name of ["bob", "bea"]) await b.addUser(name, `${name}-pw`);
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.stop().catch(() => {})));
    await Promise.all([a?.stop(), b?.stop()]);
    for (const s of holeSockets) s.destroy();
    hole?.close();
  });

  test("chat messages and iq ping both ways; errors from the remote side come back", async () => {
    const alice = await loginA("alice");
    const bob = await loginB("bob");
    await alice.send(xml("message", { to: "bob@b.test", type: "chat" }, xml("body", {}, "hello bob")));
    const got = await bob.nextStanza(isMessage("hello bob"), 10_000);
    assert.equal(got.attrs.from, alice.jid!.toString());
    await bob.send(xml("message", { to: "alice@a.test", type: "chat" }, xml("body", {}, "hello alice")));
    assert.equal((await alice.nextStanza(isMessage("hello alice"))).attrs.from, bob.jid!.toString());

    // XEP-0199: the remote server, and a remote client by full JID, both directions.
    const ping = (to: string) => xml("iq", { type: "get", to }, xml("ping", { xmlns: "urn:xmpp:ping" }));
    assert.equal((await alice.iqCaller.request(ping("b.test"))).attrs.type, "result");
    assert.equal((await bob.iqCaller.request(ping("a.test"))).attrs.type, "result");
    assert.equal((await alice.iqCaller.request(ping(bob.jid!.toString()))).attrs.type, "result");
    assert.equal((await bob.iqCaller.request(ping(alice.jid!.toString()))).attrs.type, "result");

    // RFC 6121 §8.5.1: no such account at b: the error is b's, routed back over s2s.
    await assert.rejects(alice.iqCaller.request(ping("nobody@b.test")), (e) => {
      assert.equal(condition(e), "service-unavailable");
      return true;
    });
    await alice.send(xml("message", { to: "nobody@b.test", id: "m1" }, xml("body", {}, "anyone?")));
    const bounced = await alice.nextStanza((s) => s.attrs.id === "m1" && s.attrs.type === "error");
    assert.equal(bounced.attrs.from, "nobody@b.test");
    assert.equal(errorOf(bounced), "service-unavailable");

    assert.equal(a.s2s.pool.link("a.test", "b.test")?.authenticatedWith, "dialback");
    assert.equal(b.s2s.pool.link("b.test", "a.test")?.authenticatedWith, "dialback");
    const links = await metricLines(a, "hanse_s2s_links");
    assert.ok(
      links.includes('hanse_s2s_links{remote="b.test",direction="out",state="ready"} 1'),
      links.join("\n"),
    );
    assert.ok(links.includes('hanse_s2s_links{remote="b.test",direction="in",state="authenticated"} 1'));
    const stanzas = await metricLines(a, "hanse_s2s_stanzas_total");
    assert.ok(
      stanzas.some((l) => /remote="b.test",direction="out"} [1-9]/.test(l)),
      stanzas.join("\n"),
    );
    assert.ok(stanzas.some((l) => /remote="b.test",direction="in"} [1-9]/.test(l)));
    await Promise.all([alice.stop(), bob.stop()]);
  });

  test("a subscription handshake across domains; then each sees the other come and go", async () => {
    let amy = await loginA("amy");
    let bea = await loginB("bea");
    // RFC 6121 §3.1: amy asks, bea approves; and the other way round.
    await amy.send(xml("presence", { type: "subscribe", to: "bea@b.test" }));
    await presenceFrom(bea, "amy@a.test", "subscribe", 10_000);
    await bea.send(xml("presence", { type: "subscribed", to: "amy@a.test" }));
    await pushShowing(amy, "bea@b.test", "to");
    await presenceFrom(amy, bea.jid!.toString(), undefined, 10_000); // §3.1.5: bea's presence follows
    await bea.send(xml("presence", { type: "subscribe", to: "amy@a.test" }));
    await presenceFrom(amy, "bea@b.test", "subscribe");
    await amy.send(xml("presence", { type: "subscribed", to: "bea@b.test" }));
    await pushShowing(bea, "amy@a.test", "both");
    await presenceFrom(bea, amy.jid!.toString());

    // RFC 6121 §4.5.2 and §4.2.2: going offline and coming back online, seen from the other side.
    const amyFull = amy.jid!.toString();
    await amy.stop();
    await presenceFrom(bea, amyFull, "unavailable");
    amy = await loginA("amy");
    await presenceFrom(bea, amy.jid!.toString());
    // §4.3: amy's probe at login brought her bea's current presence.
    await presenceFrom(amy, bea.jid!.toString());
    const beaFull = bea.jid!.toString();
    await bea.stop();
    await presenceFrom(amy, beaFull, "unavailable");
    bea = await loginB("bea");
    await presenceFrom(amy, bea.jid!.toString());
    await Promise.all([amy.stop(), bea.stop()]);
  });

  test("a forged dialback key is refused and the stream closed; nothing before authentication", async () => {
    const raw = await RawS2s.connect(HOST, a.ports.s2s!);
    const features = await raw.openSecure("b.test", "a.test", {});
    assert.match(features, /<dialback xmlns="urn:xmpp:features:dialback"><errors\/><\/dialback>/);
    // No certificate, so no SASL EXTERNAL either.
    assert.doesNotMatch(features, /EXTERNAL/);
    raw.send(`<db:result from='b.test' to='a.test'>${"ab".repeat(32)}</db:result>`);
    // a asked b (the authoritative server for b.test), which did not issue that key.
    await raw.expect(/<db:result[^>]*type="invalid"/, 10_000);
    await raw.closed;

    const early = await RawS2s.connect(HOST, a.ports.s2s!);
    await early.openSecure("b.test", "a.test", {});
    early.send("<message from='bob@b.test' to='alice@a.test'><body>let me in</body></message>");
    await early.expect(/<not-authorized xmlns="urn:ietf:params:xml:ns:xmpp-streams"/);
    await early.closed;

    // RFC 7590: before TLS, only STARTTLS.
    const plain = await RawS2s.connect(HOST, a.ports.s2s!);
    plain.send(s2sHeader("b.test", "a.test"));
    await plain.expect(/<required\/>/);
    plain.send(`<db:result from='b.test' to='a.test'>${"ab".repeat(32)}</db:result>`);
    await plain.expect(/<policy-violation xmlns="urn:ietf:params:xml:ns:xmpp-streams"/);
    await plain.closed;
  });

  test("on a link authenticated by dialback, a forged from is rejected (invalid-from)", async () => {
    const alice = await loginA("alice");
    // A peer that really speaks for b.test: it holds b's dialback secret (read from b's data dir).
    const secret = secretFrom(readFileSync(join(b.config.data_dir, "s2s", "dialback-secret"), "utf8").trim());
    const raw = await RawS2s.connect(HOST, a.ports.s2s!);
    await raw.openSecure("b.test", "a.test", {});
    raw.send(
      `<db:result from='b.test' to='a.test'>${dialbackKey(secret, "a.test", "b.test", raw.streamId)}</db:result>`,
    );
    // a asks b, which confirms the key: the pair b.test -> a.test is authenticated on this stream.
    await raw.expect(/<db:result[^>]*type="valid"/, 10_000);
    raw.send("<message from='bob@b.test/raw' to='alice@a.test' type='chat'><body>genuine</body></message>");
    await alice.nextStanza(isMessage("genuine"), 5000);
    raw.send("<message from='eve@evil.test' to='alice@a.test' type='chat'><body>forged</body></message>");
    await raw.expect(/<invalid-from xmlns="urn:ietf:params:xml:ns:xmpp-streams"/);
    await raw.closed;
    await pause(100);
    assert.ok(!alice.inbox.some(isMessage("forged")), "the forged message was not delivered");
    await alice.stop();
  });

  test("unknown, refusing and silent domains bounce within the configured time", async () => {
    const alice = await loginA("alice");
    const ping = (to: string) => xml("iq", { type: "get", to }, xml("ping", { xmlns: "urn:xmpp:ping" }));
    const rejects = async (to: string, expected: string, withinMs: number) => {
      const started = Date.now();
      await assert.rejects(alice.iqCaller.request(ping(to)), (e) => {
        assert.equal(condition(e), expected, `${to}: ${e}`);
        return true;
      });
      const took = Date.now() - started;
      assert.ok(took < withinMs, `${to} bounced after ${took} ms`);
      return took;
    };
    await rejects("nowhere.test", "remote-server-not-found", 1000); // no route, no DNS in tests
    await rejects("down.test", "remote-server-not-found", 1000); // connection refused
    // Accepts TCP but never speaks: bounced when connect_timeout (2 s) runs out.
    const took = await rejects("blackhole.test", "remote-server-timeout", 4000);
    assert.ok(took >= 1900, `timed out after ${took} ms, before connect_timeout`);
    const failures = await metricLines(a, "hanse_s2s_failures_total");
    // (The pool keeps retrying while the domains are wanted: counts grow.)
    for (const [domain, reason] of [
      ["nowhere.test", "no-route"],
      ["down.test", "unreachable"],
      ["blackhole.test", "timeout"],
    ]) {
      const line = `hanse_s2s_failures_total{remote="${domain}",reason="${reason}"}`;
      assert.ok(
        failures.some((l) => l.startsWith(line)),
        `${line} in\n${failures.join("\n")}`,
      );
    }
    await alice.stop();
  });

  test("a stopped peer: stanzas bounce at once; the link comes back by itself with the peer", async () => {
    const alice = await loginA("alice");
    let bob = await loginB("bob");
    await alice.send(xml("message", { to: "bob@b.test" }, xml("body", {}, "before")));
    await bob.nextStanza(isMessage("before"), 10_000);
    const storage = { data_dir: b.config.data_dir, database: b.config.database };
    const s2sPort = b.ports.s2s!; // b comes back where a's route points
    await bob.stop();
    await b.stop();

    const started = Date.now();
    await alice.send(xml("message", { to: "bob@b.test", id: "lost" }, xml("body", {}, "are you there?")));
    const bounce = await alice.nextStanza((s) => s.attrs.id === "lost", 5000);
    assert.equal(errorOf(bounce), "remote-server-not-found");
    assert.ok(Date.now() - started < 2000, "bounced within connect_timeout");

    b = await startTestBroker({
      domain: "b.test",
      reuse: storage,
      config: s2sConfig({ port: s2sPort, routes: { "a.test": `${HOST}:${a.ports.s2s}` } }),
    });
    // No stanza is sent: the pool retries (max_retry_delay 1 s) while the domain is wanted.
    const deadline = Date.now() + 10_000;
    while (!a.s2s.pool.link("a.test", "b.test")?.isReady) {
      assert.ok(Date.now() < deadline, "a's link to b.test did not come back");
      await pause(100);
    }
    bob = await loginB("bob");
    await alice.send(xml("message", { to: "bob@b.test" }, xml("body", {}, "after")));
    await bob.nextStanza(isMessage("after"), 10_000);
    await Promise.all([alice.stop(), bob.stop()]);
  });
});

describe("federation with certificates from a test CA (SASL EXTERNAL, secure_auth)", () => {
  let ca: IssuedCertificate;
  let c: TestBroker;
  let d: TestBroker;
  let caFile: string;
  let mallory: IssuedCertificate;
  const clients: TestClient[] = [];

  async function certFiles(dir: string, domain: string): Promise<{ cert: string; key: string }> {
    const issued = await issueCertificate({ names: [domain, `*.${domain}`], xmppAddrs: [domain], ca });
    const files = { cert: join(dir, `${domain}.crt`), key: join(dir, `${domain}.key`) };
    writeFileSync(files.cert, issued.certPem);
    writeFileSync(files.key, issued.keyPem, { mode: 0o600 });
    return files;
  }

  before(async () => {
    const dir = mkdtempSync(join(tmpdir(), "hanse-s2s-ca-"));
    ca = await createTestCa();
    caFile = join(dir, "ca.pem");
    writeFileSync(caFile, ca.certPem);
    // c.test is also reachable with direct TLS (XEP-0368); d.test uses that route.
    const policy = { ca_file: caFile, secure_auth: true };
    c = await startTestBroker({
      domain: "c.test",
      config: {
        tls: await certFiles(dir, "c.test"),
        ...s2sConfig({ ...policy, tls_port: await freePort() }),
      },
    });
    d = await startTestBroker({
      domain: "d.test",
      config: { tls: await certFiles(dir, "d.test"), ...s2sConfig(policy) },
    });
    c.s2s.setRoute("d.test", `${HOST}:${d.ports.s2s}`);
    d.s2s.setRoute("c.test", `tls://${HOST}:${c.ports.s2sTls}`);
    // A certificate for d.test from the same CA, held by a misbehaving peer.
    mallory = await issueCertificate({ names: ["d.test"], xmppAddrs: ["d.test"], ca });
    await c.addUser("carl", "carl-pw");
    await d.addUser("dora", "dora-pw");
  });
  after(async () => {
    await Promise.all(clients.map((cl) => cl.stop().catch(() => {})));
    await Promise.all([c?.stop(), d?.stop()]);
  });

  test("messages both ways over links authenticated with SASL EXTERNAL (STARTTLS and direct TLS)", async () => {
    const carl = await loginAs(clientFor(c, clients, ca.certPem), "carl");
    const dora = await loginAs(clientFor(d, clients, ca.certPem), "dora");
    await carl.send(xml("message", { to: "dora@d.test" }, xml("body", {}, "certified")));
    await dora.nextStanza(isMessage("certified"), 10_000);
    await dora.send(xml("message", { to: "carl@c.test" }, xml("body", {}, "certified too")));
    await carl.nextStanza(isMessage("certified too"), 10_000);
    assert.equal(c.s2s.pool.link("c.test", "d.test")?.authenticatedWith, "SASL EXTERNAL");
    assert.equal(d.s2s.pool.link("d.test", "c.test")?.authenticatedWith, "SASL EXTERNAL");
    await Promise.all([carl.stop(), dora.stop()]);
  });

  test("authenticated as d.test, a peer can neither forge another domain nor address one we do not serve", async () => {
    const tlsOptions = { cert: mallory.certPem, key: mallory.keyPem, ca: [ca.certPem] };
    const forge = async (stanza: string, expected: string) => {
      const raw = await RawS2s.connect(HOST, c.ports.s2s!);
      const features = await raw.openSecure("d.test", "c.test", tlsOptions);
      assert.match(features, /<mechanism>EXTERNAL<\/mechanism>/);
      assert.doesNotMatch(features, /dialback/, "secure_auth: no dialback offered");
      raw.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>=</auth>");
      await raw.expect(/<success xmlns="urn:ietf:params:xml:ns:xmpp-sasl"\/>/);
      raw.send(s2sHeader("d.test", "c.test"));
      await raw.expect(/<\/stream:features>|<stream:features\/>/);
      raw.send(stanza);
      await raw.expect(new RegExp(`<${expected} xmlns="urn:ietf:params:xml:ns:xmpp-streams"`));
      await raw.closed;
    };
    // RFC 6120 §4.9.3.9
    await forge("<message from='eve@evil.test' to='carl@c.test'><body>x</body></message>", "invalid-from");
    // RFC 6120 §4.9.3.6
    await forge("<message from='dora@d.test' to='x@elsewhere.test'><body>x</body></message>", "host-unknown");
    // RFC 6120 §4.9.3.7
    await forge("<message to='carl@c.test'><body>x</body></message>", "improper-addressing");
  });

  test("secure_auth: a peer without a valid certificate gets no dialback", async () => {
    const raw = await RawS2s.connect(HOST, c.ports.s2s!);
    const features = await raw.openSecure("d.test", "c.test", {});
    assert.doesNotMatch(features, /EXTERNAL|dialback/);
    raw.send(`<db:result from='d.test' to='c.test'>${"ab".repeat(32)}</db:result>`);
    await raw.expect(/<db:result[^>]*type="error"[^>]*>\s*<error[^>]*>\s*<not-authorized/);
    raw.close();
  });
});

describe("federation policy and idle links", () => {
  let e: TestBroker;
  let f: TestBroker;
  const clients: TestClient[] = [];
  before(async () => {
    // e.test refuses banned.test; links idle for 1 s close.
    e = await startTestBroker({
      domain: "e.test",
      config: s2sConfig({ deny: ["banned.test"], idle_timeout: 1 }),
    });
    f = await startTestBroker({ domain: "f.test", config: s2sConfig({ idle_timeout: 1 }) });
    link(e, f);
    e.s2s.setRoute("banned.test", `${HOST}:${await freePort()}`);
    await e.addUser("erin", "erin-pw");
    await f.addUser("finn", "finn-pw");
  });
  after(async () => {
    await Promise.all(clients.map((cl) => cl.stop().catch(() => {})));
    await Promise.all([e?.stop(), f?.stop()]);
  });

  test("a denied domain is never contacted: not-allowed", async () => {
    const erin = await loginAs(clientFor(e, clients), "erin");
    await assert.rejects(
      erin.iqCaller.request(
        xml("iq", { type: "get", to: "banned.test" }, xml("ping", { xmlns: "urn:xmpp:ping" })),
      ),
      (err) => condition(err) === "not-allowed",
    );
    assert.equal(e.s2s.pool.link("e.test", "banned.test"), undefined);
    await erin.stop();
  });

  test("an idle link closes; the next stanza opens a new one", async () => {
    const erin = await loginAs(clientFor(e, clients), "erin");
    const finn = await loginAs(clientFor(f, clients), "finn");
    await erin.send(xml("message", { to: "finn@f.test" }, xml("body", {}, "one")));
    await finn.nextStanza(isMessage("one"), 10_000);
    const first = e.s2s.pool.link("e.test", "f.test");
    assert.ok(first?.isReady);
    const deadline = Date.now() + 5000;
    while (e.s2s.pool.link("e.test", "f.test")) {
      assert.ok(Date.now() < deadline, "the idle link did not close");
      await pause(100);
    }
    assert.ok(first.isClosed);
    await erin.send(xml("message", { to: "finn@f.test" }, xml("body", {}, "two")));
    await finn.nextStanza(isMessage("two"), 10_000);
    await Promise.all([erin.stop(), finn.stop()]);
  });
});
