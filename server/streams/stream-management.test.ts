import assert from "node:assert/strict";
import { test } from "node:test";
import { Element } from "ltx";
import { parseH, SmState } from "./stream-management.ts";

const msg = (n: number) => new Element("message", { id: String(n) });

test("acks remove exactly the acknowledged stanzas, oldest first", () => {
  const sm = new SmState("id", true);
  for (let n = 1; n <= 5; n++) sm.sent(msg(n));
  assert.equal(sm.unackedCount, 5);
  assert.ok(sm.ack(2));
  assert.deepEqual(
    sm.pending().map((u) => u.stanza.attrs.id),
    ["3", "4", "5"],
  );
  assert.ok(sm.ack(2), "a repeated ack changes nothing");
  assert.equal(sm.unackedCount, 3);
  assert.ok(sm.ack(5));
  assert.equal(sm.unackedCount, 0);
});

test("acknowledging more than was sent is refused (XEP-0198 handled-count-too-high)", () => {
  const sm = new SmState("id", false);
  sm.sent(msg(1));
  assert.equal(sm.ack(2), false);
  assert.equal(sm.unackedCount, 1, "nothing was dropped");
  assert.equal(sm.ack(-1), false);
  assert.equal(sm.ack(1.5), false);
});

test("counters wrap at 2^32 (XEP-0198 §5)", () => {
  const sm = new SmState("id", true);
  // Pretend 2^32 - 2 stanzas were sent and acknowledged already.
  const near = 2 ** 32 - 2;
  (sm as unknown as { outbound: number; acked: number }).outbound = near;
  (sm as unknown as { outbound: number; acked: number }).acked = near;
  for (let n = 1; n <= 4; n++) sm.sent(msg(n));
  assert.equal(sm.sentCount, 2, "wrapped");
  assert.ok(sm.ack(0), "h=0 after the wrap acknowledges the two before it");
  assert.equal(sm.unackedCount, 2);
  assert.ok(sm.ack(2));
  assert.equal(sm.unackedCount, 0);
  sm.inbound = 2 ** 32 - 1;
  sm.received();
  assert.equal(sm.inbound, 0);
});

test("takeUnacked empties the queue for hand-over", () => {
  const sm = new SmState("id", true);
  sm.sent(msg(1));
  sm.sent(msg(2));
  assert.equal(sm.takeUnacked().length, 2);
  assert.equal(sm.unackedCount, 0);
});

test("h values are unsigned 32-bit decimals", () => {
  assert.equal(parseH("0"), 0);
  assert.equal(parseH("4294967295"), 4294967295);
  assert.equal(parseH("4294967296"), undefined);
  assert.equal(parseH("-1"), undefined);
  assert.equal(parseH("1e3"), undefined);
  assert.equal(parseH(undefined), undefined);
});
