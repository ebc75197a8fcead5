/**
 * The checks every request handler of a thing shares: who sent a stanza (bare, case-insensitive),
 * whether it comes from the one service trusted to send it, and what a provisioning decision lets
 * a caller reach (forbidden, or the requested nodes narrowed to those allowed).
 * References: RFC 7622 §3.2–§3.3; XEP-0324 §3.1, §3.4 (narrowing: an empty list allows everything
 * asked for); XEP-0323 §3.7 and XEP-0325 §3.2 (forbidden).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Element } from "ltx";
import { StanzaError } from "../../server/xml/errors.ts";
import { allowedNodes, requireAllowed } from "./decisions.ts";
import { bareJid, isFrom, senderOf } from "./sender.ts";

const iqFrom = (from?: string) =>
  new Element("iq", from === undefined ? { type: "set" } : { type: "set", from });

const condition = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    return err instanceof StanzaError ? `${err.condition}: ${err.text}` : String(err);
  }
  return undefined;
};

test("the sender is the bare JID, compared without regard to case", () => {
  assert.equal(bareJid("Olga@LocalHost/phone"), "olga@localhost");
  assert.equal(senderOf(iqFrom("provisioning.localhost")), "provisioning.localhost");
  assert.equal(senderOf(iqFrom()), "");
});

test("only the trusted service passes isFrom; nobody does when there is none", () => {
  assert.equal(isFrom(iqFrom("Provisioning.localhost/x"), "provisioning.localhost"), true);
  assert.equal(isFrom(iqFrom("mallory@localhost/provisioning.localhost"), "provisioning.localhost"), false);
  assert.equal(isFrom(iqFrom(), "provisioning.localhost"), false, "no from is not the service");
  assert.equal(isFrom(iqFrom("provisioning.localhost"), undefined), false);
  assert.equal(isFrom(iqFrom(), ""), false, "an empty service name trusts nobody");
});

test("a refused decision is forbidden, naming what was refused", () => {
  assert.equal(
    condition(() => requireAllowed({ allowed: false }, "read")),
    "forbidden: not allowed to read this thing",
  );
  assert.equal(
    condition(() => requireAllowed({ allowed: true }, "control")),
    undefined,
  );
});

test("the requested nodes are narrowed to those the decision allows; none allowed is forbidden", () => {
  const kitchen = { nodeId: "Kitchen" };
  const hall = { nodeId: "Hall", sourceId: "MeteringTopology" };
  // An empty list on either side: everything that was asked for.
  assert.deepEqual(allowedNodes([kitchen, hall], [], "read"), [kitchen, hall]);
  assert.deepEqual(allowedNodes([], [kitchen], "read"), []);
  // The triple identifies a node (XEP-0326 §3.1): a different source is a different node.
  assert.deepEqual(allowedNodes([kitchen, hall], [hall], "control"), [hall]);
  assert.equal(
    condition(() => allowedNodes([kitchen], [{ nodeId: "Kitchen", sourceId: "Other" }], "control")),
    "forbidden: not allowed to control these nodes",
  );
});
