/**
 * Adversarial client input against a live broker: each bad input must end that one stream with
 * the exact RFC 6120 stream error (`<stream:error>`, `</stream:stream>`, then the TCP connection
 * closes), while an already-authenticated session keeps working and stored accounts stay intact.
 *
 * References: RFC 6120 §4.3.3 (no stanzas before negotiation), §4.7.1 / §4.9.3.6 (host-unknown),
 * §4.7.5 / §4.9.3.25 (unsupported-version), §4.8 / §4.9.3.10 (invalid-namespace), §4.9.1.1
 * (an error before the header still gets a header), §4.9.3.1 (connection-timeout), §4.9.3.9
 * (invalid-from), §4.9.3.13 (not-well-formed), §4.9.3.14 (policy-violation), §4.9.3.18
 * (restricted-xml), §4.9.3.22 (unsupported-encoding), §4.9.3.24 (unsupported-stanza-type),
 * §5.4.3.3 (nothing sent before the TLS handshake is part of the new stream), §6.4.5 (SASL
 * retries), §6.5 (SASL failures), §8.1.2.1 (from), §8.2.3 (iq rules), §11 (restricted XML),
 * §11.6 (UTF-8), §13.12 (limits).
 */
import assert from "node:assert/strict";
import { after, afterEach, before, describe, test } from "node:test";
import { startTestBroker, type TestBroker } from "../server/testing/broker.ts";
import { NS_SASL, NS_TLS, type RawMechanism, RawStream, streamHeader } from "./support/raw-stream.ts";
import { connectClient, type TestClient, xml } from "./support/xmpp-client.ts";

const DOMAIN = "localhost";
const PASSWORD = "correct horse battery staple";
const USERS = ["alice", "bob", "mallory"] as const;
const NS_PING = "urn:xmpp:ping";

interface Env {
  readonly broker: TestBroker;
  /** Authenticated sessions that must survive every attack. */
  readonly alice: TestClient;
  readonly bob: TestClient;
  /** Raw streams a test opened; destroyed after each test. */
  readonly raws: Set<RawStream>;
}

async function startEnv(config: Record<string, unknown>): Promise<Env> {
  const broker = await startTestBroker({ config });
  try {
    for (const user of USERS) await broker.addUser(user, PASSWORD);
    const alice = await login(broker, "alice");
    const bob = await login(broker, "bob").catch(async (err) => {
      await alice.stop();
      throw err;
    });
    return { broker, alice, bob, raws: new Set() };
  } catch (err) {
    await broker.stop();
    throw err;
  }
}

async function stopEnv(env: Env | undefined): Promise<void> {
  if (!env) return;
  dropRaws(env);
  await Promise.allSettled([env.alice.stop(), env.bob.stop()]);
  await env.broker.stop();
}

function dropRaws(env: Env): void {
  for (const raw of env.raws) raw.destroy();
  env.raws.clear();
}

function login(broker: TestBroker, username: string, password = PASSWORD): Promise<TestClient> {
  return connectClient({
    service: `xmpp://127.0.0.1:${broker.ports.c2s}`,
    domain: DOMAIN,
    username,
    password,
    ca: broker.certificatePem,
  });
}

/** A plain connection to the STARTTLS port that has sent its header and read the features. */
async function rawOpen(env: Env): Promise<RawStream> {
  const raw = await rawConnect(env);
  await raw.open();
  return raw;
}

async function rawConnect(env: Env): Promise<RawStream> {
  const raw = await RawStream.connect({ port: env.broker.ports.c2s! });
  env.raws.add(raw);
  return raw;
}

/** mallory over STARTTLS, authenticated (PLAIN unless told) and bound (unless bind is false). */
async function rawLogin(
  env: Env,
  opts: { bind?: boolean; mechanism?: RawMechanism } = {},
): Promise<RawStream> {
  const raw = await RawStream.login({
    port: env.broker.ports.c2s!,
    ca: env.broker.certificatePem,
    username: "mallory",
    password: PASSWORD,
    ...opts,
  });
  env.raws.add(raw);
  return raw;
}

/** The exact stream error arrives, then the closing tag, then the server closes the connection. */
async function expectStreamError(raw: RawStream, condition: string, timeoutMs = 5000): Promise<void> {
  const error = await raw.streamError(timeoutMs);
  assert.equal(
    error.condition,
    condition,
    `expected <${condition}/>, got <${error.condition}/> (${error.text})`,
  );
  await raw.waitFor(/<\/stream:stream>/, timeoutMs); // RFC 6120 §4.9.1.1: the stream is closed
  await raw.waitClosed(timeoutMs);
}

let healthCheck = 0;

/** alice's ping to the server is answered, and her message reaches bob. */
async function assertSessionsWork(env: Env): Promise<void> {
  const { alice, bob } = env;
  const pong = await alice.iqCaller.request(
    xml("iq", { type: "get", to: DOMAIN }, xml("ping", { xmlns: NS_PING })),
    5000,
  );
  assert.equal(pong.attrs.type, "result");
  const body = `still here ${++healthCheck}`;
  await alice.send(xml("message", { to: bob.jid!.toString(), type: "chat" }, xml("body", {}, body)));
  const got = await bob.nextStanza((s) => s.is("message") && s.getChildText("body") === body);
  assert.equal(got.attrs.from, alice.jid!.toString());
}

/** A fresh login with the right password works (and a wrong one does not): accounts are intact. */
async function assertAccountsIntact(env: Env, username = "mallory"): Promise<void> {
  const fresh = await login(env.broker, username);
  assert.equal(fresh.jid?.bare().toString(), `${username}@${DOMAIN}`);
  await fresh.stop();
}

async function assertHealthy(env: Env): Promise<void> {
  await assertSessionsWork(env);
  await assertAccountsIntact(env);
}

/** bob received no message whose body contains `marker` (checked after a later message arrived). */
async function assertBobNeverGot(env: Env, marker: string): Promise<void> {
  // Messages from one router to one session arrive in order: once a later one is in, an earlier
  // one that was going to be delivered would be in too.
  const fence = `fence ${++healthCheck}`;
  await env.alice.send(xml("message", { to: env.bob.jid!.toString() }, xml("body", {}, fence)));
  await env.bob.nextStanza((s) => s.getChildText("body") === fence);
  const leaked = env.bob.inbox.find((s) => s.toString().includes(marker));
  assert.equal(leaked, undefined, `bob received ${leaked?.toString()}`);
}

/** The next `<iq/>` with this id the raw stream received, as text. */
async function iqReply(raw: RawStream, id: string): Promise<string> {
  const m = await raw.waitFor(new RegExp(`<iq\\b[^>]*\\bid=["']${id}["'][^>]*?(?:/>|>[\\s\\S]*?</iq>)`));
  return m[0];
}

const iqType = (iq: string): string | undefined => /^<iq\b[^>]*\btype=["']([a-z]+)["']/.exec(iq)?.[1];

const ping = (id: string, extra = ""): string =>
  `<iq type='get' id='${id}' to='${DOMAIN}'><ping xmlns='${NS_PING}'/>${extra}</iq>`;

describe("c2s: bad client input", () => {
  let env: Env;
  before(async () => {
    env = await startEnv({ limits: { max_stanza_bytes: 20000 } });
  });
  afterEach(() => dropRaws(env));
  after(() => stopEnv(env));

  test("mismatched tags before authentication: not-well-formed", async () => {
    const raw = await rawOpen(env);
    await raw.send("<message to='bob@localhost'><body>hi</message>");
    await expectStreamError(raw, "not-well-formed");
    await assertHealthy(env);
  });

  test("mismatched tags over direct TLS: not-well-formed", async () => {
    const raw = await RawStream.connect({
      port: env.broker.ports.c2sTls!,
      tls: { ca: env.broker.certificatePem },
    });
    env.raws.add(raw);
    const features = await raw.open();
    assert.match(features, /<mechanisms\s+xmlns=["']urn:ietf:params:xml:ns:xmpp-sasl["']/);
    await raw.send("<iq type='get' id='x'><query xmlns='jabber:iq:version'></iq></query>");
    await expectStreamError(raw, "not-well-formed");
    await assertHealthy(env);
  });

  test("mismatched tags after authentication: not-well-formed, and the broken stanza is not delivered", async () => {
    const raw = await rawLogin(env);
    await raw.send(`<message to='${env.bob.jid}'><body>broken-1</body></iq>`);
    await expectStreamError(raw, "not-well-formed");
    await assertBobNeverGot(env, "broken-1");
    await assertHealthy(env);
  });

  test("a DTD with nested entities (billion laughs) before the header: restricted-xml, promptly", async () => {
    const entities = ['<!ENTITY lol0 "lol">'];
    for (let i = 1; i <= 9; i++) entities.push(`<!ENTITY lol${i} "${`&lol${i - 1};`.repeat(10)}">`);
    const dtd = `<!DOCTYPE stream:stream [${entities.join("")}]>`;
    const rssBefore = process.memoryUsage().rss;
    const started = Date.now();
    const raw = await rawConnect(env);
    await raw.send(`<?xml version='1.0'?>${dtd}${streamHeader().replace("<?xml version='1.0'?>", "")}&lol9;`);
    // RFC 6120 §4.9.1.1: even before a header was read, the error comes after a server header.
    await raw.waitFor(/<stream:stream\b/);
    await expectStreamError(raw, "restricted-xml");
    assert.ok(Date.now() - started < 2000, `took ${Date.now() - started} ms`);
    // Same process: 10^9 expanded "lol"s would be gigabytes; allow ordinary noise only.
    const grown = process.memoryUsage().rss - rssBefore;
    assert.ok(grown < 64 * 1024 * 1024, `rss grew by ${grown} bytes`);
    await assertHealthy(env);
  });

  test("a DTD after the header and an entity reference in a stanza: restricted-xml", async () => {
    const rssBefore = process.memoryUsage().rss;
    const afterHeader = await rawOpen(env);
    await afterHeader.send('<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>');
    await expectStreamError(afterHeader, "restricted-xml");

    // Without a DTD, any entity but the five predefined ones is undefined: RFC 6120 §11.1.
    const authed = await rawLogin(env);
    await authed.send(`<message to='${env.bob.jid}'><body>entity-1 &lol9;</body></message>`);
    await expectStreamError(authed, "restricted-xml");
    await assertBobNeverGot(env, "entity-1");
    const grown = process.memoryUsage().rss - rssBefore;
    assert.ok(grown < 64 * 1024 * 1024, `rss grew by ${grown} bytes`);
    await assertHealthy(env);
  });

  test("a comment: restricted-xml", async () => {
    const raw = await rawOpen(env);
    await raw.send("<!-- hello -->");
    await expectStreamError(raw, "restricted-xml");

    const authed = await rawLogin(env);
    await authed.send(`<message to='${env.bob.jid}'><body>comment-1<!-- inside --></body></message>`);
    await expectStreamError(authed, "restricted-xml");
    await assertBobNeverGot(env, "comment-1");
    await assertHealthy(env);
  });

  test("a processing instruction: restricted-xml", async () => {
    const raw = await rawOpen(env);
    await raw.send("<?evil data?>");
    await expectStreamError(raw, "restricted-xml");

    const authed = await rawLogin(env);
    await authed.send(`<message to='${env.bob.jid}'><body>pi-1<?evil data?></body></message>`);
    await expectStreamError(authed, "restricted-xml");
    await assertBobNeverGot(env, "pi-1");
    await assertHealthy(env);
  });

  test("an over-size stanza sent in small chunks: policy-violation before it is complete", async () => {
    const raw = await rawLogin(env);
    const total = 400_000; // 20 times limits.max_stanza_bytes
    const stanza = `<message to='${env.bob.jid}'><body>oversize-1 ${"x".repeat(total)}</body></message>`;
    let errorSeen = false;
    const error = raw.streamError(10_000).then((e) => {
      errorSeen = true;
      return e;
    });
    error.catch(() => {}); // awaited below; this only keeps an early rejection from going unhandled
    // The server closes while we are still writing: EPIPE / ECONNRESET end the loop quietly.
    const sent = await raw.sendInChunks(stanza, 1000, () => errorSeen);
    const { condition } = await error;
    assert.equal(condition, "policy-violation");
    assert.ok(
      sent < stanza.length / 2,
      `the server let ${sent} of ${stanza.length} bytes in before refusing`,
    );
    await raw.waitFor(/<\/stream:stream>/);
    await raw.waitClosed();
    await assertBobNeverGot(env, "oversize-1");
    await assertHealthy(env);
  });

  test("an unbound namespace prefix: not-well-formed", async () => {
    const element = await rawOpen(env);
    await element.send("<foo:message xmlns:bar='urn:example'/>");
    await expectStreamError(element, "not-well-formed");

    const attribute = await rawLogin(env);
    await attribute.send(`<message to='${env.bob.jid}' foo:bar='1'><body>prefix-1</body></message>`);
    await expectStreamError(attribute, "not-well-formed");
    await assertBobNeverGot(env, "prefix-1");
    await assertHealthy(env);
  });

  test("a spoofed from after authentication: invalid-from, and the stanza is not delivered", async () => {
    const raw = await rawLogin(env, { mechanism: "SCRAM-SHA-256" });
    await raw.send(`<message from='bob@localhost' to='${env.bob.jid}'><body>spoof-1</body></message>`);
    await expectStreamError(raw, "invalid-from");
    await assertBobNeverGot(env, "spoof-1");

    const other = await rawLogin(env);
    await other.send(`<message from='${env.alice.jid}' to='${env.bob.jid}'><body>spoof-2</body></message>`);
    await expectStreamError(other, "invalid-from");
    await assertBobNeverGot(env, "spoof-2");
    await assertHealthy(env);
  });

  test("a from equal to the client's own bare or full JID is accepted and stamped with the full JID", async () => {
    const raw = await rawLogin(env, { mechanism: "SCRAM-SHA-1" });
    assert.match(raw.jid, /^mallory@localhost\/.+/);
    await raw.send(`<message from='mallory@localhost' to='${env.bob.jid}'><body>own-bare</body></message>`);
    const bare = await env.bob.nextStanza((s) => s.getChildText("body") === "own-bare");
    assert.equal(bare.attrs.from, raw.jid);
    await raw.send(`<message from='${raw.jid}' to='${env.bob.jid}'><body>own-full</body></message>`);
    const full = await env.bob.nextStanza((s) => s.getChildText("body") === "own-full");
    assert.equal(full.attrs.from, raw.jid);
    // The stream is still up: its own ping is answered.
    await raw.send(ping("still-up"));
    assert.equal(iqType(await iqReply(raw, "still-up")), "result");
    await raw.closeStream();
  });

  // RFC 6120 §11.6 makes UTF-8 mandatory, and §4.9.3.22 names <unsupported-encoding/> for a stream
  // that "violat[es] the rules of the [UTF-8] encoding"; that is what the parser reports (rather
  // than the more general <not-well-formed/> of §4.9.3.13).
  for (const [name, bytes] of [
    ["a lead byte without its continuation (C3 28)", [0xc3, 0x28]],
    ["an overlong encoding of '/' (C0 AF)", [0xc0, 0xaf]],
    ["a lone continuation byte (80)", [0x80]],
  ] as const) {
    test(`invalid UTF-8, ${name}: unsupported-encoding`, async () => {
      const raw = await rawOpen(env);
      const stanza = Buffer.concat([
        Buffer.from("<message to='bob@localhost'><body>utf8 "),
        Buffer.from(bytes),
        Buffer.from("</body></message>"),
      ]);
      await raw.send(stanza);
      await expectStreamError(raw, "unsupported-encoding");
      await assertHealthy(env);
    });
  }

  test("invalid UTF-8 after authentication and inside the header: unsupported-encoding", async () => {
    const authed = await rawLogin(env);
    await authed.send(
      Buffer.concat([
        Buffer.from(`<message to='${env.bob.jid}'><body>utf8-after-auth `),
        Buffer.from([0xed, 0xa0, 0x80]), // an encoded UTF-16 surrogate (U+D800)
        Buffer.from("</body></message>"),
      ]),
    );
    await expectStreamError(authed, "unsupported-encoding");
    await assertBobNeverGot(env, "utf8-after-auth");

    const header = await rawConnect(env);
    await header.send(
      Buffer.concat([Buffer.from("<?xml version='1.0'?><stream:stream to='"), Buffer.from([0xff])]),
    );
    await header.waitFor(/<stream:stream\b/); // RFC 6120 §4.9.1.1
    await expectStreamError(header, "unsupported-encoding");
    await assertHealthy(env);
  });

  test("a wrong content namespace or stream namespace: invalid-namespace", async () => {
    const content = await rawConnect(env);
    await content.send(streamHeader({ xmlns: "jabber:server" }));
    await expectStreamError(content, "invalid-namespace");

    const stream = await rawConnect(env);
    await stream.send(streamHeader({ streamNs: "urn:example:not-streams" }));
    await expectStreamError(stream, "invalid-namespace");
    await assertHealthy(env);
  });

  test("a header addressed to another domain: host-unknown", async () => {
    const raw = await rawConnect(env);
    await raw.send(streamHeader({ to: "example.org" }));
    // RFC 6120 §4.7.1: the answer still comes from the domain we serve.
    await raw.waitFor(/<stream:stream\b[^>]*\bfrom=["']localhost["']/);
    await expectStreamError(raw, "host-unknown");
    await assertHealthy(env);
  });

  test("a header without a version: unsupported-version", async () => {
    const raw = await rawConnect(env);
    await raw.send(streamHeader({ version: null }));
    await expectStreamError(raw, "unsupported-version");
    await assertHealthy(env);
  });

  test("stanzas before authentication: not-authorized, and nothing is routed", async () => {
    const plain = await rawOpen(env);
    await plain.send(`<message to='${env.bob.jid}'><body>early-1</body></message>`);
    await expectStreamError(plain, "not-authorized");

    // After STARTTLS but before SASL it is no different.
    const secured = await rawOpen(env);
    await secured.startTls({ ca: env.broker.certificatePem });
    await secured.open();
    await secured.send(`<message to='${env.bob.jid}'><body>early-2</body></message>`);
    await expectStreamError(secured, "not-authorized");
    await assertBobNeverGot(env, "early-");
    await assertHealthy(env);
  });

  test("before TLS only STARTTLS is offered, and PLAIN is refused with encryption-required", async () => {
    const raw = await rawConnect(env);
    const features = await raw.open();
    assert.match(features, /<starttls\s+xmlns=["']urn:ietf:params:xml:ns:xmpp-tls["']\s*>\s*<required\s*\/>/);
    assert.doesNotMatch(features, /mechanism/);
    const credentials = Buffer.from(`\0mallory\0${PASSWORD}`).toString("base64");
    await raw.send(`<auth xmlns='${NS_SASL}' mechanism='PLAIN'>${credentials}</auth>`);
    const failure = await raw.waitFor(
      /<failure\s+xmlns=["']urn:ietf:params:xml:ns:xmpp-sasl["']\s*>\s*<([a-z-]+)/,
    );
    assert.equal(failure[1], "encryption-required");
    assert.doesNotMatch(raw.text, /<success/);
    await assertHealthy(env);
  });

  test("SASL: an unknown mechanism and bad base64 fail, and the right password still works", async () => {
    const raw = await rawOpen(env);
    await raw.startTls({ ca: env.broker.certificatePem });
    await raw.open();
    const failure = /<failure\s+xmlns=["']urn:ietf:params:xml:ns:xmpp-sasl["']\s*>\s*<([a-z-]+)/;
    await raw.send(`<auth xmlns='${NS_SASL}' mechanism='X-NO-SUCH-THING'>AAAA</auth>`);
    assert.equal((await raw.waitFor(failure))[1], "invalid-mechanism");
    await raw.send(`<auth xmlns='${NS_SASL}' mechanism='PLAIN'>!!not*base64!!</auth>`);
    assert.equal((await raw.waitFor(failure))[1], "incorrect-encoding");
    // Two failures are within the allowed retries (RFC 6120 §6.4.5).
    await raw.authenticate("mallory", PASSWORD);
    await raw.open();
    await raw.bind();
    assert.match(raw.jid, /^mallory@localhost\//);
    await raw.closeStream();
    await assertHealthy(env);
  });

  test("SASL: three wrong passwords on one stream: policy-violation after the third failure", async () => {
    const raw = await rawOpen(env);
    await raw.startTls({ ca: env.broker.certificatePem });
    await raw.open();
    const failure = /<failure\s+xmlns=["']urn:ietf:params:xml:ns:xmpp-sasl["']\s*>\s*<([a-z-]+)/;
    const wrong = Buffer.from("\0mallory\0not the password").toString("base64");
    for (let attempt = 1; attempt <= 3; attempt++) {
      await raw.send(`<auth xmlns='${NS_SASL}' mechanism='PLAIN'>${wrong}</auth>`);
      assert.equal((await raw.waitFor(failure))[1], "not-authorized", `attempt ${attempt}`);
      if (attempt < 3) assert.doesNotMatch(raw.text, /<stream:error>/, `closed after ${attempt} attempts`);
    }
    await expectStreamError(raw, "policy-violation");
    await assertHealthy(env);
  });

  test("STARTTLS command injection: plaintext sent after <starttls/> is never processed", async () => {
    const raw = await rawOpen(env);
    // One write: the iq after <starttls/> was sent in the clear, before TLS. RFC 6120 §5.4.3.3: it
    // is not part of the stream that follows the handshake.
    const injected = `<message to='${env.bob.jid}'><body>injected-1</body></message>${ping("injected")}`;
    await raw.send(`<starttls xmlns='${NS_TLS}'/>${injected}`);
    await raw.waitFor(/<proceed\s+xmlns=["']urn:ietf:params:xml:ns:xmpp-tls["']\s*\/>/);
    await raw.upgrade({ ca: env.broker.certificatePem });
    // The server carries on with TLS as if the injected bytes had never been sent.
    const features = await raw.open();
    assert.match(features, /<mechanisms\s+xmlns=["']urn:ietf:params:xml:ns:xmpp-sasl["']/);
    await raw.authenticate("mallory", PASSWORD);
    await raw.open();
    await raw.bind();
    await raw.send(ping("after-tls"));
    assert.equal(iqType(await iqReply(raw, "after-tls")), "result");
    assert.doesNotMatch(raw.text, /injected/, "the server answered the injected iq");
    assert.doesNotMatch(raw.text, /<stream:error>/);
    await assertBobNeverGot(env, "injected-1");
    await raw.closeStream();
    await assertHealthy(env);
  });

  test("a non-stanza element after binding: unsupported-stanza-type", async () => {
    const raw = await rawLogin(env);
    await raw.send("<foo/>");
    await expectStreamError(raw, "unsupported-stanza-type");
    await assertHealthy(env);
  });

  test("an iq without an id or with two children: bad-request, and the stream stays up", async () => {
    const raw = await rawLogin(env);
    await raw.send(`<iq type='get' to='${DOMAIN}'><ping xmlns='${NS_PING}'/></iq>`);
    const noId = await raw.waitFor(/<iq\b[^>]*>[\s\S]*?<\/iq>/);
    assert.match(noId[0], /\btype=["']error["']/);
    assert.match(noId[0], /<bad-request\s+xmlns=["']urn:ietf:params:xml:ns:xmpp-stanzas["']/);

    await raw.send(ping("two-children", `<ping xmlns='${NS_PING}'/>`));
    const two = await raw.waitFor(/<iq\b[^>]*>[\s\S]*?<\/iq>/);
    assert.match(two[0], /\bid=["']two-children["']/);
    assert.match(two[0], /\btype=["']error["']/);
    assert.match(two[0], /<bad-request\s+xmlns=["']urn:ietf:params:xml:ns:xmpp-stanzas["']/);

    await raw.send(ping("good"));
    assert.equal(iqType(await iqReply(raw, "good")), "result");
    assert.doesNotMatch(raw.text, /<stream:error>/);
    await raw.closeStream();
    await assertHealthy(env);
  });
});

describe("c2s: clients that never authenticate (c2s.auth_timeout = 1 s)", () => {
  let env: Env;
  before(async () => {
    env = await startEnv({ c2s: { auth_timeout: 1 } });
  });
  afterEach(() => dropRaws(env));
  after(() => stopEnv(env));

  test("no stream header: connection-timeout after auth_timeout", async () => {
    const started = Date.now();
    const raw = await rawConnect(env);
    await raw.waitFor(/<stream:stream\b/, 5000); // RFC 6120 §4.9.1.1
    await expectStreamError(raw, "connection-timeout", 5000);
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= 900 && elapsed < 5000, `took ${elapsed} ms`);
    await assertHealthy(env);
  });

  test("a header but no authentication: connection-timeout after auth_timeout", async () => {
    const started = Date.now();
    const raw = await rawOpen(env);
    await expectStreamError(raw, "connection-timeout", 5000);
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= 900 && elapsed < 5000, `took ${elapsed} ms`);
    await assertHealthy(env);
  });

  test("TLS and whitespace keepalives do not extend the deadline", async () => {
    const started = Date.now();
    const raw = await rawOpen(env);
    await raw.startTls({ ca: env.broker.certificatePem });
    await raw.open();
    const keepalive = setInterval(() => void raw.send(" "), 100);
    try {
      await expectStreamError(raw, "connection-timeout", 5000);
    } finally {
      clearInterval(keepalive);
    }
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= 900 && elapsed < 5000, `took ${elapsed} ms`);
    await assertHealthy(env);
  });
});

describe("c2s: a flood of unauthenticated connections (max_unauthenticated_per_ip = 20)", () => {
  let env: Env;
  before(async () => {
    env = await startEnv({ c2s: { max_unauthenticated_per_ip: 20 } });
  });
  after(() => stopEnv(env));

  async function connectedStreams(): Promise<number> {
    const metric = await env.broker.metrics.connections.get();
    return metric.values.find((v) => v.labels.kind === "c2s" && v.labels.state === "connected")?.value ?? 0;
  }

  test("connections beyond the limit get policy-violation; the limit is released afterwards", async () => {
    const baseline = await connectedStreams(); // alice and bob
    const flood: RawStream[] = [];
    for (let i = 0; i < 30; i++) {
      const raw = await rawConnect(env);
      await raw.send(streamHeader());
      flood.push(raw);
    }
    const outcomes = await Promise.all(
      flood.map((raw) =>
        raw
          .waitFor(/<stream:features\b|<stream:error>/)
          .then((m) => (m[0] === "<stream:error>" ? "refused" : "accepted")),
      ),
    );
    assert.equal(outcomes.filter((o) => o === "accepted").length, 20);
    assert.equal(outcomes.filter((o) => o === "refused").length, 10);
    for (const [i, raw] of flood.entries()) {
      if (outcomes[i] !== "refused") continue;
      raw.cursor = 0;
      await expectStreamError(raw, "policy-violation");
    }
    // Authenticated sessions do not count against the limit and keep working.
    await assertSessionsWork(env);

    await Promise.all(flood.filter((raw) => !raw.closed).map((raw) => raw.closeStream()));
    // The server notices each close a moment after the client does; wait for its count to drop.
    const deadline = Date.now() + 5000;
    while ((await connectedStreams()) > baseline) {
      assert.ok(Date.now() < deadline, `still ${await connectedStreams()} connections open`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    // The per-address counter was released: a new client can log in again.
    await assertAccountsIntact(env);
    await assertAccountsIntact(env, "alice");
    await assertSessionsWork(env);
  });
});
