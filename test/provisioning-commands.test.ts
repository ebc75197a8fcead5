/**
 * The owner's ad-hoc commands on provisioning.<domain> from an independent client: the command
 * list, answering a pending question in two stages, listing and deleting rules, switching
 * broker-side enforcement, reading the audit trail; a stranger cannot touch the owner's things.
 * References: XEP-0050 §2.2, §2.4, §3.6; docs/protocol/provisioning-questions.md.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { fieldValues, listCommands, runCommand } from "../extensions/adhoc/testing.ts";
import { OWNER_COMMAND_NODES as NODES } from "../provisioning/owner-commands.ts";
import {
  actAsThing,
  askCanReadField,
  isQuestion,
  type ProvisioningTestBed,
  readout,
  refused,
  registerAndClaim,
  startProvisioningTestBed,
  until,
} from "../provisioning/testing.ts";
import { xml } from "./support/xmpp-client.ts";

const PROV = "provisioning.localhost";

describe("provisioning owner commands (XEP-0050)", () => {
  let bed: ProvisioningTestBed;
  before(async () => {
    bed = await startProvisioningTestBed(["t1", "alice", "bob"]);
  });
  after(() => bed?.stop());
  const login = (name: string) => bed.login(name);

  test("answer a question, list and delete rules, enforcement and audit, all by ad-hoc commands", async () => {
    const alice = await login("alice");
    const bob = await login("bob");
    const thing = actAsThing(await login("t1"), PROV);
    await registerAndClaim(thing, alice, "registry.localhost", "cmd-1");

    const commands = await listCommands(alice, PROV);
    for (const node of Object.values(NODES)) assert.ok(commands.has(node), `command ${node}`);

    const empty = await runCommand(alice, PROV, NODES.questions);
    assert.deepEqual(
      [empty.status, empty.notes[0]?.text],
      ["completed", "No questions are waiting for you."],
    );

    const canRead = () => askCanReadField(thing.client, PROV, "bob@localhost");
    assert.equal((await canRead()).attrs.result, "false");
    await alice.nextStanza(isQuestion, 10_000);

    // Stage 1: pick the question; stage 2: the answer form (the question's own fields).
    const pick = await runCommand(alice, PROV, NODES.questions);
    assert.equal(pick.status, "executing");
    const [key] = fieldValues(pick.form, "question");
    const form = await runCommand(alice, PROV, NODES.questions, {
      sessionid: pick.sessionid!,
      action: "next",
      fields: { question: key! },
    });
    assert.deepEqual(fieldValues(form.form, "fields"), ["Temperature"]);
    const done = await runCommand(alice, PROV, NODES.questions, {
      sessionid: form.sessionid!,
      action: "complete",
      fields: { decision: "allow", scope: "caller", duration: "always", fields: ["Temperature"] },
    });
    assert.equal(done.status, "completed");
    assert.match(
      done.notes[0]!.text,
      /Rule added: #\d+ t1@localhost: allow read for bob@localhost \(fields Temperature\)/,
    );
    await until("clearCache", () => thing.clearCaches.length > 0);
    assert.equal((await canRead()).attrs.result, "true");

    const listed = await runCommand(alice, PROV, NODES.rules);
    const rules = await runCommand(alice, PROV, NODES.rules, {
      sessionid: listed.sessionid!,
      action: "complete",
      fields: {},
    });
    assert.equal(fieldValues(rules.form, "rules").length, 1);
    // A stranger sees none of it, and cannot pick alice's thing.
    const bobList = await runCommand(bob, PROV, NODES.rules);
    const bobRules = await runCommand(bob, PROV, NODES.rules, {
      sessionid: bobList.sessionid!,
      action: "complete",
      fields: {},
    });
    assert.deepEqual(fieldValues(bobRules.form, "rules"), []);
    const bobEnf = await runCommand(bob, PROV, NODES.enforcement);
    assert.deepEqual([bobEnf.status, bobEnf.notes[0]?.text], ["completed", "You own no things."]);

    // Enforcement on: bob's readout of a field he may not read… he may read Temperature only, so
    // a readout of Humidity is refused by the broker.
    const enf = await runCommand(alice, PROV, NODES.enforcement);
    await runCommand(alice, PROV, NODES.enforcement, {
      sessionid: enf.sessionid!,
      action: "complete",
      fields: { thing: "t1@localhost", on: "true" },
    });
    const seen = thing.requests.length;
    await refused(readout(bob, "t1@localhost/r1", 1, [xml("field", { name: "Humidity" })]), "forbidden");
    assert.equal(thing.requests.length, seen, "the broker refused it");
    await readout(bob, "t1@localhost/r1", 2, [xml("field", { name: "Temperature" })]);

    const a0 = await runCommand(alice, PROV, NODES.audit);
    const a1 = await runCommand(alice, PROV, NODES.audit, {
      sessionid: a0.sessionid!,
      action: "complete",
      fields: { thing: "t1@localhost", limit: "100" },
    });
    const entries = fieldValues(a1.form, "entries").join("\n");
    for (const action of ["question-asked", "answer", "rule-added", "enforcement-on", "decision-read"]) {
      assert.match(entries, new RegExp(` ${action} `), `audit shows ${action}`);
    }

    const d0 = await runCommand(alice, PROV, NODES.deleteRules);
    const d1 = await runCommand(alice, PROV, NODES.deleteRules, {
      sessionid: d0.sessionid!,
      action: "complete",
      fields: { thing: "t1@localhost" },
    });
    assert.equal(d1.notes[0]?.text, "1 rules deleted.");
    await refused(readout(bob, "t1@localhost/r1", 3, [xml("field", { name: "Temperature" })]), "forbidden");
  });
});
