/**
 * Rule evaluation without a broker: scope precedence, deny beats allow at the same level,
 * narrowing of nodes, fields, categories and parameters, once-rules reported for consumption.
 * References: XEP-0324 §3.3–§3.4 (narrowing), docs/protocol/provisioning-questions.md §Rules.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { type AccessRequest, evaluate, nodeKey, type Rule, requestDigest } from "./rules.ts";

let nextId = 1;
function rule(partial: Partial<Rule>): Rule {
  return {
    id: nextId++,
    thing: "t@x",
    owner: "o@x",
    kind: "read",
    allow: true,
    scope: "everyone",
    subject: "",
    nodes: null,
    fieldNames: null,
    categories: null,
    parameterNames: null,
    once: false,
    origin: "test",
    createdAt: new Date(0),
    ...partial,
  };
}

const read = (partial: Partial<AccessRequest> = {}): AccessRequest => ({
  kind: "read",
  caller: "bob@y.test",
  nodes: [],
  fieldNames: [],
  categories: [],
  parameterNames: [],
  ...partial,
});

describe("rule evaluation", () => {
  test("no rule for the caller: unknown", () => {
    assert.equal(evaluate([], read()).outcome, "unknown");
    assert.equal(evaluate([rule({ scope: "caller", subject: "eve@y.test" })], read()).outcome, "unknown");
    assert.equal(evaluate([rule({ kind: "control" })], read()).outcome, "unknown");
  });

  test("the most specific scope wins: caller over domain over everyone", () => {
    const everyone = rule({ allow: true });
    const domain = rule({ allow: false, scope: "domain", subject: "y.test" });
    const caller = rule({ allow: true, scope: "caller", subject: "bob@y.test" });
    assert.equal(evaluate([everyone, domain], read()).outcome, "deny");
    assert.equal(evaluate([everyone, domain, caller], read()).outcome, "allow");
    assert.equal(evaluate([everyone, domain, caller], read({ caller: "eve@y.test" })).outcome, "deny");
    assert.equal(evaluate([everyone, domain, caller], read({ caller: "eve@z.test" })).outcome, "allow");
  });

  test("deny beats allow at the same level", () => {
    const verdict = evaluate([rule({ allow: true }), rule({ allow: false })], read());
    assert.equal(verdict.outcome, "deny");
  });

  test("narrowing: nodes, fields and categories permitted by the rules, minus denied items", () => {
    const rules = [
      rule({ nodes: [{ nodeId: "N1" }], fieldNames: ["T", "H"], categories: ["momentary"] }),
      rule({ allow: false, fieldNames: ["H"] }),
    ];
    const v = evaluate(
      rules,
      read({ nodes: [{ nodeId: "N1" }, { nodeId: "N2" }], fieldNames: ["T", "H", "P"] }),
    );
    assert.equal(v.outcome, "allow");
    assert.deepEqual(v.nodes, [{ nodeId: "N1" }]);
    assert.deepEqual(v.fieldNames, ["T"]);
    assert.deepEqual(v.categories, ["momentary"]);
    // The whole device asked for: the permitted nodes and fields are listed.
    const whole = evaluate(rules, read());
    assert.deepEqual([whole.nodes, whole.fieldNames], [[{ nodeId: "N1" }], ["T"]]);
    // Nothing of what was asked is permitted: deny.
    assert.equal(evaluate(rules, read({ nodes: [{ nodeId: "N2" }] })).outcome, "deny");
    assert.equal(evaluate(rules, read({ fieldNames: ["H"] })).outcome, "deny");
  });

  test("everything allowed: empty lists (XEP-0324: all that was asked)", () => {
    const v = evaluate([rule({})], read({ categories: ["momentary", "peak"] }));
    assert.deepEqual(
      [v.outcome, v.nodes, v.fieldNames, v.categories],
      ["allow", [], [], ["momentary", "peak"]],
    );
    assert.deepEqual(evaluate([rule({})], read()).categories, []);
  });

  test("control narrows parameters; once-rules are reported for consumption", () => {
    const once = rule({
      kind: "control",
      parameterNames: ["Output"],
      once: true,
      scope: "caller",
      subject: "bob@y.test",
    });
    const v = evaluate([once], { ...read(), kind: "control", parameterNames: ["Output", "Level"] });
    assert.deepEqual([v.outcome, v.parameterNames, v.onceRuleIds], ["allow", ["Output"], [once.id]]);
  });

  test("friendship and request digests", () => {
    const friend = rule({ kind: "friend", scope: "domain", subject: "y.test" });
    assert.equal(evaluate([friend], { ...read(), kind: "friend" }).outcome, "allow");
    const a = requestDigest(read({ fieldNames: ["A", "B"], nodes: [{ nodeId: "N/1", sourceId: "S" }] }));
    const b = requestDigest(
      read({ fieldNames: ["B", "A"], nodes: [{ nodeId: "N/1", sourceId: "S", cacheType: "" }] }),
    );
    assert.equal(a, b, "order and absent attributes do not matter");
    assert.equal(nodeKey({ nodeId: "N/1" }), "N%2F1");
    assert.equal(nodeKey({ nodeId: "N1", sourceId: "S" }), "S//N1");
  });
});
