/**
 * The provisioning audit trail under pressure and over time: repeated identical decisions are
 * counted in one row (and the counts add up to the decisions made), a stranger who varies the
 * request cannot grow the trail without bound, an answer for a whole domain closes the other
 * callers' identical pending questions, answers and rule changes are stored before the owner is
 * told "done", and the retention job deletes old rows (and only it can) on both storage engines.
 * References: XEP-0324 §3.3 (canRead), docs/protocol/provisioning-questions.md §Audit trail,
 * §Answers; DESIGN.md §1.5 (the same SQL on both engines).
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { ping } from "../extensions/roster/testing.ts";
import { MAX_GROUPS_PER_THING } from "../provisioning/audit.ts";
import type { AuditRecord } from "../provisioning/store.ts";
import {
  answerByIq,
  answerForm,
  askCanReadField,
  isQuestion,
  modulesWithProvisioningProbe,
  type ProvisioningTestBed,
  questionFields,
  refused,
  startProvisioningTestBed,
  until,
} from "../provisioning/testing.ts";
import { startTestBroker } from "../server/testing/broker.ts";
import { loginTo, type TestClient } from "./support/xmpp-client.ts";

const PROV = "provisioning.localhost";

const canRead = (thing: TestClient, jid: string, field?: string) => askCanReadField(thing, PROV, jid, field);

const countOf = (rows: readonly AuditRecord[]) =>
  rows.reduce((sum, r) => sum + Number(r.detail.count ?? 0), 0);

describe("provisioning audit trail: coalescing, closing decided questions, synchronous rule changes", () => {
  let bed: ProvisioningTestBed;
  const probe = modulesWithProvisioningProbe();

  before(async () => {
    bed = await startProvisioningTestBed(["t1", "t2", "t3", "alice", "olivia"], {
      modules: probe.modules,
      // Batches are written only once a minute here, so rows seen at once were written at once.
      config: { modules: { provisioning: { audit_flush_interval: 60_000, max_pending_questions: 5 } } },
    });
  });
  after(() => bed?.stop());
  const login = (name: string) => bed.login(name);
  const claimedThing = (name: string, owner: TestClient) => bed.claimedThing(name, owner);
  /** What is in the table right now, without flushing the writer's buffer. */
  const storedActions = async (thing: string) =>
    (
      await bed.broker.storage.db<{ action: string }[]>`
        select action from prov_audit where thing = ${thing} order by id`
    ).map((r) => r.action);

  test("repeated identical denials are one row plus one counted row; the counts add up", async () => {
    const olivia = await login("olivia");
    const thing = await claimedThing("t1", olivia);
    const service = probe.service();
    for (let i = 0; i < 25; i++) {
      assert.equal((await canRead(thing.client, "mallory@evil.test")).attrs.result, "false");
    }
    assert.equal((await canRead(thing.client, "mallory@evil.test", "Humidity")).attrs.result, "false");
    const rows = await service.audit({ thing: "t1@localhost", limit: 1000 });
    const temperature = rows.filter(
      (r) => r.action === "decision-read" && JSON.stringify(r.detail.fields) === '["Temperature"]',
    );
    assert.equal(countOf(temperature), 25, "every decision is counted");
    assert.equal(temperature.length, 2, "the first decision, then one row for its 24 repeats");
    assert.deepEqual(
      temperature.map((r) => [r.caller, r.detail.outcome, r.detail.count, r.detail.repeated ?? false]),
      [
        ["mallory@evil.test", "deny", 1, false],
        ["mallory@evil.test", "deny", 24, true],
      ],
    );
    assert.ok(
      Date.parse(String(temperature[1]!.detail.firstAt)) <= Date.parse(String(temperature[1]!.detail.lastAt)),
    );
    const humidity = rows.filter(
      (r) => r.action === "decision-read" && JSON.stringify(r.detail.fields) === '["Humidity"]',
    );
    assert.equal(countOf(humidity), 1, "a different request is its own decision");
    // Asked once per different request, whatever the repetitions.
    assert.equal(rows.filter((r) => r.action === "question-asked").length, 2);
  });

  test("a stranger varying the request cannot grow the trail one row per request; counts stay right", async () => {
    const olivia = bed.clientOf("olivia")!;
    const thing = await claimedThing("t2", olivia);
    const requests = MAX_GROUPS_PER_THING + 60;
    for (let i = 0; i < requests; i++) {
      assert.equal((await canRead(thing.client, "mallory@evil.test", `F${i}`)).attrs.result, "false");
    }
    const rows = await probe.service().audit({ thing: "t2@localhost", limit: 1000 });
    const decisions = rows.filter((r) => r.action === "decision-read");
    assert.equal(countOf(decisions), requests, "every decision is counted");
    const dropped = rows.filter((r) => r.action === "question-dropped");
    assert.ok(countOf(dropped) > 0, "the owner's question quota was reached");
    assert.ok(
      rows.length < requests,
      `${rows.length} rows for ${requests} different requests (each also dropping a question)`,
    );
    assert.ok(
      decisions.some((r) => r.detail.repeated === true && r.caller === undefined),
      "an overflow row",
    );
  });

  test("an answer for the whole domain closes the other callers' identical questions and they are not asked again", async () => {
    const alice = await login("alice");
    const thing = await claimedThing("t3", alice);
    const question = () =>
      alice.nextStanza(
        (s) => isQuestion(s) && questionFields(s).get("thing")?.[0] === "t3@localhost",
        10_000,
      );
    assert.equal((await canRead(thing.client, "bob@example.org")).attrs.result, "false");
    const bobs = questionFields(await question());
    assert.equal((await canRead(thing.client, "carol@example.org")).attrs.result, "false");
    const carols = questionFields(await question());
    assert.equal((await canRead(thing.client, "dave@elsewhere.test")).attrs.result, "false");
    await question();
    assert.equal((await probe.service().pendingQuestions("alice@localhost")).length, 3);

    await answerByIq(alice, PROV, answerForm(bobs.get("key")![0]!, "allow", "domain"));
    const pending = await probe.service().pendingQuestions("alice@localhost");
    assert.deepEqual(
      pending.map((q) => q.caller),
      ["dave@elsewhere.test"],
      "carol's question is decided by the rule; dave's is not",
    );
    // Closing is audited at once, naming the rule that decided it.
    assert.ok((await storedActions("t3@localhost")).includes("question-closed"));
    const closed = (await probe.service().audit({ thing: "t3@localhost", limit: 1000 })).find(
      (r) => r.action === "question-closed",
    )!;
    assert.deepEqual(
      [closed.caller, closed.detail.key, closed.detail.outcome],
      ["carol@example.org", carols.get("key")![0], "allow"],
    );
    assert.equal((await canRead(thing.client, "carol@example.org")).attrs.result, "true");
    await ping(alice);
    assert.equal(alice.inbox.filter(isQuestion).length, 0, "carol's request is not asked again");
    // The closed question cannot be answered any more.
    await refused(
      answerByIq(alice, PROV, answerForm(carols.get("key")![0]!, "deny", "caller")),
      "item-not-found",
    );
  });

  test("answers and rule changes are in the audit table when the owner hears done", async () => {
    const alice = bed.clientOf("alice")!;
    const thing = bed.clientOf("t3")!;
    assert.equal((await canRead(thing, "erin@other.test", "Pressure")).attrs.result, "false");
    const q = questionFields(
      await alice.nextStanza(
        (s) => isQuestion(s) && questionFields(s).get("caller")?.[0] === "erin@other.test",
      ),
    );
    // The question is stored before the thing got its answer.
    const before = await storedActions("t3@localhost");
    assert.equal(before.filter((a) => a === "question-asked").length, 4);
    await answerByIq(alice, PROV, answerForm(q.get("key")![0]!, "deny", "caller"));
    const afterAnswer = await storedActions("t3@localhost");
    assert.ok(afterAnswer.slice(before.length).includes("answer"));
    assert.ok(afterAnswer.slice(before.length).includes("rule-added"));
    const rule = (await probe.service().listRules("alice@localhost", "t3@localhost")).find(
      (r) => r.subject === "erin@other.test",
    )!;
    await probe.service().deleteRule("alice@localhost", rule.id);
    assert.equal((await storedActions("t3@localhost")).at(-1), "rule-deleted");
  });
});

for (const engine of ["embedded", "postgres"] as const) {
  describe(`provisioning audit retention (${engine} engine)`, () => {
    test("the retention job deletes rows older than the retention and records it; nothing else can delete", async (t) => {
      const broker = await startTestBroker({
        engine,
        config: { modules: { provisioning: { audit_retention_days: 30, audit_prune_interval: 0.2 } } },
      });
      t.after(() => broker.stop());
      const db = broker.storage.db;
      const daysAgo = (days: number) => new Date(Date.now() - days * 86_400_000);
      await db`
        insert into prov_audit (at, actor, action, thing) values
          (${daysAgo(400)}, 'test', 'old-1', 'old@localhost'),
          (${daysAgo(31)}, 'test', 'old-2', 'old@localhost'),
          (${daysAgo(30.5)}, 'test', 'old-3', 'old@localhost'),
          (${daysAgo(29)}, 'test', 'kept', 'old@localhost')`;
      const pruned = await until("the retention job runs", async () => {
        const [row] = await db<{ detail: string }[]>`
          select detail from prov_audit where action = 'audit-pruned'`;
        return row ? (JSON.parse(row.detail) as Record<string, unknown>) : undefined;
      });
      assert.equal(pruned.deleted, 3);
      assert.equal(pruned.retentionDays, 30);
      const cutoff = Date.parse(String(pruned.before));
      assert.ok(Math.abs(cutoff - daysAgo(30).getTime()) < 60_000, `cut-off ${pruned.before}`);
      const left = await db<{ action: string }[]>`
        select action from prov_audit where thing = 'old@localhost' order by id`;
      assert.deepEqual(
        left.map((r) => r.action),
        ["kept"],
      );

      // Ordinary statements still cannot change the trail.
      await assert.rejects(db`delete from prov_audit where action = 'kept'`, /append-only/);
      await assert.rejects(db`update prov_audit set action = 'forged'`, /append-only/);
      await assert.rejects(db`truncate prov_audit`, /append-only/);
      // Nor can the prune path be abused for recent rows, by hand or through the function.
      await assert.rejects(
        db.begin(async (tx) => {
          await tx`select set_config('hanse.prov_audit_prune_before', ${new Date().toISOString()}, true)`;
          await tx`delete from prov_audit where action = 'kept'`;
        }),
        /append-only/,
      );
      await assert.rejects(db`select prov_audit_prune(now(), 100)`, /append-only/);
      const [kept] = await db<
        { n: number }[]
      >`select count(*)::int as n from prov_audit where action = 'kept'`;
      assert.equal(kept!.n, 1);
    });

    test("repeats are written as one counted row when their window ends, without anyone asking", async (t) => {
      const broker = await startTestBroker({
        engine,
        config: { modules: { provisioning: { audit_coalesce_window: 2 } } },
      });
      const clients: TestClient[] = [];
      t.after(async () => {
        await Promise.all(clients.map((c) => c.stop().catch(() => {})));
        await broker.stop();
      });
      await broker.addUser("t9", "t9-pw");
      const thing = await loginTo(broker, "t9", "t9-pw", { resource: "r1" });
      clients.push(thing);
      for (let i = 0; i < 5; i++) {
        assert.equal((await canRead(thing, "mallory@evil.test")).attrs.result, "false");
      }
      const counts = await until("the window closes and the repeats are written", async () => {
        const rows = await broker.storage.db<{ detail: string }[]>`
          select detail from prov_audit where thing = 't9@localhost' and action = 'decision-read' order by id`;
        const details = rows.map((r) => JSON.parse(r.detail) as Record<string, unknown>);
        return details.length === 2 ? details.map((d) => [d.count, d.repeated ?? false]) : undefined;
      });
      assert.deepEqual(counts, [
        [1, false],
        [4, true],
      ]);
    });
  });
}
