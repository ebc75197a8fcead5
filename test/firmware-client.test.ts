/**
 * The device-side XMPP client (firmware/xmpp) against a real Hanse broker, with an independent
 * client (@xmpp/client) as the other party: login over STARTTLS and direct TLS with each SCRAM
 * variant, refusing bad passwords and untrusted certificates, requests and their errors, answering
 * requests through handlers, keepalive and reconnection (stream resumption after a network cut,
 * rebinding after a broker restart), stop(), the conflict back-off, and in-band registration.
 * References: RFC 6120 §5-§8, RFC 5802, RFC 9266, XEP-0077 §3.1, XEP-0198 §5-§6, XEP-0199, XEP-0368.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Element } from "ltx";
import { pause } from "../extensions/roster/testing.ts";
import { XmppClient, type XmppClientOptions } from "../firmware/xmpp/client.ts";
import { RequestTimeoutError, XmppRequestError } from "../firmware/xmpp/errors.ts";
import { registerAccount } from "../firmware/xmpp/register.ts";
import { startTcpRelay } from "../firmware/xmpp/testing.ts";
import { startTestBroker, type TestBroker } from "../server/testing/broker.ts";
import { StanzaError } from "../server/xml/errors.ts";
import { onceOnline, until } from "./firmware-support.ts";
import { loginTo, type TestClient, xml } from "./support/xmpp-client.ts";

const NS_THING = "urn:example:thing";

describe("firmware XMPP client against Hanse", () => {
  let broker: TestBroker;
  const devices: XmppClient[] = [];
  const others: TestClient[] = [];

  before(async () => {
    broker = await startTestBroker({
      config: { c2s: { resume_timeout: 30 }, modules: { register: { open: true, open_per_hour_per_ip: 5 } } },
    });
    for (const name of ["thing", "thing2", "bob"]) await broker.addUser(name, `${name}-pw`);
  });
  after(async () => {
    await Promise.all(devices.map((d) => d.stop().catch(() => {})));
    await Promise.all(others.map((c) => c.stop().catch(() => {})));
    await broker.stop();
  });

  function device(opts: Partial<XmppClientOptions> = {}): XmppClient {
    const client = new XmppClient({
      domain: "localhost",
      host: "127.0.0.1",
      port: broker.ports.c2s!,
      ca: broker.certificatePem,
      username: "thing",
      password: "thing-pw",
      reconnect: { initialDelayMs: 50, maxDelayMs: 400 },
      requestTimeoutMs: 5000,
      ...opts,
    });
    devices.push(client);
    return client;
  }

  async function bob(): Promise<TestClient> {
    const client = await loginTo(broker, "bob", "bob-pw");
    others.push(client);
    await client.send(xml("presence")); // available, so messages to bob@localhost reach this client
    return client;
  }

  test("logs in over STARTTLS with SCRAM-SHA-256-PLUS, binds, enables SM and goes available", async () => {
    const d = device({ resource: "sensor" });
    await d.start();
    assert.equal(d.online, true);
    assert.equal(d.jid, "thing@localhost/sensor");
    assert.equal(d.mechanism, "SCRAM-SHA-256-PLUS");
    assert.equal(d.streamManagement, true);
    await until(
      "initial presence",
      () => broker.sessions.get("thing@localhost", "sensor")?.available === true,
    );
    await d.stop();
    assert.equal(d.online, false);
  });

  for (const mechanism of ["SCRAM-SHA-256", "SCRAM-SHA-1"]) {
    for (const tls of ["starttls", "direct"] as const) {
      test(`${mechanism} over ${tls === "direct" ? "direct TLS" : "STARTTLS"}`, async () => {
        const d = device({
          tls,
          port: tls === "direct" ? broker.ports.c2sTls! : broker.ports.c2s!,
          saslMechanisms: [mechanism],
        });
        await d.start();
        assert.equal(d.mechanism, mechanism);
        const pong = await d.request(
          xml("iq", { type: "get", to: "localhost" }, xml("ping", { xmlns: "urn:xmpp:ping" })),
        );
        assert.equal(pong.attrs.type, "result");
        await d.stop();
      });
    }
  }

  test("a wrong password rejects start() with not-authorized and is not retried in a loop", async () => {
    const attempts: string[] = [];
    const d = device({
      password: "wrong",
      log: (_level, msg) => {
        if (msg === "connecting") attempts.push(msg);
      },
    });
    await assert.rejects(d.start(), (err: { condition?: string }) => err.condition === "not-authorized");
    await pause(300); // longer than the reconnect delays
    // Hanse lists its channel-binding types (XEP-0440), so a refused -PLUS login is final: giving
    // up the binding is kept for servers that do not list them (see the ejabberd test).
    assert.equal(attempts.length, 1, "one try, no retry without channel binding, no loop");
    assert.equal(d.online, false);
  });

  test("a certificate the device does not trust is refused", async () => {
    const d = device({ ca: undefined, reconnect: false });
    await assert.rejects(d.start(), /self[- ]signed|unable to verify|certificate/i);
  });

  test("request(): results, stanza errors with their condition, and timeouts", async () => {
    const d = device({ resource: "asker" });
    await d.start();
    const info = await d.request(
      xml(
        "iq",
        { type: "get", to: "localhost" },
        xml("query", { xmlns: "http://jabber.org/protocol/disco#info" }),
      ),
    );
    assert.ok(info.attrs.id, "an id was set");
    assert.ok(info.getChild("query")?.getChild("identity"), "the server describes itself");

    const err = await d
      .request(xml("iq", { type: "get", to: "bob@localhost/nowhere" }, xml("query", { xmlns: NS_THING })))
      .then(
        () => assert.fail("expected an error"),
        (e: unknown) => e,
      );
    assert.ok(err instanceof XmppRequestError);
    assert.equal(err.condition, "service-unavailable");
    assert.equal(err.stanza.attrs.type, "error");

    // A peer that never answers: the request times out, without a condition.
    const silent = device({ username: "thing2", password: "thing2-pw", resource: "silent" });
    silent.onIq("get", NS_THING, "query", () => new Promise<undefined>(() => {}));
    await silent.start();
    await assert.rejects(
      d.request(xml("iq", { type: "get", to: silent.jid }, xml("query", { xmlns: NS_THING })), 300),
      (e: unknown) => e instanceof RequestTimeoutError && !("condition" in e),
    );
    await silent.stop();
    await d.stop();
  });

  test("onIq answers an independent client; StanzaError and unhandled payloads become errors", async () => {
    const d = device({ resource: "handler" });
    d.onIq("get", NS_THING, "query", (iq) => {
      assert.equal(iq.attrs.from?.split("/")[0], "bob@localhost");
      return new Element("query", { xmlns: NS_THING }).c("value").t("21.5").root();
    });
    d.onIq("set", NS_THING, "query", () => {
      throw new StanzaError("forbidden", "not your thing");
    });
    await d.start();
    const b = await bob();
    const result = await b.iqCaller.request(
      xml("iq", { type: "get", to: d.jid }, xml("query", { xmlns: NS_THING })),
    );
    assert.equal(result.getChild("query", NS_THING)?.getChildText("value"), "21.5");

    const condition = async (type: string, payload: Element) => {
      const id = `t${Math.random()}`;
      const waiting = b.nextStanza((s) => s.attrs.id === id);
      await b.send(xml("iq", { type, to: d.jid, id }, payload));
      const reply = await waiting;
      assert.equal(reply.attrs.type, "error");
      return reply.getChild("error")?.getChildElements()[0]?.name;
    };
    assert.equal(await condition("set", xml("query", { xmlns: NS_THING })), "forbidden");
    assert.equal(
      await condition("get", xml("unknown", { xmlns: "urn:example:nothing" })),
      "service-unavailable",
    );
    // XEP-0199: pings are answered out of the box.
    const pong = await b.iqCaller.request(
      xml("iq", { type: "get", to: d.jid }, xml("ping", { xmlns: "urn:xmpp:ping" })),
    );
    assert.equal(pong.attrs.type, "result");
    await d.stop();
  });

  test("onStanza and the message event see inbound messages; unsubscribe stops delivery", async () => {
    const d = device({ resource: "listener" });
    await d.start();
    const seen: string[] = [];
    const events: string[] = [];
    const unsubscribe = d.onStanza((s) => {
      if (s.name === "message") seen.push(s.getChildText("body") ?? "");
    });
    d.on("message", (s) => events.push(s.getChildText("body") ?? ""));
    const b = await bob();
    await b.send(xml("message", { to: d.jid, type: "chat" }, xml("body", {}, "one")));
    await until("first message", () => seen.length === 1 && events.length === 1);
    unsubscribe();
    await b.send(xml("message", { to: d.jid, type: "chat" }, xml("body", {}, "two")));
    await until("second message", () => events.length === 2);
    assert.deepEqual(seen, ["one"]);
    assert.deepEqual(events, ["one", "two"]);
    await d.stop();
  });

  test("after a network cut the session is resumed: nothing lost either way", async (t) => {
    const relay = await startTcpRelay({ port: broker.ports.c2s! });
    t.after(() => relay.close());
    const d = device({ port: relay.port, resource: "roaming" });
    const bodies: string[] = [];
    d.on("message", (s) => bodies.push(s.getChildText("body") ?? ""));
    await d.start();
    const b = await bob();
    const toDevice = (n: number) =>
      b.send(xml("message", { to: d.jid, type: "chat" }, xml("body", {}, `m${n}`)));
    await toDevice(1);
    await until("m1", () => bodies.length === 1);

    const back = onceOnline(d);
    relay.cut();
    // While the device is away: the broker holds what it sends, the device queues what it sends.
    for (let n = 2; n <= 5; n++) await toDevice(n);
    d.send(xml("message", { to: "bob@localhost", type: "chat" }, xml("body", {}, "from the device")));
    assert.deepEqual(await back, { resumed: true });
    await until("m2..m5", () => bodies.length >= 5);
    await b.nextStanza((s) => s.is("message") && s.getChildText("body") === "from the device");
    await pause(200);
    assert.deepEqual(bodies, ["m1", "m2", "m3", "m4", "m5"], "every message exactly once");
    assert.equal(relay.accepted, 2);
    await d.stop();
  });

  test("a connection that goes silent is noticed by the missing ack and replaced", async (t) => {
    const relay = await startTcpRelay({ port: broker.ports.c2s! });
    t.after(() => relay.close());
    const d = device({ port: relay.port, resource: "silent-net", keepaliveMs: 200, requestTimeoutMs: 800 });
    await d.start();
    const offline = new Promise<{ error?: Error }>((resolve) => d.once("offline", resolve));
    const back = onceOnline(d);
    relay.freeze();
    const { error } = await offline;
    assert.match(error?.message ?? "", /acknowledgement/);
    await back;
    const pong = await d.request(
      xml("iq", { type: "get", to: "localhost" }, xml("ping", { xmlns: "urn:xmpp:ping" })),
    );
    assert.equal(pong.attrs.type, "result");
    await d.stop();
  });

  test("stop() says goodbye and never reconnects", async () => {
    let connecting = 0;
    const d = device({ resource: "stopper", log: (_l, msg) => void (msg === "connecting" && connecting++) });
    await d.start();
    const offline = new Promise<{ error?: Error }>((resolve) => d.once("offline", resolve));
    await d.stop();
    assert.deepEqual(await offline, {});
    await pause(300);
    assert.equal(connecting, 1);
    assert.equal(broker.sessions.get("thing@localhost", "stopper"), undefined);
    await assert.rejects(d.start());
    d.send(xml("message", { to: "bob@localhost" })); // dropped with a warning, does not throw
  });

  test("a resource conflict surfaces an error and backs off instead of fighting", async () => {
    let connecting = 0;
    const d = device({
      resource: "contested",
      reconnect: { initialDelayMs: 50, maxDelayMs: 3000 },
      log: (_l, msg) => void (msg === "connecting" && connecting++),
    });
    await d.start();
    const error = new Promise<Error>((resolve) => d.once("error", resolve));
    const other = await loginTo(broker, "thing", "thing-pw", { resource: "contested" });
    others.push(other);
    assert.match((await error).message, /conflict/);
    await pause(1000);
    assert.equal(connecting, 1, "no reconnection within the long back-off");
    assert.equal(d.online, false);
    await d.stop();
  });

  test("registerAccount creates an account (open registration); a taken name is a conflict", async () => {
    const opts = {
      domain: "localhost",
      host: "127.0.0.1",
      port: broker.ports.c2s!,
      ca: broker.certificatePem,
    };
    const fill = (name: string) => (query: Element) => {
      assert.ok(query.getChild("username"), "the form asks for a user name");
      return xml(
        "query",
        { xmlns: "jabber:iq:register" },
        xml("username", {}, name),
        xml("password", {}, "new-pw"),
      );
    };
    await registerAccount(opts, fill("newthing"));
    const d = device({ username: "newthing", password: "new-pw" });
    await d.start();
    assert.equal(d.jid?.split("/")[0], "newthing@localhost");
    await d.stop();
    await assert.rejects(
      registerAccount(opts, fill("newthing")),
      (e: { condition?: string }) => e.condition === "conflict",
    );
  });
});
