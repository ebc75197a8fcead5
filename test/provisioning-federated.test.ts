/**
 * An owner on another Hanse broker: the question travels over s2s to the owner's broker, the
 * owner answers over s2s (by iq and by message), and the thing gets its clearCache and the new
 * decision. A stranger on the owner's domain is then allowed by a domain rule.
 * References: XEP-0324 §3.3, §3.5; XEP-0347 §3.9 (claim over s2s); RFC 6120 §10.4 (remote
 * routing); XEP-0220 (dialback between the brokers).
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import {
  actAsThing,
  answerByIq,
  answerForm,
  isQuestion,
  modulesWithProvisioningProbe,
  questionFields,
  readout,
  refused,
  registerAndClaim,
  until,
} from "../provisioning/testing.ts";
import { startTestBroker, type TestBroker } from "../server/testing/broker.ts";
import { loginTo, type TestClient, xml } from "./support/xmpp-client.ts";

const HOST = "127.0.0.1";
const PROV = "provisioning.a.test";

describe("provisioning with the owner on another broker (over s2s)", () => {
  let a: TestBroker;
  let b: TestBroker;
  const probe = modulesWithProvisioningProbe();
  const clients: TestClient[] = [];

  before(async () => {
    const s2s = { s2s: { connect_timeout: 5, max_retry_delay: 1 } };
    a = await startTestBroker({ domain: "a.test", config: s2s, modules: probe.modules });
    b = await startTestBroker({ domain: "b.test", config: s2s });
    for (const domain of [a.domain, `registry.${a.domain}`, PROV])
      b.s2s.setRoute(domain, `${HOST}:${a.ports.s2s}`);
    a.s2s.setRoute(b.domain, `${HOST}:${b.ports.s2s}`);
    await a.addUser("t1", "t1-pw");
    await b.addUser("olga", "olga-pw");
    await b.addUser("sam", "sam-pw");
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.stop().catch(() => {})));
    await Promise.all([a?.stop(), b?.stop()]);
  });

  async function login(broker: TestBroker, username: string): Promise<TestClient> {
    const client = await loginTo(broker, username, `${username}-pw`, { resource: "r1" });
    clients.push(client);
    client.iqCallee.set("jabber:iq:roster", "query", () => ({}));
    await client.send(xml("presence"));
    return client;
  }

  test("question over s2s, answer over s2s, clearCache, then allowed", async () => {
    const olga = await login(b, "olga");
    const thing = actAsThing(await login(a, "t1"), PROV);
    await registerAndClaim(thing, olga, "registry.a.test", "fed-prov-1");
    const sam = await login(b, "sam");

    await refused(readout(sam, "t1@a.test/r1", 1, [], 30_000), "forbidden");
    const q = await olga.nextStanza(isQuestion, 30_000);
    assert.equal(q.attrs.from, PROV);
    const fields = questionFields(q);
    assert.deepEqual(fields.get("caller"), ["sam@b.test"]);

    // A stranger on the owner's broker cannot answer it, even over s2s.
    await refused(
      answerByIq(sam, PROV, answerForm(fields.get("key")![0]!, "allow", "everyone")),
      "forbidden",
    );

    await answerByIq(olga, PROV, answerForm(fields.get("key")![0]!, "allow", "domain"));
    await until("clearCache", () => thing.clearCaches.length > 0, 20_000);
    const result = await readout(sam, "t1@a.test/r1", 2, [], 30_000);
    assert.ok(result.getChild("fields"));
    const rules = await probe.service().listRules("olga@b.test");
    assert.deepEqual(
      rules.map((r) => [r.thing, r.scope, r.subject]),
      [["t1@a.test", "domain", "b.test"]],
    );

    // The XEP-0004 way over s2s: a message answering a control question.
    await refused(
      sam.iqCaller.request(
        xml(
          "iq",
          { type: "set", to: "t1@a.test/r1" },
          xml("set", { xmlns: "urn:xmpp:iot:control" }, xml("boolean", { name: "Output", value: "true" })),
        ),
      ),
      "forbidden",
    );
    const cq = questionFields(await olga.nextStanza(isQuestion, 30_000));
    assert.deepEqual(cq.get("kind"), ["control"]);
    const cleared = thing.clearCaches.length;
    await olga.send(xml("message", { to: PROV }, answerForm(cq.get("key")![0]!, "allow", "caller")));
    await until(
      "the control rule",
      async () => (await probe.service().listRules("olga@b.test")).length === 2,
      20_000,
    );
    // The thing caches answers until it is told otherwise (XEP-0324 §3.5).
    await until("clearCache after the control rule", () => thing.clearCaches.length > cleared, 20_000);
    await sam.iqCaller.request(
      xml(
        "iq",
        { type: "set", to: "t1@a.test/r1" },
        xml("set", { xmlns: "urn:xmpp:iot:control" }, xml("boolean", { name: "Output", value: "true" })),
      ),
    );
    assert.deepEqual(thing.applied, { Output: "true" });
  });
});
