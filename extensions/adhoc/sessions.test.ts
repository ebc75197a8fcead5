/**
 * Command sessions on their own, with a clock the test moves: ownership by full JID, expiry after
 * inactivity, the per-requester and total limits, and ended ids answering session-expired.
 * References: XEP-0050 §3.3 (session lifetime), §4.4 (bad-sessionid, session-expired).
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { parseJid } from "../../server/jid.ts";
import type { StanzaError } from "../../server/xml/errors.ts";
import { CommandSessions, type SessionLimits } from "./sessions.ts";

const LIMITS: SessionLimits = { ttlMs: 1000, maxPerJid: 2, maxTotal: 3, maxEnded: 2 };
const phone = parseJid("alice@example.org/phone");
const laptop = parseJid("alice@example.org/laptop");
const bob = parseJid("bob@example.org/desk");

function clock() {
  let now = 0;
  return {
    now: () => now,
    advance(ms: number) {
      now += ms;
    },
  };
}

/** The general and XEP-0050 specific condition of a thrown StanzaError. */
function conditions(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    const e = err as StanzaError;
    return `${e.condition}/${e.appElement?.name ?? ""}`;
  }
  return "no error";
}

describe("ad-hoc command sessions", () => {
  test("a session continues only for the full JID that started it, on its node", () => {
    const sessions = new CommandSessions(LIMITS);
    const s = sessions.start(phone, "config", "en");
    assert.equal(sessions.resume(s.id, phone, "config"), s);
    assert.equal(
      conditions(() => sessions.resume(s.id, laptop, "config")),
      "bad-request/bad-sessionid",
    );
    assert.equal(
      conditions(() => sessions.resume(s.id, bob, "config")),
      "bad-request/bad-sessionid",
    );
    assert.equal(
      conditions(() => sessions.resume(s.id, phone, "other")),
      "bad-request/bad-sessionid",
    );
    assert.equal(
      conditions(() => sessions.resume("made-up", phone, "config")),
      "bad-request/bad-sessionid",
    );
  });

  test("ids are unique and unguessable", () => {
    const sessions = new CommandSessions({ ...LIMITS, maxPerJid: 100, maxTotal: 100 });
    const ids = new Set(Array.from({ length: 50 }, () => sessions.start(phone, "n", undefined).id));
    assert.equal(ids.size, 50);
    for (const id of ids) assert.ok(id.length >= 20);
  });

  test("inactivity ends a session; use keeps it alive; the owner then hears session-expired", () => {
    const c = clock();
    const sessions = new CommandSessions(LIMITS, c.now);
    const s = sessions.start(phone, "config", undefined);
    c.advance(900);
    sessions.resume(s.id, phone, "config"); // activity restarts the clock
    c.advance(900);
    assert.equal(sessions.resume(s.id, phone, "config"), s);
    c.advance(1000);
    assert.equal(
      conditions(() => sessions.resume(s.id, phone, "config")),
      "not-allowed/session-expired",
    );
    // Someone else learns nothing about it.
    assert.equal(
      conditions(() => sessions.resume(s.id, bob, "config")),
      "bad-request/bad-sessionid",
    );
    assert.equal(sessions.size, 0);
  });

  test("sweep frees lapsed sessions nobody comes back to", () => {
    const c = clock();
    const sessions = new CommandSessions(LIMITS, c.now);
    sessions.start(phone, "a", undefined);
    sessions.start(bob, "a", undefined);
    c.advance(1000);
    sessions.sweep();
    assert.equal(sessions.size, 0);
  });

  test("one requester past its limit loses its oldest session, not someone else's", () => {
    const sessions = new CommandSessions(LIMITS);
    const other = sessions.start(bob, "a", undefined);
    const first = sessions.start(phone, "a", undefined);
    const second = sessions.start(laptop, "a", undefined); // same bare JID
    sessions.start(phone, "a", undefined);
    assert.equal(
      conditions(() => sessions.resume(first.id, phone, "a")),
      "not-allowed/session-expired",
    );
    assert.equal(sessions.resume(second.id, laptop, "a"), second);
    assert.equal(sessions.resume(other.id, bob, "a"), other);
  });

  test("beyond the total limit new sessions are refused with resource-constraint", () => {
    const sessions = new CommandSessions({ ...LIMITS, maxPerJid: 1 });
    sessions.start(phone, "a", undefined);
    sessions.start(bob, "a", undefined);
    sessions.start(parseJid("carol@example.org/x"), "a", undefined);
    assert.equal(
      conditions(() => sessions.start(parseJid("dave@example.org/x"), "a", undefined)),
      "resource-constraint/",
    );
  });

  test("ended ids are remembered up to a bound, then forgotten (bad-sessionid)", () => {
    const sessions = new CommandSessions({ ...LIMITS, maxPerJid: 10, maxTotal: 10 });
    const [a, b, c] = [1, 2, 3].map(() => sessions.start(phone, "n", undefined));
    for (const s of [a!, b!, c!]) sessions.end(s.id);
    assert.equal(
      conditions(() => sessions.resume(a!.id, phone, "n")),
      "bad-request/bad-sessionid",
    );
    assert.equal(
      conditions(() => sessions.resume(c!.id, phone, "n")),
      "not-allowed/session-expired",
    );
  });
});
