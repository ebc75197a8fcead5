/**
 * XEP-0191 §6 JID matching, on its own.
 * References: XEP-0191 §6 (JID matching, as XEP-0016 §2.1).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { parseJid } from "../../server/jid.ts";
import { matches } from "./blocklist.ts";

const blocks = (items: string[], peer: string) => matches(new Set(items), parseJid(peer));

test("user@domain/resource matches only that resource", () => {
  assert.equal(blocks(["a@x.example/r"], "a@x.example/r"), true);
  assert.equal(blocks(["a@x.example/r"], "a@x.example/other"), false);
  assert.equal(blocks(["a@x.example/r"], "a@x.example"), false);
});

test("user@domain matches any resource of it", () => {
  assert.equal(blocks(["a@x.example"], "a@x.example"), true);
  assert.equal(blocks(["a@x.example"], "a@x.example/r"), true);
  assert.equal(blocks(["a@x.example"], "b@x.example/r"), false);
  assert.equal(blocks(["a@x.example"], "x.example"), false);
});

test("domain/resource matches only that JID", () => {
  assert.equal(blocks(["x.example/r"], "x.example/r"), true);
  assert.equal(blocks(["x.example/r"], "a@x.example/r"), false);
  assert.equal(blocks(["x.example/r"], "x.example"), false);
});

test("domain matches itself, everyone at it, and its subdomains", () => {
  for (const peer of [
    "x.example",
    "x.example/r",
    "a@x.example",
    "a@x.example/r",
    "muc.x.example",
    "a@b.c.x.example/r",
  ]) {
    assert.equal(blocks(["x.example"], peer), true, peer);
  }
  for (const peer of ["y.example", "ax.example", "a@example"]) {
    assert.equal(blocks(["x.example"], peer), false, peer);
  }
});

test("an empty list matches nothing", () => {
  assert.equal(blocks([], "a@x.example/r"), false);
});
