/**
 * Rosters, presence subscriptions and availability between real clients (@xmpp/client) on one
 * broker: every subscription state, requests to offline contacts, pre-approval, removal, pushes
 * to every interested resource, presence on login, logout and dropped connections, directed
 * presence, and the limits.
 * References: RFC 6121 §2 (roster), §3 (subscriptions), §4 (presence), Appendix A; XEP-0237.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import {
  assertItem,
  type Connect,
  getRoster,
  isPresence,
  isPush,
  type LoginOptions,
  loginAs,
  NS_ROSTER,
  nextPush,
  pause,
  ping,
  presenceFrom,
  pushShowing,
  rosterItem,
  setItem,
} from "../extensions/roster/testing.ts";
import { startTestBroker, type TestBroker } from "../server/testing/broker.ts";
import { type Element, loginTo, type TestClient, xml } from "./support/xmpp-client.ts";

const condition = (err: unknown) => (err as { condition?: string }).condition;

describe("rosters and presence", () => {
  let broker: TestBroker;
  const clients: TestClient[] = [];
  const USERS = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy"];

  before(async () => {
    broker = await startTestBroker({
      config: {
        modules: {
          roster: { max_items: 6, max_name_length: 20, max_group_length: 10, max_groups_per_item: 3 },
          presence: { max_pending_requests: 2, broadcast_burst: 3, broadcast_rate: 4 },
        },
      },
    });
    for (const name of USERS) await broker.addUser(name, `${name}-pw`);
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.stop().catch(() => {})));
    await broker.stop();
  });

  const connect: Connect = async (username, resource) => {
    const client = await loginTo(broker, username, `${username}-pw`, resource ? { resource } : {});
    clients.push(client);
    return client;
  };
  const login = (username: string, opts?: LoginOptions) => loginAs(connect, username, opts);
  const full = (c: TestClient) => c.jid!.toString();
  const send = (c: TestClient, type: string, to: string) => c.send(xml("presence", { type, to }));

  test("roster set, get and remove; versions; pushes reach every interested resource", async () => {
    const a1 = await login("alice", { resource: "one" });
    const a2 = await login("alice", { resource: "two" });
    const a3 = await login("alice", { resource: "three", roster: false });
    const first = await getRoster(a1, "");
    assert.ok(first, "a roster result");
    const ver0 = first.attrs.ver;
    assert.ok(ver0 !== undefined, "a version when asked with ver");

    await setItem(a1, { jid: "bob@localhost", name: "Bob" }, ["Friends", "Work"]);
    for (const c of [a1, a2]) {
      const push = await c.nextStanza(isPush("bob@localhost"));
      const item = push.getChild("query", NS_ROSTER)!.getChild("item")!;
      assert.equal(item.attrs.name, "Bob");
      assert.equal(item.attrs.subscription, "none");
      assert.deepEqual(
        item.getChildren("group").map((g) => g.text()),
        ["Friends", "Work"],
      );
    }
    await ping(a3);
    await pause(50);
    assert.ok(!a3.inbox.some(isPush()), "a resource that never asked for the roster gets no push");

    // XEP-0237 / RFC 6121 §2.6.3: a current version gets an empty result, an old one the roster.
    const now = await getRoster(a1, "");
    const ver1 = now!.attrs.ver!;
    assert.notEqual(ver1, ver0);
    assert.equal(await getRoster(a1, ver1), undefined, "empty result for the current version");
    const full1 = await getRoster(a1, ver0);
    assert.deepEqual(
      full1!.getChildren("item").map((i) => i.attrs.jid),
      ["bob@localhost"],
    );

    // RFC 6121 §2.4: an update is pushed (with the new version to versioned resources).
    await setItem(a2, { jid: "bob@localhost", name: "Bobby" });
    const push = await a1.nextStanza(isPush("bob@localhost"));
    assert.equal(push.getChild("query", NS_ROSTER)!.attrs.ver !== ver1, true);
    assert.equal(push.getChild("query", NS_ROSTER)!.getChild("item")!.attrs.name, "Bobby");
    await a2.nextStanza(isPush("bob@localhost"));

    // RFC 6121 §2.5: removal, pushed as subscription='remove'.
    await setItem(a1, { jid: "bob@localhost", subscription: "remove" });
    for (const c of [a1, a2]) {
      assert.equal((await nextPush(c, "bob@localhost")).attrs.subscription, "remove");
    }
    assert.equal(await rosterItem(a1, "bob@localhost"), undefined);
    await Promise.all([a1.stop(), a2.stop(), a3.stop()]);
  });

  test("RFC 6121 §2.3.3, §2.5.3: roster set errors and the roster size limit", async () => {
    const carol = await login("carol", { presence: false });
    const rejects = async (request: Promise<unknown>, expected: string) =>
      assert.rejects(request, (err) => {
        assert.equal(condition(err), expected, String(err));
        return true;
      });
    const two = xml(
      "iq",
      { type: "set" },
      xml(
        "query",
        { xmlns: NS_ROSTER },
        xml("item", { jid: "x@localhost" }),
        xml("item", { jid: "y@localhost" }),
      ),
    );
    await rejects(carol.iqCaller.request(two), "bad-request");
    await rejects(setItem(carol, { jid: "x@localhost" }, ["a", "a"]), "bad-request");
    await rejects(setItem(carol, { jid: "x@localhost" }, [""]), "not-acceptable");
    await rejects(setItem(carol, { jid: "x@localhost" }, ["much-too-long-group"]), "not-acceptable");
    await rejects(setItem(carol, { jid: "x@localhost" }, ["a", "b", "c", "d"]), "not-acceptable");
    await rejects(
      setItem(carol, { jid: "x@localhost", name: "a name longer than twenty" }),
      "not-acceptable",
    );
    await rejects(setItem(carol, { jid: "x@@localhost" }), "jid-malformed");
    await rejects(setItem(carol, { name: "no jid" }), "bad-request");
    await rejects(setItem(carol, { jid: "carol@localhost" }), "not-allowed");
    await rejects(setItem(carol, { jid: "nobody@localhost", subscription: "remove" }), "item-not-found");

    // max_items = 6: the seventh is refused, updating an existing one is still fine.
    for (let i = 1; i <= 6; i++) await setItem(carol, { jid: `c${i}@example.net` });
    await rejects(setItem(carol, { jid: "c7@example.net" }), "not-allowed");
    await setItem(carol, { jid: "c6@example.net", name: "six" });
    // ... and a subscription request that would add one bounces to the sending resource.
    await send(carol, "subscribe", "c7@example.net");
    const error = await carol.nextStanza((s) => s.is("presence") && s.attrs.type === "error");
    assert.ok(error.getChild("error")?.getChild("not-allowed"));
    for (let i = 1; i <= 6; i++) await setItem(carol, { jid: `c${i}@example.net`, subscription: "remove" });
    await carol.stop();
  });

  test("a subscription through every state between two online users (RFC 6121 §3, Appendix A)", async () => {
    const alice = await login("alice");
    const bob = await login("bob");
    const A = "alice@localhost";
    const B = "bob@localhost";

    // §3.1.2: alice asks: None -> None + Pending Out on her side, pushed with ask='subscribe'.
    await send(alice, "subscribe", B);
    assertItem(await nextPush(alice, B), { subscription: "none", ask: "subscribe" });
    // §3.1.3: bob's resources get the request, from alice's bare JID; no item for bob yet.
    const request = await bob.nextStanza((s) => s.is("presence") && s.attrs.type === "subscribe");
    assert.equal(request.attrs.from, A);
    assert.equal(await rosterItem(bob, A), undefined, "a pending request is not a roster item");

    // §3.1.5: bob approves: From for bob (a new item), alice gets subscribed, To, and bob's presence.
    await send(bob, "subscribed", A);
    assertItem(await nextPush(bob, A), { subscription: "from" });
    assert.equal((await presenceFrom(alice, B, "subscribed")).attrs.to, A);
    assertItem(await nextPush(alice, B), { subscription: "to" });
    await presenceFrom(alice, full(bob));

    // A duplicate request is answered by bob's server without bothering bob (§3.1.3 rule 1); the
    // subscribed reply changes nothing for alice (A.3.3 "To": not delivered), bob's presence follows.
    await send(alice, "subscribe", B);
    await presenceFrom(alice, full(bob));
    await ping(bob);
    await pause(50);
    assert.ok(!bob.inbox.some((s) => s.attrs.type === "subscribe"), "no second request delivered");

    // Now the other way: Both.
    await send(bob, "subscribe", A);
    assertItem(await nextPush(bob, A), { subscription: "from", ask: "subscribe" });
    await presenceFrom(alice, B, "subscribe");
    await send(alice, "subscribed", B);
    assertItem(await nextPush(alice, B), { subscription: "both" });
    assertItem(await nextPush(bob, A), { subscription: "both" });
    await presenceFrom(bob, full(alice));

    // §4.4: a subsequent broadcast reaches the subscriber.
    await alice.send(xml("presence", {}, xml("show", {}, "away"), xml("status", {}, "out")));
    const away = await bob.nextStanza(
      (s) => isPresence(full(alice))(s) && s.getChildText("status") === "out",
    );
    assert.equal(away.getChildText("show"), "away");

    // §3.3: alice unsubscribes from bob: alice From, bob To; alice sees bob unavailable (§3.3.3).
    await send(alice, "unsubscribe", B);
    assertItem(await nextPush(alice, B), { subscription: "from" });
    await presenceFrom(bob, A, "unsubscribe");
    assertItem(await nextPush(bob, A), { subscription: "to" });
    await presenceFrom(alice, full(bob), "unavailable");

    // §3.2: alice cancels bob's subscription: bob sees her go unavailable first, then None.
    await send(alice, "unsubscribed", B);
    assertItem(await nextPush(alice, B), { subscription: "none" });
    const unavailable = await presenceFrom(bob, full(alice), "unavailable");
    const cancelled = await presenceFrom(bob, A, "unsubscribed");
    assert.ok(bob.inbox.indexOf(unavailable) <= bob.inbox.indexOf(cancelled), "unavailable first");
    assertItem(await nextPush(bob, A), { subscription: "none" });

    // Denying a request: bob asks, alice says no: bob back to None.
    await send(bob, "subscribe", A);
    assertItem(await nextPush(bob, A), { subscription: "none", ask: "subscribe" });
    await presenceFrom(alice, B, "subscribe");
    await send(alice, "unsubscribed", B);
    await presenceFrom(bob, A, "unsubscribed");
    assertItem(await nextPush(bob, A), { subscription: "none" });

    // Cancelling one's own pending request (§3.3 from None + Pending Out).
    await send(bob, "subscribe", A);
    assertItem(await nextPush(bob, A), { subscription: "none", ask: "subscribe" });
    await presenceFrom(alice, B, "subscribe");
    await send(bob, "unsubscribe", A);
    assertItem(await nextPush(bob, A), { subscription: "none" });
    await presenceFrom(alice, B, "unsubscribe");

    for (const [c, jid] of [
      [alice, B],
      [bob, A],
    ] as const) {
      await setItem(c, { jid, subscription: "remove" });
    }
    await Promise.all([alice.stop(), bob.stop()]);
  });

  test("§3.1.3: a request made while the contact is offline is delivered at login, answered then", async () => {
    const carol = await login("carol");
    const C = "carol@localhost";
    const D = "dave@localhost";
    await send(carol, "subscribe", D);
    assertItem(await nextPush(carol, D), { subscription: "none", ask: "subscribe" });

    // Not before initial presence, then at every initial presence until answered.
    const dave1 = await login("dave", { resource: "one", presence: false });
    await pause(50);
    assert.ok(!dave1.inbox.some((s) => s.attrs.type === "subscribe"), "not before initial presence");
    await dave1.send(xml("presence"));
    assert.equal((await presenceFrom(dave1, C, "subscribe")).attrs.to, D);
    const dave2 = await login("dave", { resource: "two" });
    await presenceFrom(dave2, C, "subscribe");

    await send(dave2, "subscribed", C);
    for (const d of [dave1, dave2]) assertItem(await nextPush(d, C), { subscription: "from" });
    await presenceFrom(carol, D, "subscribed");
    assertItem(await nextPush(carol, D), { subscription: "to" });
    // §3.1.5: carol gets the presence of both of dave's resources.
    await presenceFrom(carol, full(dave1));
    await presenceFrom(carol, full(dave2));

    // Answered: a new login gets no request any more.
    const dave3 = await login("dave", { resource: "three" });
    await ping(dave3);
    await pause(50);
    assert.ok(
      !dave3.inbox.some((s) => s.attrs.type === "subscribe"),
      "answered requests are not redelivered",
    );
    await Promise.all([carol.stop(), dave1.stop(), dave2.stop(), dave3.stop()]);
  });

  test("§3.4: pre-approval is used once; unsubscribed withdraws it", async () => {
    const erin = await login("erin");
    const frank = await login("frank");
    const E = "erin@localhost";
    const F = "frank@localhost";
    // erin pre-approves frank: an item with approved='true', and nothing sent to frank.
    await send(erin, "subscribed", F);
    assertItem(await nextPush(erin, F), { subscription: "none", approved: "true" });
    await pause(50);
    assert.ok(!frank.inbox.some((s) => s.attrs.from === E), "a pre-approval is not routed");

    // frank asks: approved at once by erin's server; erin is not asked.
    await send(frank, "subscribe", E);
    assertItem(await nextPush(frank, E), { subscription: "none", ask: "subscribe" });
    await presenceFrom(frank, E, "subscribed");
    assertItem(await nextPush(frank, E), { subscription: "to" });
    await presenceFrom(frank, full(erin));
    assertItem(await nextPush(erin, F), { subscription: "from" });
    assert.ok(!erin.inbox.some((s) => s.attrs.type === "subscribe"), "erin was not asked");

    // A withdrawn pre-approval: grace's request then reaches erin.
    await send(erin, "subscribed", "grace@localhost");
    assertItem(await nextPush(erin, "grace@localhost"), { subscription: "none", approved: "true" });
    await send(erin, "unsubscribed", "grace@localhost");
    assertItem(await nextPush(erin, "grace@localhost"), { subscription: "none" });
    const grace = await login("grace");
    await send(grace, "subscribe", E);
    await presenceFrom(erin, "grace@localhost", "subscribe");
    await Promise.all([erin.stop(), frank.stop(), grace.stop()]);
  });

  test("§2.5.2: removing an item cancels the subscriptions both ways", async () => {
    const heidi = await login("heidi");
    const ivan = await login("ivan");
    const H = "heidi@localhost";
    const I = "ivan@localhost";
    await send(heidi, "subscribe", I);
    await presenceFrom(ivan, H, "subscribe");
    await send(ivan, "subscribed", H);
    await send(ivan, "subscribe", H);
    await presenceFrom(heidi, I, "subscribe");
    await send(heidi, "subscribed", I);
    await pushShowing(ivan, H, "both");
    heidi.inbox.length = 0;
    ivan.inbox.length = 0;

    await setItem(heidi, { jid: I, subscription: "remove" });
    assert.equal((await nextPush(heidi, I)).attrs.subscription, "remove");
    await presenceFrom(ivan, full(heidi), "unavailable");
    await presenceFrom(ivan, H, "unsubscribe");
    await presenceFrom(ivan, H, "unsubscribed");
    // Both stanzas land on ivan's side in one state: None.
    const last = await nextPush(ivan, H);
    const item = (await rosterItem(ivan, H)) ?? last;
    assertItem(item, { subscription: "none" });
    assert.equal(await rosterItem(heidi, I), undefined);
    await Promise.all([heidi.stop(), ivan.stop()]);
  });

  test("§4: each side sees the other come online and go offline, also when the connection drops", async () => {
    // judy and erin become mutual friends (erin already lets frank see her).
    let judy = await login("judy");
    let erin = await login("erin");
    const J = "judy@localhost";
    const E = "erin@localhost";
    await send(judy, "subscribe", E);
    await presenceFrom(erin, J, "subscribe");
    await send(erin, "subscribed", J);
    await send(erin, "subscribe", J);
    await presenceFrom(judy, E, "subscribe");
    await send(judy, "subscribed", E);
    await pushShowing(erin, J, "both");
    await Promise.all([judy.stop(), erin.stop()]);

    // §4.2: erin logs in: judy (online) sees her; erin learns judy is online through the probe.
    judy = await login("judy");
    erin = await login("erin", { presence: xml("presence", {}, xml("status", {}, "hello")) });
    const seen = await presenceFrom(judy, full(erin));
    assert.equal(seen.getChildText("status"), "hello");
    await presenceFrom(erin, full(judy));

    // §4.5: a clean logout: unavailable.
    await erin.send(xml("presence", { type: "unavailable" }));
    await presenceFrom(judy, full(erin), "unavailable");
    await erin.stop();

    // A probe for an offline contact: the last unavailable presence, with its delay.
    const judy2 = await login("judy", { resource: "second" });
    const last = await judy2.nextStanza(
      (s) => isPresence(full(erin), "unavailable")(s) || isPresence(E, "unavailable")(s),
    );
    assert.ok(last.getChild("delay", "urn:xmpp:delay"), "stamped with when it was sent");
    // ... and judy's first resource learns of her second.
    await presenceFrom(judy, full(judy2));

    // §4.5.2: the TCP connection just drops (no </stream>, no unavailable): judy still hears of it.
    erin = await login("erin", { resource: "flaky" });
    await presenceFrom(judy, full(erin));
    // §4.6: directed presence to someone not subscribed is followed by unavailable too.
    const grace = await login("grace");
    await erin.send(xml("presence", { to: "grace@localhost/" + grace.jid!.resource }));
    await presenceFrom(grace, full(erin));
    erin.tlsSocket()!.destroy();
    await presenceFrom(judy, full(erin), "unavailable");
    await presenceFrom(judy2, full(erin), "unavailable");
    await presenceFrom(grace, full(erin), "unavailable");
    await erin.stop().catch(() => {});

    // ... and the other way round: erin sees judy's connection drop.
    erin = await login("erin", { resource: "back" });
    await presenceFrom(erin, full(judy));
    judy.tlsSocket()!.destroy();
    await presenceFrom(erin, full(judy), "unavailable");
    await presenceFrom(erin, full(judy2)); // judy's other resource is still there
    await judy.stop().catch(() => {});
    await Promise.all([erin.stop(), judy2.stop(), grace.stop()]);
  });

  test("§8.5.1 and remote contacts: requests that cannot succeed leave a clear state", async () => {
    const ivan = await login("ivan");
    await send(ivan, "subscribe", "nobody@localhost");
    assertItem(await nextPush(ivan, "nobody@localhost"), { subscription: "none", ask: "subscribe" });
    // No such account: unsubscribed comes back and the request is over.
    await presenceFrom(ivan, "nobody@localhost", "unsubscribed");
    assertItem(await nextPush(ivan, "nobody@localhost"), { subscription: "none" });

    // A contact on another domain: routed like any other stanza (no s2s yet: an error comes back);
    // the request stays pending for when federation delivers it.
    await send(ivan, "subscribe", "someone@elsewhere.example");
    assertItem(await nextPush(ivan, "someone@elsewhere.example"), { subscription: "none", ask: "subscribe" });
    const error = await presenceFrom(ivan, "someone@elsewhere.example", "error");
    assert.ok(error.getChild("error")?.getChild("remote-server-not-found"));
    await ivan.stop();
  });

  test("limits: pending requests per account, and a presence flood keeps the latest state", async () => {
    // max_pending_requests = 2: judy is offline; the third asker is refused with resource-constraint.
    const askers = await Promise.all(["alice", "bob", "carol"].map((u) => login(u, { resource: "limits" })));
    for (const c of askers.slice(0, 2)) {
      await send(c, "subscribe", "frank@localhost");
      await nextPush(c, "frank@localhost");
    }
    await send(askers[2]!, "subscribe", "frank@localhost");
    const refused = await askers[2]!.nextStanza(isPresence("frank@localhost", "error"));
    assert.ok(refused.getChild("error")?.getChild("resource-constraint"));
    const frank = await login("frank");
    const requests = new Set<string>();
    for (let i = 0; i < 2; i++) {
      requests.add((await frank.nextStanza((s) => s.attrs.type === "subscribe")).attrs.from!);
    }
    assert.deepEqual([...requests].sort(), ["alice@localhost", "bob@localhost"]);

    // broadcast_burst = 3, broadcast_rate = 4/s: 12 quick changes, fewer get through, the last does.
    const erin = await login("erin", { resource: "flood" });
    await presenceFrom(frank, full(erin));
    for (let i = 1; i <= 12; i++) await erin.send(xml("presence", {}, xml("status", {}, `s${i}`)));
    await ping(erin);
    await frank.nextStanza((s) => isPresence(full(erin))(s) && s.getChildText("status") === "s12", 3000);
    const seen = frank.inbox.filter((s) => isPresence(full(erin))(s)).length + 1;
    assert.ok(seen < 12, `the flood was cut (${seen} of 12 delivered)`);
    await Promise.all([...askers, frank, erin].map((c) => c.stop()));
  });
});

export type { Element };
