/**
 * Which messages are carbon-copied, and what a copy looks like.
 * References: XEP-0280 §6 (eligibility), §7/§8 (the copy), §9 (<private/>), XEP-0334 §4.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Element } from "ltx";
import { carbonCopy, isEligible, NS_CARBONS, NS_FORWARD } from "./copies.ts";

function message(attrs: Record<string, string>, ...children: [string, string?][]): Element {
  const m = new Element("message", attrs);
  for (const [name, xmlns] of children) m.c(name, xmlns ? { xmlns } : {});
  return m;
}

test("XEP-0280 §6: chat, normal with a body, and IM payloads are eligible", () => {
  assert.equal(isEligible(message({ type: "chat" }), "received"), true);
  assert.equal(isEligible(message({}, ["body"]), "received"), true);
  assert.equal(isEligible(message({ type: "normal" }), "received"), false);
  assert.equal(isEligible(message({}, ["received", "urn:xmpp:receipts"]), "sent"), true);
  assert.equal(isEligible(message({}, ["displayed", "urn:xmpp:chat-markers:0"]), "sent"), true);
  assert.equal(isEligible(message({ type: "headline" }, ["body"]), "received"), false);
});

test("groupchat, errors, private, no-copy and copies are not eligible", () => {
  assert.equal(isEligible(message({ type: "groupchat" }, ["body"]), "received"), false);
  assert.equal(isEligible(message({ type: "error" }, ["body"]), "received"), false);
  assert.equal(isEligible(message({ type: "chat" }, ["private", NS_CARBONS]), "sent"), false);
  assert.equal(isEligible(message({ type: "chat" }, ["no-copy", "urn:xmpp:hints"]), "sent"), false);
  assert.equal(isEligible(message({ type: "chat" }, ["received", NS_CARBONS]), "received"), false);
});

test("MUC private messages: the user's own are copied, received ones are not", () => {
  const pm = message({ type: "chat" }, ["body"], ["x", "http://jabber.org/protocol/muc#user"]);
  assert.equal(isEligible(pm, "sent"), true);
  assert.equal(isEligible(pm, "received"), false);
});

test("a copy: from the bare JID, to the resource, the original forwarded in jabber:client", () => {
  const original = message({ type: "chat", from: "a@x/1", to: "b@x" }, ["body"]);
  const copy = carbonCopy("received", original, "b@x", "b@x/2");
  assert.deepEqual({ ...copy.attrs }, { from: "b@x", to: "b@x/2", type: "chat" });
  const inner = copy.getChild("received", NS_CARBONS)?.getChild("forwarded", NS_FORWARD)?.getChild("message");
  assert.equal(inner?.attrs.xmlns, "jabber:client");
  assert.equal(inner?.attrs.from, "a@x/1");
  assert.equal(original.attrs.xmlns, undefined, "the original is untouched");
});
