/**
 * The subscription state machine against RFC 6121 Appendix A, row by row: state × stanza → new
 * state, route/deliver, roster push, and the extra duties (auto-reply, presence, unavailable).
 * Plus pre-approval (§3.4), which the appendix tables leave out.
 * References: RFC 6121 Appendix A.1 (states), A.2.1-A.2.4 (outbound), A.3.1-A.3.4 (inbound), §3.4.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  inbound,
  NO_SUBSCRIPTION,
  outbound,
  type SubscriptionState,
  type SubscriptionType,
} from "./subscription-state.ts";

/** RFC 6121 A.1: the nine defined states, by the names the tables use. */
const STATES = {
  None: { subscription: "none", pendingOut: false, pendingIn: false },
  "None + Pending Out": { subscription: "none", pendingOut: true, pendingIn: false },
  "None + Pending In": { subscription: "none", pendingOut: false, pendingIn: true },
  "None + Pending Out/In": { subscription: "none", pendingOut: true, pendingIn: true },
  To: { subscription: "to", pendingOut: false, pendingIn: false },
  "To + Pending In": { subscription: "to", pendingOut: false, pendingIn: true },
  From: { subscription: "from", pendingOut: false, pendingIn: false },
  "From + Pending Out": { subscription: "from", pendingOut: true, pendingIn: false },
  Both: { subscription: "both", pendingOut: false, pendingIn: false },
} as const;
type StateName = keyof typeof STATES;

function named(name: StateName, approved = false): SubscriptionState {
  return { ...STATES[name], approved };
}

function nameOf(s: SubscriptionState): string {
  const found = (Object.keys(STATES) as StateName[]).find((n) => {
    const d = STATES[n];
    return d.subscription === s.subscription && d.pendingOut === s.pendingOut && d.pendingIn === s.pendingIn;
  });
  return `${found ?? JSON.stringify(s)}${s.approved ? " (approved)" : ""}`;
}

/** A table row: existing state, route/deliver?, new state ("=" for "no state change"). */
type Row = readonly [StateName, boolean, StateName | "="];

// The roster push follows from the table: visible attributes (subscription, ask) changed.
function pushExpected(from: StateName, to: StateName | "="): boolean {
  if (to === "=") return false;
  const a = STATES[from];
  const b = STATES[to];
  return a.subscription !== b.subscription || a.pendingOut !== b.pendingOut;
}

function checkTable(
  direction: "outbound" | "inbound",
  type: SubscriptionType,
  rows: readonly Row[],
  extra: (before: StateName) => Record<string, unknown> = () => ({}),
): void {
  for (const [before, passes, after] of rows) {
    test(`${direction} ${type}: ${before} → ${after === "=" ? "no change" : after}`, () => {
      const s = named(before);
      const result = direction === "outbound" ? outbound(s, type) : inbound(s, type);
      assert.equal(nameOf(result.state), after === "=" ? before : after);
      const passed = "route" in result ? result.route : result.deliver;
      assert.equal(passed, passes, direction === "outbound" ? "ROUTE?" : "DELIVER?");
      assert.equal(result.push, pushExpected(before, after), "roster push");
      for (const [key, value] of Object.entries(extra(before))) {
        assert.deepEqual((result as unknown as Record<string, unknown>)[key], value, key);
      }
    });
  }
}

const hadFrom = (s: StateName) => STATES[s].subscription === "from" || STATES[s].subscription === "both";

describe("RFC 6121 A.2: outbound subscription stanzas (the user's server)", () => {
  // A.2.1: subscribe is always routed.
  checkTable("outbound", "subscribe", [
    ["None", true, "None + Pending Out"],
    ["None + Pending Out", true, "="],
    ["None + Pending In", true, "None + Pending Out/In"],
    ["None + Pending Out/In", true, "="],
    ["To", true, "="],
    ["To + Pending In", true, "="],
    ["From", true, "From + Pending Out"],
    ["From + Pending Out", true, "="],
    ["Both", true, "="],
  ]);
  // A.2.2: unsubscribe is always routed.
  checkTable("outbound", "unsubscribe", [
    ["None", true, "="],
    ["None + Pending Out", true, "None"],
    ["None + Pending In", true, "="],
    ["None + Pending Out/In", true, "None + Pending In"],
    ["To", true, "None"],
    ["To + Pending In", true, "None + Pending In"],
    ["From", true, "="],
    ["From + Pending Out", true, "From"],
    ["Both", true, "From"],
  ]);
  // A.2.3 (without pre-approval: the "no" rows without "from" become pre-approvals, tested below).
  checkTable(
    "outbound",
    "subscribed",
    [
      ["None + Pending In", true, "From"],
      ["None + Pending Out/In", true, "From + Pending Out"],
      ["To + Pending In", true, "Both"],
      ["From", false, "="],
      ["From + Pending Out", false, "="],
      ["Both", false, "="],
    ],
    (before) => ({ sendPresence: STATES[before].pendingIn }),
  );
  // A.2.4: §3.2.2 unavailable presence goes out first wherever the contact had "from".
  checkTable(
    "outbound",
    "unsubscribed",
    [
      ["None", false, "="],
      ["None + Pending Out", false, "="],
      ["None + Pending In", true, "None"],
      ["None + Pending Out/In", true, "None + Pending Out"],
      ["To", false, "="],
      ["To + Pending In", true, "To"],
      ["From", true, "None"],
      ["From + Pending Out", true, "None + Pending Out"],
      ["Both", true, "To"],
    ],
    (before) => ({ sendUnavailable: hadFrom(before) }),
  );
});

describe("RFC 6121 A.3: inbound subscription stanzas (the contact's server)", () => {
  // A.3.1: "*" rows: the server auto-replies subscribed.
  checkTable(
    "inbound",
    "subscribe",
    [
      ["None", true, "None + Pending In"],
      ["None + Pending Out", true, "None + Pending Out/In"],
      ["None + Pending In", false, "="],
      ["None + Pending Out/In", false, "="],
      ["To", true, "To + Pending In"],
      ["To + Pending In", false, "="],
      ["From", false, "="],
      ["From + Pending Out", false, "="],
      ["Both", false, "="],
    ],
    (before) => ({ reply: hadFrom(before) ? "subscribed" : undefined }),
  );
  // A.3.2: "*" rows: the contact's server sends unavailable from the available resources.
  checkTable(
    "inbound",
    "unsubscribe",
    [
      ["None", false, "="],
      ["None + Pending Out", false, "="],
      ["None + Pending In", true, "None"],
      ["None + Pending Out/In", true, "None + Pending Out"],
      ["To", false, "="],
      ["To + Pending In", true, "To"],
      ["From", true, "None"],
      ["From + Pending Out", true, "None + Pending Out"],
      ["Both", true, "To"],
    ],
    (before) => ({ sendUnavailable: hadFrom(before), reply: undefined }),
  );
  checkTable("inbound", "subscribed", [
    ["None", false, "="],
    ["None + Pending Out", true, "To"],
    ["None + Pending In", false, "="],
    ["None + Pending Out/In", true, "To + Pending In"],
    ["To", false, "="],
    ["To + Pending In", false, "="],
    ["From", false, "="],
    ["From + Pending Out", true, "Both"],
    ["Both", false, "="],
  ]);
  checkTable("inbound", "unsubscribed", [
    ["None", false, "="],
    ["None + Pending Out", true, "None"],
    ["None + Pending In", false, "="],
    ["None + Pending Out/In", true, "None + Pending In"],
    ["To", true, "None"],
    ["To + Pending In", true, "None + Pending In"],
    ["From", false, "="],
    ["From + Pending Out", true, "From"],
    ["Both", true, "From"],
  ]);
});

describe("RFC 6121 §3.4: pre-approval", () => {
  // §3.4.2 rules 3 and 4: None, None + Pending Out, To (and no item = None): note, push, do not route.
  for (const before of ["None", "None + Pending Out", "To"] as const) {
    test(`outbound subscribed in ${before} pre-approves without routing`, () => {
      const r = outbound(named(before), "subscribed");
      assert.equal(nameOf(r.state), `${before} (approved)`);
      assert.equal(r.route, false);
      assert.equal(r.push, true, "approved='true' is pushed");
      assert.equal(r.sendPresence, false);
    });
    test(`inbound subscribe in ${before} (approved) is approved for the user, not delivered`, () => {
      const r = inbound(named(before, true), "subscribe");
      const expected = { None: "From", "None + Pending Out": "From + Pending Out", To: "Both" }[before];
      assert.equal(nameOf(r.state), expected, "the flag is used up");
      assert.equal(r.deliver, false);
      assert.equal(r.reply, "subscribed");
      assert.equal(r.sendPresence, true);
      assert.equal(r.push, true);
    });
    test(`outbound unsubscribed in ${before} (approved) withdraws the pre-approval`, () => {
      const r = outbound(named(before, true), "unsubscribed");
      assert.equal(nameOf(r.state), before);
      assert.equal(r.route, false);
      assert.equal(r.push, true);
    });
  }

  test("a second outbound subscribed keeps the pre-approval and pushes nothing", () => {
    const r = outbound(named("None", true), "subscribed");
    assert.equal(nameOf(r.state), "None (approved)");
    assert.equal(r.push, false);
  });

  test("inbound unsubscribed does not cancel a pre-approval (§4.3.2 rule 1)", () => {
    const r = inbound(named("To", true), "unsubscribed");
    assert.equal(nameOf(r.state), "None (approved)");
  });

  test("an approval of a pending request never leaves the flag set", () => {
    for (const before of ["None + Pending In", "To + Pending In", "None + Pending Out/In"] as const) {
      assert.equal(outbound(named(before), "subscribed").state.approved, false);
    }
  });
});

describe("invariants over every state, flag and stanza", () => {
  const types: SubscriptionType[] = ["subscribe", "subscribed", "unsubscribe", "unsubscribed"];
  const all: SubscriptionState[] = [];
  for (const name of Object.keys(STATES) as StateName[]) {
    all.push(named(name));
    const s = STATES[name];
    if (s.subscription !== "from" && s.subscription !== "both" && !s.pendingIn) all.push(named(name, true));
  }

  test("results are always one of the defined states (A.1) with a legal approved flag", () => {
    for (const s of all) {
      for (const type of types) {
        for (const r of [outbound(s, type), inbound(s, type)]) {
          const { subscription, pendingOut, pendingIn, approved } = r.state;
          const to = subscription === "to" || subscription === "both";
          const from = subscription === "from" || subscription === "both";
          assert.ok(!(pendingOut && to), `${nameOf(s)} ${type}: Pending Out only without "to"`);
          assert.ok(!(pendingIn && from), `${nameOf(s)} ${type}: Pending In only without "from"`);
          assert.ok(!(approved && (from || pendingIn)), `${nameOf(s)} ${type}: approved only before "from"`);
        }
      }
    }
  });

  test("no push without a visible change, and a push for every visible change", () => {
    for (const s of all) {
      for (const type of types) {
        for (const r of [outbound(s, type), inbound(s, type)]) {
          const visible =
            r.state.subscription !== s.subscription ||
            r.state.pendingOut !== s.pendingOut ||
            r.state.approved !== s.approved;
          assert.equal(r.push, visible, `${nameOf(s)} ${type}`);
        }
      }
    }
  });

  test("a stanza from nowhere changes nothing: no item behaves as None", () => {
    assert.deepEqual(inbound(NO_SUBSCRIPTION, "unsubscribed").state, NO_SUBSCRIPTION);
    assert.equal(inbound(NO_SUBSCRIPTION, "subscribed").deliver, false);
  });
});
