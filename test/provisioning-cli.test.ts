/**
 * `hanse provisioning audit` against a running `hanse start` process (embedded engine: through
 * the broker's database socket): JSON lines with who, what, when and why, filtered by thing, and
 * clear usage errors.
 * References: docs/protocol/provisioning-questions.md §Audit trail; README (operator CLI).
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { NS_PROV } from "../provisioning/testing.ts";
import { startBrokerProcess, writePasswordFile } from "./support/broker-process.ts";
import { xml } from "./support/xmpp-client.ts";

describe("hanse provisioning audit", () => {
  test("prints the trail as JSON lines, filtered, and refuses bad options", async (t) => {
    const broker = await startBrokerProcess();
    t.after(() => broker.kill9());
    for (const name of ["t1", "t2"]) {
      const r = await broker.cli([
        "user",
        "add",
        `${name}@localhost`,
        "--password-file",
        writePasswordFile(`${name}-pw`),
      ]);
      assert.equal(r.code, 0, r.stderr);
    }
    for (const name of ["t1", "t2"]) {
      const thing = await broker.login(name, `${name}-pw`);
      const result = await thing.iqCaller.request(
        xml(
          "iq",
          { type: "get", to: "provisioning.localhost" },
          xml("canRead", { xmlns: NS_PROV, jid: "bob@localhost" }),
        ),
      );
      assert.equal(result.getChildElements()[0]?.attrs.result, "false");
      await thing.stop();
    }
    // Audit rows are written in batches (200 ms by default); wait for them rather than guess.
    let lines: Record<string, unknown>[] = [];
    for (let i = 0; i < 50 && lines.length === 0; i++) {
      const r = await broker.cli(["provisioning", "audit", "--thing", "t1@localhost", "--limit", "10"]);
      assert.equal(r.code, 0, r.stderr);
      lines = r.stdout
        .split("\n")
        .filter((l) => l)
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      if (lines.length === 0) await new Promise((res) => setTimeout(res, 100));
    }
    assert.equal(lines.length, 1, JSON.stringify(lines));
    const entry = lines[0]!;
    assert.deepEqual(
      [entry.actor, entry.action, entry.thing, entry.caller],
      ["t1@localhost", "decision-read", "t1@localhost", "bob@localhost"],
    );
    assert.match(String((entry.detail as { why: string }).why), /unclaimed/);
    assert.ok(!Number.isNaN(Date.parse(String(entry.at))));

    const all = await broker.cli(["provisioning", "audit", "--since", "2000-01-01T00:00:00Z"]);
    assert.equal(all.stdout.trim().split("\n").length, 2);
    const bad = await broker.cli(["provisioning", "audit", "--limit", "lots"]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--limit lots is not a positive whole number/);
    const wrong = await broker.cli(["provisioning", "purge"]);
    assert.equal(wrong.code, 2);
  });
});
