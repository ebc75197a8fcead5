/**
 * The presence subscription state machine, as pure functions: a roster item's state and one
 * subscription stanza in, the new state and what the server must do out. No I/O, so every row of
 * the RFC's tables is a unit test (subscription-state.test.ts).
 *
 * "The user" is the local account that owns the roster item; "the contact" is the item's JID.
 * Outbound = a stanza the user sends to the contact; inbound = one the contact sends to the user.
 *
 * References: RFC 6121 §3.1.2-§3.1.6 (request and approval), §3.2 (cancelling), §3.3
 * (unsubscribing), §3.4 (pre-approval), Appendix A (the state chart: A.1 defined states, A.2
 * outbound and A.3 inbound processing tables), §2.1.2.1/§2.1.2.2/§2.1.2.5 (approved, ask and
 * subscription attributes).
 */

/** RFC 6121 §2.1.2.5: the 'subscription' attribute of a roster item. */
export type Subscription = "none" | "to" | "from" | "both";

/** RFC 6121 §3: the presence types that manage subscriptions. */
export type SubscriptionType = "subscribe" | "subscribed" | "unsubscribe" | "unsubscribed";

export const SUBSCRIPTION_TYPES: ReadonlySet<string> = new Set<SubscriptionType>([
  "subscribe",
  "subscribed",
  "unsubscribe",
  "unsubscribed",
]);

/**
 * RFC 6121 Appendix A.1: one of the nine defined states, plus the pre-approval flag of §3.4.
 * Invariants: pendingOut only with none/from, pendingIn only with none/to, approved only without
 * from and without pendingIn (the functions below keep them).
 */
export interface SubscriptionState {
  readonly subscription: Subscription;
  /** "Pending Out": the user asked and the contact has not answered (ask='subscribe', §2.1.2.2). */
  readonly pendingOut: boolean;
  /** "Pending In": the contact asked and the user has not answered (stored, §3.1.3). */
  readonly pendingIn: boolean;
  /** §3.4: the user pre-approved a request from the contact (approved='true', §2.1.2.1). */
  readonly approved: boolean;
}

export const NO_SUBSCRIPTION: SubscriptionState = {
  subscription: "none",
  pendingOut: false,
  pendingIn: false,
  approved: false,
};

export function hasTo(s: Subscription): boolean {
  return s === "to" || s === "both";
}

export function hasFrom(s: Subscription): boolean {
  return s === "from" || s === "both";
}

function subscription(to: boolean, from: boolean): Subscription {
  if (to) return from ? "both" : "to";
  return from ? "from" : "none";
}

function state(to: boolean, from: boolean, pendingOut: boolean, pendingIn: boolean, approved: boolean) {
  return { subscription: subscription(to, from), pendingOut, pendingIn, approved };
}

/** The attributes a client sees in its roster (pending-in is not one of them): push when they change. */
export function visibleChange(a: SubscriptionState, b: SubscriptionState): boolean {
  return a.subscription !== b.subscription || a.pendingOut !== b.pendingOut || a.approved !== b.approved;
}

export function sameState(a: SubscriptionState, b: SubscriptionState): boolean {
  return !visibleChange(a, b) && a.pendingIn === b.pendingIn;
}

/** Whether a state holds anything worth a database row (the rest is "None" with no flags). */
export function isEmptyState(s: SubscriptionState): boolean {
  return sameState(s, NO_SUBSCRIPTION);
}

export interface OutboundOutcome {
  readonly state: SubscriptionState;
  /** Send the stanza on to the contact (RFC 6121 A.2 "ROUTE?"). */
  readonly route: boolean;
  /** A roster push to the user's interested resources (§3.1.2, §3.1.5, §3.2.2, §3.3.2, §3.4.2). */
  readonly push: boolean;
  /** §3.1.5: after approving, send the user's current presence from each available resource. */
  readonly sendPresence: boolean;
  /** §3.2.2: before cancelling, send unavailable presence from each available resource. */
  readonly sendUnavailable: boolean;
}

/** RFC 6121 A.2: the user's server processing a subscription stanza the user sends. */
export function outbound(before: SubscriptionState, type: SubscriptionType): OutboundOutcome {
  const to = hasTo(before.subscription);
  const from = hasFrom(before.subscription);
  const { pendingOut, pendingIn, approved } = before;
  let after: SubscriptionState = before;
  let route = true;
  let sendPresence = false;
  let sendUnavailable = false;
  switch (type) {
    case "subscribe":
      // A.2.1 / §3.1.2: always routed (the contact's server auto-replies if already subscribed);
      // None -> None + Pending Out, None + Pending In -> None + Pending Out/In, From -> From + Pending Out.
      if (!to) after = state(false, from, true, pendingIn, approved);
      break;
    case "unsubscribe":
      // A.2.2 / §3.3.2: always routed; the user's half ("to" and "Pending Out") ends.
      after = state(false, from, false, pendingIn, approved);
      break;
    case "subscribed":
      if (pendingIn) {
        // A.2.3 / §3.1.5: approval of a pending request.
        after = state(to, true, pendingOut, false, false);
        sendPresence = true;
      } else if (from) {
        // §3.4.2 rule 1: already subscribed, nothing to approve or pre-approve.
        route = false;
      } else {
        // §3.4.2 rules 3-4: None, None + Pending Out or To: note the pre-approval, do not route.
        after = state(to, false, pendingOut, false, true);
        route = false;
      }
      break;
    case "unsubscribed":
      if (from || pendingIn) {
        // A.2.4 / §3.2.2: cancel the contact's subscription or deny its request.
        after = state(to, false, pendingOut, false, false);
        sendUnavailable = from;
      } else {
        // A.2.4 "no" rows; an unsubscribed here withdraws a pre-approval (§3.4), if any.
        after = state(to, false, pendingOut, false, false);
        route = false;
      }
      break;
  }
  return { state: after, route, push: visibleChange(before, after), sendPresence, sendUnavailable };
}

export interface InboundOutcome {
  readonly state: SubscriptionState;
  /** Deliver the stanza to the user's available resources (RFC 6121 A.3 "DELIVER?"). */
  readonly deliver: boolean;
  /** A roster push to the user's interested resources. */
  readonly push: boolean;
  /** An answer the user's server sends for the user without asking it (§3.1.3, §3.4). */
  readonly reply: "subscribed" | undefined;
  /** After an automatic approval: the user's current presence goes to the contact (§3.1.5). */
  readonly sendPresence: boolean;
  /** §3.3.3: the contact is no longer subscribed: unavailable from each available resource. */
  readonly sendUnavailable: boolean;
}

/** RFC 6121 A.3: the user's server processing a subscription stanza the contact sent. */
export function inbound(before: SubscriptionState, type: SubscriptionType): InboundOutcome {
  const to = hasTo(before.subscription);
  const from = hasFrom(before.subscription);
  const { pendingOut, pendingIn, approved } = before;
  let after: SubscriptionState = before;
  let deliver = false;
  let reply: "subscribed" | undefined;
  let sendPresence = false;
  let sendUnavailable = false;
  switch (type) {
    case "subscribe":
      if (from) {
        // A.3.1 rows marked "*" / §3.1.3 rule 1: already subscribed: auto-reply, do not deliver.
        reply = "subscribed";
        sendPresence = true;
      } else if (approved) {
        // §3.4 / §3.1.3: pre-approved: approve on the user's behalf, do not deliver. The flag is
        // used up: a later cancelled subscription needs a new approval.
        after = state(to, true, pendingOut, false, false);
        reply = "subscribed";
        sendPresence = true;
      } else if (!pendingIn) {
        // A.3.1: None -> None + Pending In, None + Pending Out -> None + Pending Out/In, To -> To + Pending In.
        after = state(to, false, pendingOut, true, false);
        deliver = true;
      }
      // Already pending: no state change, not delivered again (A.3.1); it is still redelivered
      // at every initial presence until answered (§3.1.3).
      break;
    case "unsubscribe":
      if (from || pendingIn) {
        // A.3.2 / §3.3.3: the contact's subscription (or its request) ends.
        after = state(to, false, pendingOut, false, approved);
        deliver = true;
        sendUnavailable = from;
      }
      break;
    case "subscribed":
      if (pendingOut && !to) {
        // A.3.3 / §3.1.6: our request was approved.
        after = state(true, from, false, pendingIn, approved);
        deliver = true;
      }
      break;
    case "unsubscribed":
      if (to || pendingOut) {
        // A.3.4 / §3.2.3: our subscription (or request) was cancelled or denied. A pre-approval
        // is not touched (§4.3.2 rule 1).
        after = state(false, from, false, pendingIn, approved);
        deliver = true;
      }
      break;
  }
  return { state: after, deliver, push: visibleChange(before, after), reply, sendPresence, sendUnavailable };
}
