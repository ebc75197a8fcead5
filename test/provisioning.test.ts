/**
 * The provisioning service end to end with independent clients (@xmpp/client): a claimed thing
 * that asks provisioning before it answers strangers, its owner who gets questions and answers
 * them, and strangers. Readout, control and friendship; narrowing; offline owner and offline
 * thing; forged and malformed answers; unclaimed things; broker-side enforcement.
 * References: XEP-0324 §3.1 (isFriend, friend), §3.3 (canRead), §3.4 (canControl), §3.5
 * (clearCache, also after the thing was offline); XEP-0347 §3.9 (claim); XEP-0160 (the question
 * waits offline); docs/protocol/provisioning-questions.md.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { ping } from "../extensions/roster/testing.ts";
import {
  actAsThing,
  answerByIq,
  answerForm,
  askProvisioning,
  isQuestion,
  modulesWithProvisioningProbe,
  NS_CTRL,
  NS_PROV,
  NS_XDATA,
  type ProvisioningTestBed,
  questionFields,
  readout,
  refused,
  registerAndClaim,
  startProvisioningTestBed,
  type TestThing,
  until,
} from "../provisioning/testing.ts";
import { type Element, type TestClient, xml } from "./support/xmpp-client.ts";

const PROV = "provisioning.localhost";
const REG = "registry.localhost";

describe("provisioning (XEP-0324)", () => {
  let bed: ProvisioningTestBed;
  const probe = modulesWithProvisioningProbe();
  const USERS = ["t1", "t2", "t3", "t4", "t5", "t6", "alice", "bob", "carol", "olivia"];

  before(async () => {
    bed = await startProvisioningTestBed(USERS, {
      modules: probe.modules,
      config: { modules: { provisioning: { clear_cache_timeout: 2, max_pending_questions: 20 } } },
    });
  });
  after(() => bed?.stop());
  const login = (name: string, opts?: { presence?: boolean }) => bed.login(name, opts);
  const claimedThing = (name: string, owner: TestClient) => bed.claimedThing(name, owner);

  const service = () => probe.service();
  /** The next question about `thing` (questions about other things stay in the inbox). */
  const question = (client: TestClient, thing: string) =>
    client.nextStanza((s) => isQuestion(s) && questionFields(s).get("thing")?.[0] === thing, 10_000);
  /** The thing asks whether bob may set its Output parameter (XEP-0324 §3.4). */
  const bobMayControlOutput = (thing: TestThing) =>
    askProvisioning(
      thing.client,
      PROV,
      xml("canControl", { xmlns: NS_PROV, jid: "bob@localhost" }, xml("parameter", { name: "Output" })),
    );
  const noQuestionYet = async (client: TestClient) => {
    await ping(client);
    assert.equal(client.inbox.filter(isQuestion).length, 0, "no (further) question");
  };
  /** Takes every question already received (ends a test's business with an owner). */
  const drainQuestions = async (client: TestClient) => {
    await ping(client);
    for (let i = client.inbox.findIndex(isQuestion); i >= 0; i = client.inbox.findIndex(isQuestion))
      client.inbox.splice(i, 1);
  };

  test("discovery: the service is an item of the domain with the provisioning feature", async () => {
    const bob = await login("bob");
    const items = await bob.iqCaller.get(
      xml("query", { xmlns: "http://jabber.org/protocol/disco#items" }),
      "localhost",
    );
    assert.ok(items!.getChildren("item").some((i) => i.attrs.jid === PROV));
    const info = await bob.iqCaller.get(
      xml("query", { xmlns: "http://jabber.org/protocol/disco#info" }),
      PROV,
    );
    assert.ok(info!.getChildren("feature").some((f) => f.attrs.var === NS_PROV));
  });

  test("readout: denied, question, the owner allows the caller's domain, clearCache, allowed without asking again", async () => {
    const alice = await login("alice");
    const thing = await claimedThing("t1", alice);
    const bob = bed.clientOf("bob") ?? (await login("bob"));

    await refused(readout(bob, "t1@localhost/r1", 1), "forbidden");
    const q = await question(alice, "t1@localhost");
    const fields = questionFields(q);
    assert.deepEqual(fields.get("thing"), ["t1@localhost"]);
    assert.deepEqual(fields.get("caller"), ["bob@localhost"]);
    assert.deepEqual(fields.get("kind"), ["read"]);
    assert.match(q.getChildText("body") ?? "", /bob@localhost asks to read t1@localhost/);

    // The same request again while the question is pending: denied, and not asked twice.
    await refused(readout(bob, "t1@localhost/r1", 2), "forbidden");
    await noQuestionYet(alice);

    const cleared = thing.clearCaches.length;
    await answerByIq(alice, PROV, answerForm(fields.get("key")![0]!, "allow", "domain"));
    await until("clearCache at the thing", () => thing.clearCaches.length > cleared);

    const asked = thing.asked.length;
    const result = await readout(bob, "t1@localhost/r1", 3);
    assert.equal(result.getChild("fields")!.getChildren("node").length, 2);
    assert.equal(thing.asked.length, asked + 1, "the thing asked again after clearCache");
    // Its domain is allowed: carol on the same domain reads without a new question.
    const carol = await login("carol");
    await readout(carol, "t1@localhost/r1", 4);
    await noQuestionYet(alice);

    const rules = await service().listRules("alice@localhost", "t1@localhost");
    assert.equal(rules.length, 1);
    assert.deepEqual(
      [rules[0]!.kind, rules[0]!.allow, rules[0]!.scope, rules[0]!.subject],
      ["read", true, "domain", "localhost"],
    );
  });

  test("control and narrowing: only the permitted nodes, fields and parameters are listed", async () => {
    const alice = bed.clientOf("alice")!;
    const thing = await claimedThing("t2", alice);
    const bob = bed.clientOf("bob")!;

    // Control: denied, question with the parameters, allowed for Output only.
    const set = (seq: string) =>
      bob.iqCaller.request(
        xml(
          "iq",
          { type: "set", to: "t2@localhost/r1", id: seq },
          xml(
            "set",
            { xmlns: NS_CTRL },
            xml("boolean", { name: "Output", value: "true" }),
            xml("int", { name: "Level", value: "3" }),
          ),
        ),
      );
    await refused(set("c1"), "forbidden");
    const cq = questionFields(await question(alice, "t2@localhost"));
    assert.deepEqual(cq.get("kind"), ["control"]);
    assert.deepEqual(cq.get("parameters"), ["Output", "Level"]);
    await answerByIq(
      alice,
      PROV,
      answerForm(cq.get("key")![0]!, "allow", "caller", { parameters: ["Output"] }),
    );
    await until("clearCache", () => thing.clearCaches.length > 0);
    const response = await set("c2");
    assert.deepEqual(
      response
        .getChild("setResponse", NS_CTRL)!
        .getChildren("parameter")
        .map((p) => p.attrs.name),
      ["Output"],
      "the caller learns that only Output was applied",
    );
    assert.deepEqual(thing.applied, { Output: "true" });

    // Readout narrowing, asked directly by the thing: nodes N1+N2, fields T+H → N1 and T only.
    const canRead = () =>
      askProvisioning(
        thing.client,
        PROV,
        xml(
          "canRead",
          { xmlns: NS_PROV, jid: "bob@localhost/phone", momentary: "true" },
          xml("node", { nodeId: "N1" }),
          xml("node", { nodeId: "N2" }),
          xml("field", { name: "Temperature" }),
          xml("field", { name: "Humidity" }),
        ),
      );
    assert.equal((await canRead()).attrs.result, "false");
    const rq = questionFields(await question(alice, "t2@localhost"));
    assert.deepEqual(rq.get("nodes"), ["N1", "N2"]);
    assert.deepEqual(rq.get("fields"), ["Temperature", "Humidity"]);
    await answerByIq(
      alice,
      PROV,
      answerForm(rq.get("key")![0]!, "allow", "caller", { nodes: ["N1"], fields: ["Temperature"] }),
    );
    const answer = await canRead();
    assert.equal(answer.attrs.result, "true");
    assert.equal(answer.attrs.jid, "bob@localhost/phone", "the jid is echoed as asked");
    assert.deepEqual(
      answer.getChildren("node").map((n) => n.attrs.nodeId),
      ["N1"],
    );
    assert.deepEqual(
      answer.getChildren("field").map((f) => f.attrs.name),
      ["Temperature"],
    );
    assert.equal(answer.attrs.momentary, "true");
  });

  test("friendship: isFriend denied, question, allowed for the caller, friend recommendation, then allowed", async () => {
    const alice = bed.clientOf("alice")!;
    const thing = await claimedThing("t3", alice);
    const isFriend = () =>
      askProvisioning(thing.client, PROV, xml("isFriend", { xmlns: NS_PROV, jid: "bob@localhost" }));
    const first = await isFriend();
    assert.deepEqual([first.name, first.attrs.result], ["isFriendResponse", "false"]);
    const fq = questionFields(await question(alice, "t3@localhost"));
    assert.deepEqual(fq.get("kind"), ["friend"]);
    await answerByIq(alice, PROV, answerForm(fq.get("key")![0]!, "allow", "caller"));
    await until("friend recommendation", () => thing.recommendations.length > 0);
    assert.deepEqual(
      [thing.recommendations[0]!.name, thing.recommendations[0]!.attrs.jid],
      ["friend", "bob@localhost"],
    );
    assert.equal((await isFriend()).attrs.result, "true");
    // The owner is always a friend; someone else is not.
    assert.equal(
      (await askProvisioning(thing.client, PROV, xml("isFriend", { xmlns: NS_PROV, jid: "alice@localhost" })))
        .attrs.result,
      "true",
    );
    assert.equal(
      (await askProvisioning(thing.client, PROV, xml("isFriend", { xmlns: NS_PROV, jid: "carol@localhost" })))
        .attrs.result,
      "false",
    );
    await question(alice, "t3@localhost"); // carol's question

    // Deleting the rule withdraws the friendship and clears the cache.
    const [rule] = await service().listRules("alice@localhost", "t3@localhost");
    await service().deleteRule("alice@localhost", rule!.id);
    await until("unfriend", () => thing.recommendations.some((r) => r.name === "unfriend"));
    assert.equal((await isFriend()).attrs.result, "false");
    await question(alice, "t3@localhost"); // asked again: the rule is gone
    await drainQuestions(alice);
  });

  test("the owner is offline: the question waits and arrives at login; an offline thing gets clearCache at its next login", async () => {
    const olivia = await login("olivia");
    const thing = await claimedThing("t4", olivia);
    await olivia.stop();
    const isFriend = () =>
      askProvisioning(thing.client, PROV, xml("isFriend", { xmlns: NS_PROV, jid: "carol@localhost" }));
    assert.equal((await isFriend()).attrs.result, "false");

    const back = await login("olivia");
    const fields = questionFields(await question(back, "t4@localhost"));
    assert.deepEqual(fields.get("caller"), ["carol@localhost"]);

    await thing.client.stop();
    await answerByIq(back, PROV, answerForm(fields.get("key")![0]!, "allow", "caller"));
    await until("the clearCache is owed", async () => {
      const rows = await bed.broker.storage
        .db`select thing from prov_pending_clear where thing = 't4@localhost'`;
      return rows.length > 0;
    });
    const again = actAsThing(await login("t4", { presence: false }), PROV);
    await again.client.send(xml("presence"));
    await until("clearCache at the next login", () => again.clearCaches.length > 0);
    assert.equal(
      (await askProvisioning(again.client, PROV, xml("isFriend", { xmlns: NS_PROV, jid: "carol@localhost" })))
        .attrs.result,
      "true",
    );
    const audit = await service().audit({ thing: "t4@localhost", limit: 100 });
    const actions = audit.map((a) => a.action);
    for (const action of [
      "question-asked",
      "answer",
      "rule-added",
      "clear-cache-deferred",
      "clear-cache-sent",
    ]) {
      assert.ok(actions.includes(action), `audit has ${action}: ${actions.join(", ")}`);
    }
  });

  test("forged and malformed answers change nothing and get errors (iq and message)", async () => {
    const alice = bed.clientOf("alice")!;
    const thing = await claimedThing("t5", alice);
    assert.equal((await bobMayControlOutput(thing)).attrs.result, "false");
    const key = questionFields(await question(alice, "t5@localhost")).get("key")![0]!;
    const bob = bed.clientOf("bob")!;
    await refused(answerByIq(bob, PROV, answerForm(key, "allow", "everyone")), "forbidden");
    await refused(answerByIq(alice, PROV, answerForm("no-such-key", "allow", "everyone")), "item-not-found");
    await refused(answerByIq(alice, PROV, answerForm(key, "allow", "galaxy" as "domain")), "bad-request");
    await refused(
      answerByIq(alice, PROV, answerForm(key, "allow", "caller", { parameters: ["SelfDestruct"] })),
      "bad-request",
    );
    await refused(
      answerByIq(alice, PROV, answerForm(key, "allow", "caller", { fields: ["Temperature"] })),
      "bad-request",
    );
    await refused(answerByIq(alice, PROV, xml("x", { xmlns: NS_XDATA, type: "submit" })), "bad-request");

    // The XEP-0004 way: a message with the submitted form; a forged one gets a message error.
    await bob.send(xml("message", { to: PROV, id: "forged" }, answerForm(key, "allow", "everyone")));
    const error = await bob.nextStanza((s: Element) => s.is("message") && s.attrs.type === "error", 10_000);
    assert.ok(error.getChild("error")?.getChild("forbidden"), error.toString());
    assert.deepEqual(await service().listRules("alice@localhost", "t5@localhost"), [], "no rule was made");
    assert.equal(
      (await service().pendingQuestions("alice@localhost")).filter((q) => q.key === key).length,
      1,
      "still pending",
    );

    // The real owner by message: a rule, and the question is gone.
    await alice.send(xml("message", { to: PROV }, answerForm(key, "deny", "caller")));
    await until(
      "the rule",
      async () => (await service().listRules("alice@localhost", "t5@localhost")).length === 1,
    );
    await refused(answerByIq(alice, PROV, answerForm(key, "allow", "caller")), "item-not-found");
    assert.equal((await bobMayControlOutput(thing)).attrs.result, "false");
    await noQuestionYet(alice);
  });

  test("unclaimed things are denied by operator policy, without questions", async () => {
    const t6 = await login("t6");
    const answer = await askProvisioning(
      t6,
      PROV,
      xml("canRead", { xmlns: NS_PROV, jid: "bob@localhost", all: "true" }),
    );
    assert.equal(answer.attrs.result, "false");
    const audit = await service().audit({ thing: "t6@localhost", limit: 10 });
    assert.match(String(audit.at(-1)?.detail.why), /unclaimed thing: operator policy deny/);
  });

  test("broker-side enforcement: a denied readout is answered forbidden by the broker; an allowed one reaches the device untouched", async () => {
    const alice = bed.clientOf("alice")!;
    const thing = actAsThing(await login("t6"), PROV);
    await registerAndClaim(thing, alice, REG, "sn-t6-enforced");
    await service().setEnforcement("alice@localhost", "t6@localhost", true);
    await refused(service().setEnforcement("bob@localhost", "t6@localhost", true), "item-not-found");

    const bob = bed.clientOf("bob")!;
    const before = thing.requests.length;
    await refused(readout(bob, "t6@localhost/r1", 10), "forbidden");
    assert.equal(thing.requests.length, before, "the device never saw the request");
    const key = questionFields(await question(alice, "t6@localhost")).get("key")![0]!;
    await answerByIq(alice, PROV, answerForm(key, "allow", "caller"));
    await readout(bob, "t6@localhost/r1", 11);
    assert.equal(thing.requests.length, before + 1, "the allowed request reached the device");
    assert.equal(thing.requests.at(-1)!.getChild("req")!.attrs.seqnr, "11", "untouched");
    // The owner is never stopped by the broker.
    await readout(alice, "t6@localhost/r1", 12);
    await service().setEnforcement("alice@localhost", "t6@localhost", false);
  });
});
