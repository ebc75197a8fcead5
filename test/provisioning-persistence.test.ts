/**
 * Rules, pending questions, enforcement flags and the audit trail survive a restart, on both
 * storage engines; the audit trail refuses changes.
 * References: XEP-0324 §3.3 (decisions from stored rules), docs/protocol/provisioning-questions.md
 * (audit trail: append-only), DESIGN.md §1.5 (the same SQL on both engines).
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  actAsThing,
  answerByIq,
  answerForm,
  askCanReadField,
  isQuestion,
  modulesWithProvisioningProbe,
  questionFields,
  readout,
  refused,
  registerAndClaim,
  testLogins,
} from "../provisioning/testing.ts";
import { startTestBroker, type TestBroker } from "../server/testing/broker.ts";
import { type TestClient, xml } from "./support/xmpp-client.ts";

const PROV = "provisioning.localhost";

for (const engine of ["embedded", "postgres"] as const) {
  describe(`provisioning persistence (${engine} engine)`, () => {
    test("rules, questions, enforcement and the audit trail survive a restart", async (t) => {
      let probe = modulesWithProvisioningProbe();
      let broker: TestBroker = await startTestBroker({ engine, modules: probe.modules });
      // The logins follow the broker across the restart below.
      const logins = testLogins(() => broker);
      t.after(async () => {
        await logins.stopClients();
        await broker.stop();
      });
      for (const name of ["t1", "alice", "bob", "carol"]) await broker.addUser(name, `${name}-pw`);
      const login = (name: string, presence = true) => logins.login(name, { presence });
      const canRead = (thing: TestClient, jid: string) => askCanReadField(thing, PROV, jid);

      const alice = await login("alice");
      const thing = actAsThing(await login("t1"), PROV);
      await registerAndClaim(thing, alice, "registry.localhost", "persist-1");
      assert.equal((await canRead(thing.client, "bob@localhost")).attrs.result, "false");
      const q1 = questionFields(await alice.nextStanza(isQuestion, 10_000));
      await answerByIq(alice, PROV, answerForm(q1.get("key")![0]!, "allow", "caller"));
      assert.equal((await canRead(thing.client, "carol@localhost")).attrs.result, "false");
      const q2 = questionFields(await alice.nextStanza(isQuestion, 10_000)); // left unanswered
      await probe.service().setEnforcement("alice@localhost", "t1@localhost", true);
      const auditBefore = await probe.service().audit({ thing: "t1@localhost", limit: 1000 });
      assert.ok(auditBefore.length >= 4, `audit so far: ${auditBefore.map((a) => a.action).join(", ")}`);

      // The trail is append-only, whatever the SQL.
      await assert.rejects(broker.storage.db`update prov_audit set action = 'forged'`, /append-only/);
      await assert.rejects(broker.storage.db`delete from prov_audit`, /append-only/);

      await logins.stopClients();
      const storage = { data_dir: broker.config.data_dir, database: broker.config.database };
      await broker.stop();
      probe = modulesWithProvisioningProbe();
      broker = await startTestBroker({ engine, modules: probe.modules, reuse: storage });

      const service = probe.service();
      const rules = await service.listRules("alice@localhost", "t1@localhost");
      assert.equal(rules.length, 1);
      assert.deepEqual(
        [rules[0]!.subject, rules[0]!.allow, rules[0]!.fieldNames],
        ["bob@localhost", true, null],
      );
      const auditAfter = await service.audit({ thing: "t1@localhost", limit: 1000 });
      assert.deepEqual(
        auditAfter.slice(0, auditBefore.length).map((a) => [a.id, a.action]),
        auditBefore.map((a) => [a.id, a.action]),
      );
      assert.equal((await service.pendingQuestions("alice@localhost")).length, 1);

      const thing2 = actAsThing(await login("t1", false), PROV);
      thing2.owner = "alice@localhost";
      await thing2.client.send(xml("presence"));
      assert.equal(
        (await canRead(thing2.client, "bob@localhost")).attrs.result,
        "true",
        "decided from the stored rule",
      );
      // The pending question is still answerable after the restart.
      const alice2 = await login("alice");
      await answerByIq(alice2, PROV, answerForm(q2.get("key")![0]!, "deny", "caller"));
      assert.equal((await canRead(thing2.client, "carol@localhost")).attrs.result, "false");
      // Enforcement is still on: carol's readout is refused by the broker.
      const carol = await login("carol");
      const seen = thing2.requests.length;
      await refused(readout(carol, "t1@localhost/r1", 1), "forbidden");
      assert.equal(thing2.requests.length, seen);
    });
  });
}
