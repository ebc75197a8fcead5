/**
 * The thing registry through real clients (@xmpp/client): every XEP-0347 operation and its errors
 * (register, mine, claimed, remove/removed, update by thing and owner, unregister,
 * disown/disowned, search with every operator), the friendship after a claim, tag rules, local-
 * only registration with federated search, rate limits and the lock-out after failed claims.
 * References: XEP-0347 §3.6–§3.17, §4, §5.2, §6.5; RFC 6121 §3 (the subscriptions after a claim).
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { loginAs, pause, presenceFrom, rosterItem } from "../extensions/roster/testing.ts";
import { startTestBroker, type TestBroker } from "../server/testing/broker.ts";
import { type Element, loginTo, type TestClient, xml } from "./support/xmpp-client.ts";

const NS = "urn:xmpp:iot:discovery";
const REG = "registry.localhost";

type Tags = Record<string, string | number>;
const tagEls = (tags: Tags) =>
  Object.entries(tags).map(([name, value]) =>
    typeof value === "number" ? xml("num", { name, value: String(value) }) : xml("str", { name, value }),
  );

/** An iq to the registry; resolves with the payload of the result (undefined if empty). */
async function ask(
  client: TestClient,
  type: "get" | "set",
  name: string,
  attrs: Record<string, string> = {},
  children: Element[] = [],
  to = REG,
): Promise<Element | undefined> {
  const result = await client.iqCaller.request(
    xml("iq", { type, to }, xml(name, { xmlns: NS, ...attrs }, ...children)),
  );
  return result.getChildElements()[0];
}

/** Asserts the promise fails with this stanza error condition (and text, if given). */
async function refused(p: Promise<unknown>, condition: string, text?: RegExp): Promise<void> {
  await assert.rejects(p, (err: { condition?: string; text?: string }) => {
    assert.equal(err.condition, condition, `condition (text: ${err.text})`);
    if (text) assert.match(err.text ?? "", text);
    return true;
  });
}

/** Things found by a search, as "jid[#node]" strings in result order, and the `more` flag. */
async function search(client: TestClient, ops: Element[], attrs: Record<string, string> = {}) {
  const found = (await ask(client, "get", "search", attrs, ops))!;
  assert.equal(found.name, "found");
  return {
    more: found.attrs.more,
    things: found.getChildren("thing"),
    ids: found.getChildren("thing").map((t) => t.attrs.nodeId ?? t.attrs.jid),
  };
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 5000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await pause(50);
  }
}

/** Records the registry's requests to a thing (claimed, removed, disowned) and acknowledges them. */
function listen(client: TestClient, answer: "result" | "error" | "never" = "result") {
  const received: Element[] = [];
  for (const name of ["claimed", "removed", "disowned"]) {
    client.iqCallee.set(NS, name, ({ stanza }) => {
      received.push(stanza.getChildElements()[0]!);
      if (answer === "never") return new Promise<undefined>(() => {});
      if (answer === "error") {
        return xml(
          "error",
          { type: "cancel" },
          xml("not-allowed", { xmlns: "urn:ietf:params:xml:ns:xmpp-stanzas" }),
        );
      }
      return {};
    });
  }
  return received;
}

describe("thing registry (XEP-0347)", () => {
  let broker: TestBroker;
  const clients: TestClient[] = [];
  const USERS = ["t1", "t2", "t3", "t4", "t5", "t6", "c1", "alice", "bob", "mallory", "spammer"];

  before(async () => {
    broker = await startTestBroker({
      config: {
        modules: {
          "thing-registry": {
            ack_timeout: 1,
            max_tags: 8,
            max_search_results: 4,
            search_per_minute: 60,
            max_failed_claims: 6,
            mine_per_minute: 30,
            register_per_minute: 60,
          },
        },
      },
    });
    for (const name of USERS) await broker.addUser(name, `${name}-pw`);
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.stop().catch(() => {})));
    await broker.stop();
  });

  async function login(username: string, resource?: string): Promise<TestClient> {
    const client = await loginAs(
      async (u, r) => {
        const c = await loginTo(broker, u, `${u}-pw`, r ? { resource: r } : {});
        clients.push(c);
        return c;
      },
      username,
      resource ? { resource } : {},
    );
    return client;
  }

  const keyRows = async (jid: string) => [
    ...(await broker.storage.db`
      select t.str_value from registry_tags t join registry_things th on th.id = t.thing_id
      where th.jid = ${jid} and t.name_key = 'KEY'`),
  ];

  test("discovery: the registry is a component of the domain with the discovery feature", async () => {
    const alice = await login("alice");
    const items = await alice.iqCaller.get(
      xml("query", { xmlns: "http://jabber.org/protocol/disco#items" }),
      "localhost",
    );
    assert.ok(
      items!.getChildren("item").some((i) => i.attrs.jid === REG && i.attrs.name === "Thing registry"),
    );
    const info = await alice.iqCaller.get(
      xml("query", { xmlns: "http://jabber.org/protocol/disco#info" }),
      REG,
    );
    assert.ok(info!.getChildren("feature").some((f) => f.attrs.var === NS));
    await alice.stop();
  });

  test("register, claim (public), claimed to the thing, KEY deleted, friends both ways, re-register", async () => {
    const thing = await login("t1", "fw");
    const received = listen(thing);
    const tags: Tags = { MAN: "acme.test", MODEL: "TH-2", SN: "000917", V: 2.1, KEY: "f3c9e0a7b11d" };
    assert.equal(await ask(thing, "set", "register", {}, tagEls(tags)), undefined, "§3.6: an empty result");

    const alice = await login("alice");
    // Exact match only: one tag missing, a wrong value, a numeric written as a string, all fail.
    const { KEY: _key, ...withoutKey } = tags;
    await refused(ask(alice, "set", "mine", {}, tagEls(withoutKey)), "item-not-found");
    await refused(ask(alice, "set", "mine", {}, tagEls({ ...tags, SN: "000918" })), "item-not-found");
    // Order and the case of tag names do not matter (§3.9, §3.6 note).
    const reordered = Object.fromEntries(
      Object.entries(tags)
        .reverse()
        .map(([k, v]) => [k.toLowerCase(), v]),
    );
    const claimed = await ask(alice, "set", "mine", {}, tagEls(reordered));
    assert.equal(claimed?.name, "claimed");
    assert.equal(claimed?.attrs.jid, "t1@localhost");

    const toThing = await until("claimed at the thing", async () => received[0]);
    assert.equal(toThing.name, "claimed");
    assert.equal(toThing.attrs.jid, "alice@localhost");
    assert.equal(toThing.attrs.public, "true", "always an explicit public");
    assert.deepEqual(await keyRows("t1@localhost"), [], "§6.5: KEY deleted at the claim");

    // Friends both ways (RFC 6121 subscriptions), and alice sees the thing online.
    for (const [client, contact] of [
      [alice, "t1@localhost"],
      [thing, "alice@localhost"],
    ] as const) {
      await until(`${contact} in a both-ways subscription`, async () => {
        const item = await rosterItem(client, contact);
        return item?.attrs.subscription === "both" ? item : undefined;
      });
    }
    await presenceFrom(alice, "t1@localhost/fw");

    // §3.6: registering again changes nothing and tells the thing its owner.
    const again = await ask(thing, "set", "register", {}, tagEls({ ...tags, SN: "other" }));
    assert.equal(again?.name, "claimed");
    assert.deepEqual({ ...again?.attrs }, { xmlns: NS, jid: "alice@localhost", public: "true" });
    // §3.9: the same owner claiming again succeeds; anyone else gets item-not-found.
    assert.equal((await ask(alice, "set", "mine", {}, tagEls(tags)))?.attrs.jid, "t1@localhost");
    const bob = await login("bob");
    await refused(ask(bob, "set", "mine", {}, tagEls(tags)), "item-not-found");
    const found = await search(bob, [xml("strEq", { name: "SN", value: "000917" })]);
    assert.deepEqual(found.ids, ["t1@localhost"]);
    assert.equal(found.things[0]!.attrs.owner, "alice@localhost");
    await Promise.all([thing.stop(), alice.stop(), bob.stop()]);
  });

  test("a private claim: claimed says public='false' and the thing is not searchable", async () => {
    const thing = await login("t2");
    const received = listen(thing);
    await ask(thing, "set", "register", {}, tagEls({ SN: "p-1", KEY: "k-private" }));
    const alice = await login("alice");
    await ask(alice, "set", "mine", { public: "false" }, tagEls({ KEY: "k-private", SN: "p-1" }));
    const toThing = await until("claimed", async () => received[0]);
    assert.equal(toThing.attrs.public, "false");
    assert.deepEqual((await search(alice, [xml("strEq", { name: "SN", value: "p-1" })])).ids, []);
    await Promise.all([thing.stop(), alice.stop()]);
  });

  test("self-owned things and concentrator nodes (nodeId, sourceId, cacheType)", async () => {
    const conc = await login("c1");
    const received = listen(conc);
    // §3.7: self-owned is public and claimed at once, owned by itself.
    await ask(conc, "set", "register", { selfOwned: "true" }, tagEls({ CLASS: "gateway", NAME: "c1" }));
    const own = await search(conc, [xml("strEq", { name: "CLASS", value: "gateway" })]);
    assert.equal(own.things[0]?.attrs.owner, "c1@localhost");
    const again = await ask(conc, "set", "register", { selfOwned: "true" }, tagEls({ CLASS: "x" }));
    assert.deepEqual({ ...again?.attrs }, { xmlns: NS, jid: "c1@localhost", public: "true" });

    // §3.8: nodes behind the concentrator are records of their own.
    const node = { nodeId: "imc1", sourceId: "MeteringTopology", cacheType: "Meters" };
    await ask(conc, "set", "register", node, tagEls({ SN: "n-1", KEY: "kn1" }));
    await ask(conc, "set", "register", { nodeId: "imc2" }, tagEls({ SN: "n-2", KEY: "kn2" }));
    const alice = await login("alice");
    const claimed = await ask(alice, "set", "mine", {}, tagEls({ SN: "n-1", KEY: "kn1" }));
    assert.deepEqual({ ...claimed?.attrs }, { xmlns: NS, jid: "c1@localhost", ...node });
    const toThing = await until("claimed", async () => received.find((e) => e.attrs.nodeId === "imc1"));
    assert.deepEqual({ ...toThing.attrs }, { xmlns: NS, jid: "alice@localhost", public: "true", ...node });
    const found = await search(alice, [xml("strEq", { name: "SN", value: "n-1" })]);
    assert.deepEqual(
      { ...found.things[0]!.attrs },
      { owner: "alice@localhost", jid: "c1@localhost", ...node },
    );
    // The node is unclaimed still: not found.
    assert.deepEqual((await search(alice, [xml("strEq", { name: "SN", value: "n-2" })])).ids, []);
    await Promise.all([conc.stop(), alice.stop()]);
  });

  test("tag rules: bad-request names the offending tag; predefined tags accepted", async () => {
    const thing = await login("t3");
    const register = (tags: Element[]) => ask(thing, "set", "register", {}, tags);
    const str = (name: string, value = "v") => xml("str", { name, value });
    await refused(
      register([str("N".repeat(33))]),
      "bad-request",
      /tag name N{33} is longer than 32 characters/,
    );
    await refused(register([str("A:B")]), "bad-request", /tag name A:B contains ':', '#' or white space/);
    await refused(register([str("A#B")]), "bad-request", /A#B/);
    await refused(register([str("A B")]), "bad-request", /A B/);
    await refused(
      register([str("ROOM", "x".repeat(129))]),
      "bad-request",
      /tag ROOM: the value is longer than 128/,
    );
    await refused(register([str("SN"), str("sn")]), "bad-request", /tag sn appears more than once/);
    await refused(
      register([xml("num", { name: "LAT", value: "north" })]),
      "bad-request",
      /tag LAT: value='north' is not a number/,
    );
    await refused(register([xml("num", { name: "LAT", value: "INF" })]), "bad-request", /LAT/);
    await refused(
      register([xml("str", { name: "SN" })]),
      "bad-request",
      /tag SN: the value attribute is missing/,
    );
    await refused(
      register([xml("bool", { name: "X", value: "1" })]),
      "bad-request",
      /unexpected element <bool\/>/,
    );
    await refused(ask(thing, "set", "mine", {}, []), "bad-request", /a claim needs the thing's tags/);
    await refused(
      ask(thing, "set", "mine", { public: "maybe" }, [str("SN")]),
      "bad-request",
      /public='maybe' is not a boolean/,
    );
    const nine = Array.from({ length: 9 }, (_, i) => str(`T${i}`));
    await refused(register(nine), "bad-request", /too many tags: 9 \(at most 8\)/);
    // Every predefined tag of §5.2 (more than max_tags at once, so in two registrations).
    const predefined = ["ALT", "APT", "AREA", "BLD", "CITY", "CLASS", "COUNTRY", "KEY", "LAT", "LON", "MAN"];
    const more = ["MLOC", "MNR", "MODEL", "NAME", "PURL", "REGION", "ROOM", "SN", "STREET", "STREETNR", "V"];
    const numeric = new Set(["ALT", "LAT", "LON", "V"]);
    for (const group of [predefined.slice(0, 8), predefined.slice(8), more.slice(0, 8), more.slice(8)]) {
      const els = group.map((n) =>
        numeric.has(n) ? xml("num", { name: n, value: "1.5" }) : str(n, `${n}-value`),
      );
      assert.equal(await register(els), undefined);
    }
    await thing.stop();
  });

  test("update by the thing and by its owner; unclaimed answers disowned; errors", async () => {
    const thing = await login("t4");
    listen(thing);
    const alice = await login("alice");
    const bob = await login("bob");
    await refused(ask(thing, "set", "update", {}, tagEls({ ROOM: "1" })), "item-not-found", undefined);
    await ask(thing, "set", "register", {}, tagEls({ SN: "u-1", KEY: "ku1", CITY: "Lübeck" }));
    // §3.13: registered but unclaimed: nothing changes, the answer is disowned.
    assert.equal((await ask(thing, "set", "update", {}, tagEls({ ROOM: "1" })))?.name, "disowned");
    await ask(alice, "set", "mine", {}, tagEls({ SN: "u-1", KEY: "ku1", CITY: "Lübeck" }));
    // Only the given tags change; an empty string deletes; KEY is never stored again.
    assert.equal(
      await ask(thing, "set", "update", {}, tagEls({ CITY: "", ROOM: "12", LAT: 53.87, KEY: "new" })),
      undefined,
    );
    let found = await search(bob, [xml("strEq", { name: "SN", value: "u-1" })]);
    const shown = (t: Element) =>
      t.getChildElements().map((c) => `${c.name}:${c.attrs.name}=${c.attrs.value}`);
    assert.deepEqual(shown(found.things[0]!), ["num:LAT=53.87", "str:ROOM=12", "str:SN=u-1"]);
    assert.deepEqual(await keyRows("t4@localhost"), []);
    // §3.14: the owner updates with jid; someone else gets item-not-found.
    assert.equal(
      await ask(alice, "set", "update", { jid: "t4@localhost/fw" }, tagEls({ APT: "3b" })),
      undefined,
    );
    await refused(ask(bob, "set", "update", { jid: "t4@localhost" }, tagEls({ APT: "x" })), "item-not-found");
    await refused(
      ask(alice, "set", "update", { jid: "nobody@localhost" }, tagEls({ APT: "x" })),
      "item-not-found",
    );
    found = await search(bob, [xml("strEq", { name: "APT", value: "3b" })]);
    assert.deepEqual(found.ids, ["t4@localhost"]);
    // The tag limit counts the tags after the update.
    const many = Object.fromEntries(Array.from({ length: 6 }, (_, i) => [`X${i}`, i]));
    await refused(
      ask(thing, "set", "update", {}, tagEls(many)),
      "bad-request",
      /too many tags \(at most 8\)/,
    );
    await refused(ask(alice, "set", "update", { jid: "not a jid@@" }, []), "jid-malformed");
    await Promise.all([thing.stop(), alice.stop(), bob.stop()]);
  });

  test("remove: the owner removes, the thing is told; unregister always succeeds", async () => {
    const thing = await login("t5");
    const received = listen(thing);
    const alice = await login("alice");
    const bob = await login("bob");
    await ask(thing, "set", "register", {}, tagEls({ SN: "r-1", KEY: "kr1" }));
    await ask(alice, "set", "mine", {}, tagEls({ SN: "r-1", KEY: "kr1" }));
    await refused(ask(bob, "set", "remove", { jid: "t5@localhost" }), "item-not-found");
    await refused(ask(alice, "set", "remove", {}), "bad-request", /jid attribute is missing/);
    assert.equal(await ask(alice, "set", "remove", { jid: "t5@localhost" }), undefined);
    await until("removed at the thing", async () => received.find((e) => e.name === "removed"));
    assert.deepEqual((await search(bob, [xml("strEq", { name: "SN", value: "r-1" })])).ids, []);
    // §3.13: removed: updates fail, and removing again finds nothing.
    await refused(ask(thing, "set", "update", {}, tagEls({ ROOM: "1" })), "item-not-found");
    await refused(ask(alice, "set", "remove", { jid: "t5@localhost" }), "item-not-found");

    // §3.16: unregister is always an empty result, and the record is gone.
    await ask(thing, "set", "register", {}, tagEls({ SN: "r-2", KEY: "kr2" }));
    assert.equal(await ask(thing, "set", "unregister"), undefined);
    assert.equal(await ask(thing, "set", "unregister"), undefined);
    await refused(ask(alice, "set", "mine", {}, tagEls({ SN: "r-2", KEY: "kr2" })), "item-not-found");
    await Promise.all([thing.stop(), alice.stop(), bob.stop()]);
  });

  test("disown: the handshake with the thing; offline, refusing or silent things stay owned", async () => {
    const alice = await login("alice");
    const bob = await login("bob");
    const tags = { SN: "d-1", KEY: "kd1" };
    let thing = await login("t6");
    listen(thing);
    await ask(thing, "set", "register", {}, tagEls(tags));
    await ask(alice, "set", "mine", {}, tagEls(tags));
    await thing.stop();
    await refused(ask(alice, "set", "disown", { jid: "t6@localhost" }), "not-allowed", /offline/);
    await refused(ask(bob, "set", "disown", { jid: "t6@localhost" }), "item-not-found");

    thing = await login("t6", "refuses");
    listen(thing, "error");
    await refused(ask(alice, "set", "disown", { jid: "t6@localhost" }), "not-allowed", /did not acknowledge/);
    await thing.stop();
    thing = await login("t6", "silent");
    listen(thing, "never");
    await refused(ask(alice, "set", "disown", { jid: "t6@localhost" }), "not-allowed", /did not acknowledge/);
    await thing.stop();
    assert.deepEqual((await search(bob, [xml("strEq", { name: "SN", value: "d-1" })])).ids, ["t6@localhost"]);

    thing = await login("t6", "ok");
    const received = listen(thing);
    assert.equal(await ask(alice, "set", "disown", { jid: "t6@localhost" }), undefined);
    assert.equal(received[0]?.name, "disowned", "acknowledged before the owner's result");
    // §3.17: unclaimed, tags gone, a random KEY: the old tags claim nothing; updates say disowned.
    const keys = await keyRows("t6@localhost");
    assert.equal(keys.length, 1);
    assert.ok(String(keys[0]!.str_value).length >= 32, "a KEY nobody can guess");
    assert.deepEqual((await search(bob, [xml("strEq", { name: "SN", value: "d-1" })])).ids, []);
    assert.equal((await ask(thing, "set", "update", {}, tagEls({ ROOM: "1" })))?.name, "disowned");
    await refused(ask(bob, "set", "mine", {}, tagEls(tags)), "item-not-found");
    // The thing registers anew and can be claimed again.
    await ask(thing, "set", "register", {}, tagEls({ SN: "d-1", KEY: "kd2" }));
    assert.equal(
      (await ask(bob, "set", "mine", {}, tagEls({ SN: "d-1", KEY: "kd2" })))?.attrs.jid,
      "t6@localhost",
    );
    await Promise.all([thing.stop(), alice.stop(), bob.stop()]);
  });

  test("search: every operator, AND, paging with more, KEY never searchable nor returned", async () => {
    const conc = await login("c1", "search");
    listen(conc);
    const rows: [string, Tags][] = [
      ["s1", { CLASS: "meter", CITY: "Bremen", SN: "A-100", V: 1, KEY: "s" }],
      ["s2", { CLASS: "meter", CITY: "Hamburg", SN: "A-200", V: 1.5 }],
      ["s3", { CLASS: "meter", CITY: "Lübeck", SN: "B-100", V: 2 }],
      ["s4", { CLASS: "meter", CITY: "Rostock", SN: "B-200", V: 2.5 }],
      ["s5", { CLASS: "meter", CITY: "Wismar", SN: "C_1%", V: 3 }],
      ["s6", { CLASS: "valve", CITY: "Bremen", SN: "A-300", V: 10 }],
    ];
    for (const [nodeId, tags] of rows) {
      await ask(conc, "set", "register", { nodeId, selfOwned: "true" }, tagEls(tags));
    }
    const bob = await login("bob");
    const ids = async (...ops: Element[]) =>
      (await search(bob, [xml("strEq", { name: "CLASS", value: "meter" }), ...ops], { maxCount: "10" })).ids;
    const s = (op: string, name: string, attrs: Record<string, string>) => xml(op, { name, ...attrs });
    assert.deepEqual(await ids(s("strEq", "CITY", { value: "Bremen" })), ["s1"]);
    assert.deepEqual(await ids(s("strNEq", "CITY", { value: "Bremen" })), ["s2", "s3", "s4", "s5"]);
    assert.deepEqual(await ids(s("strGt", "CITY", { value: "Lübeck" })), ["s4", "s5"]);
    assert.deepEqual(await ids(s("strGtEq", "CITY", { value: "Lübeck" })), ["s3", "s4", "s5"]);
    assert.deepEqual(await ids(s("strLt", "CITY", { value: "Hamburg" })), ["s1"]);
    assert.deepEqual(await ids(s("strLtEq", "CITY", { value: "Hamburg" })), ["s1", "s2"]);
    assert.deepEqual(
      await ids(s("strRange", "CITY", { min: "Bremen", max: "Lübeck", maxIncluded: "false" })),
      ["s1", "s2"],
    );
    assert.deepEqual(await ids(s("strNRange", "CITY", { min: "Bremen", max: "Rostock" })), ["s5"]);
    assert.deepEqual(await ids(s("strMask", "SN", { value: "A*", wildcard: "*" })), ["s1", "s2"]);
    assert.deepEqual(await ids(s("strMask", "SN", { value: "*-100", wildcard: "*" })), ["s1", "s3"]);
    assert.deepEqual(
      await ids(s("strMask", "SN", { value: "C_1%", wildcard: "?" })),
      ["s5"],
      "LIKE characters are literal",
    );
    assert.deepEqual(
      await ids(s("strMask", "SN", { value: "C?1", wildcard: "?" })),
      [],
      "no match for C<any>1 alone",
    );
    assert.deepEqual(await ids(s("numEq", "V", { value: "2" })), ["s3"]);
    assert.deepEqual(await ids(s("numNEq", "V", { value: "1" }), s("numLt", "V", { value: "3" })), [
      "s2",
      "s3",
      "s4",
    ]);
    assert.deepEqual(await ids(s("numGt", "V", { value: "2" })), ["s4", "s5"]);
    assert.deepEqual(await ids(s("numGtEq", "V", { value: "2.5" })), ["s4", "s5"]);
    assert.deepEqual(await ids(s("numLtEq", "V", { value: "1.5" })), ["s1", "s2"]);
    assert.deepEqual(await ids(s("numRange", "V", { min: "1", minIncluded: "false", max: "2.5" })), [
      "s2",
      "s3",
      "s4",
    ]);
    assert.deepEqual(await ids(s("numNRange", "V", { min: "1.5", max: "2.5", maxIncluded: "false" })), [
      "s1",
      "s4",
      "s5",
    ]);
    // AND of several operators; an unknown tag name finds nothing.
    assert.deepEqual(
      await ids(s("strMask", "SN", { value: "B*", wildcard: "*" }), s("numGt", "V", { value: "2" })),
      ["s4"],
    );
    assert.deepEqual(await ids(s("strEq", "COLOR", { value: "red" })), []);
    // §3.15: KEY is never searchable and never returned.
    assert.deepEqual(await ids(s("strEq", "KEY", { value: "s" })), []);
    assert.deepEqual(await ids(s("strMask", "key", { value: "*", wildcard: "*" })), []);
    const all = await search(bob, [s("strMask", "SN", { value: "*", wildcard: "*" })], { maxCount: "100" });
    for (const thing of all.things) {
      assert.ok(
        !thing.getChildElements().some((t) => t.attrs.name?.toUpperCase() === "KEY"),
        "KEY never returned",
      );
    }
    // Paging: offset, maxCount (lowered to max_search_results = 4), more.
    let page = await search(bob, [s("strEq", "CLASS", { value: "meter" })], { offset: "0", maxCount: "2" });
    assert.deepEqual([page.ids, page.more], [["s1", "s2"], "true"]);
    page = await search(bob, [s("strEq", "CLASS", { value: "meter" })], { offset: "2", maxCount: "2" });
    assert.deepEqual([page.ids, page.more], [["s3", "s4"], "true"]);
    page = await search(bob, [s("strEq", "CLASS", { value: "meter" })], { offset: "4", maxCount: "2" });
    assert.deepEqual([page.ids, page.more], [["s5"], "false"]);
    page = await search(bob, [s("strEq", "CLASS", { value: "meter" })], { maxCount: "1000" });
    assert.deepEqual([page.ids.length, page.more], [4, "true"]);
    // Errors.
    await refused(ask(bob, "get", "search"), "bad-request", /at least one operator/);
    await refused(
      ask(bob, "get", "search", {}, [s("numEq", "V", { value: "two" })]),
      "bad-request",
      /tag V: value='two'/,
    );
    await refused(
      ask(bob, "get", "search", {}, [s("strLike", "V", { value: "x" })]),
      "bad-request",
      /unknown search operator <strLike\/>/,
    );
    await refused(
      ask(bob, "get", "search", { offset: "-1" }, [s("strEq", "V", { value: "x" })]),
      "bad-request",
      /offset/,
    );
    await refused(
      ask(bob, "get", "search", {}, [s("strRange", "V", { min: "a", max: "b", minIncluded: "maybe" })]),
      "bad-request",
      /minIncluded/,
    );
    await Promise.all([conc.stop(), bob.stop()]);
  });

  test("federation: search is answered for remote JIDs, register and thing updates are not", async () => {
    const replies: Element[] = [];
    broker.router.addRemoteHook(({ stanza, to }) => {
      if (to.domain !== "remote.example") return undefined;
      replies.push(stanza);
      return true;
    }, 1_000_000); // before s2s, which would try to reach remote.example
    const send = async (id: string, type: string, payload: Element) => {
      const iq = xml("iq", { type, id, from: "peer@remote.example/x", to: REG }, payload);
      await broker.router.route(iq as never, { kind: "s2s" });
      return until(`reply ${id}`, async () => replies.find((r) => r.attrs.id === id));
    };
    const reg = await send("f1", "set", xml("register", { xmlns: NS }, ...tagEls({ SN: "f-1" })));
    assert.equal(reg.attrs.type, "error");
    assert.equal(reg.getChild("error")?.getChildElements()[0]?.name, "forbidden");
    const upd = await send("f2", "set", xml("update", { xmlns: NS }, ...tagEls({ SN: "f-1" })));
    assert.equal(upd.getChild("error")?.getChildElements()[0]?.name, "forbidden");
    const found = await send(
      "f3",
      "get",
      xml("search", { xmlns: NS }, xml("strEq", { name: "CITY", value: "Bremen" })),
    );
    assert.equal(found.attrs.type, "result");
    assert.ok(found.getChild("found", NS)!.getChildren("thing").length > 0);
  });

  test("failed claims lock the claimer out; requests are rate-limited per bare JID", async () => {
    const thing = await login("t3", "lock");
    await ask(thing, "set", "register", {}, tagEls({ SN: "l-1", KEY: "kl1" }));
    const mallory = await login("mallory");
    for (let i = 0; i < 6; i++) {
      await refused(
        ask(mallory, "set", "mine", {}, tagEls({ SN: "l-1", KEY: `guess-${i}` })),
        "item-not-found",
      );
    }
    // Even the right KEY is refused now: guessing cannot go on.
    await refused(
      ask(mallory, "set", "mine", {}, tagEls({ SN: "l-1", KEY: "kl1" })),
      "resource-constraint",
      /too many failed claims/,
    );
    const alice = await login("alice");
    assert.equal(
      (await ask(alice, "set", "mine", {}, tagEls({ SN: "l-1", KEY: "kl1" })))?.attrs.jid,
      "t3@localhost",
    );

    const spammer = await login("spammer");
    const op = xml("strEq", { name: "SN", value: "x" });
    let refusedAt = 0;
    for (let i = 1; i <= 70 && refusedAt === 0; i++) {
      try {
        await ask(spammer, "get", "search", {}, [op]);
      } catch (err) {
        assert.equal((err as { condition?: string }).condition, "resource-constraint");
        assert.match((err as { text?: string }).text ?? "", /too many search requests: try again in \d+ s/);
        refusedAt = i;
      }
    }
    assert.ok(refusedAt > 1 && refusedAt <= 61, `refused at request ${refusedAt} (search_per_minute = 60)`);
    // Per bare JID: another account is not affected.
    assert.ok(await ask(alice, "get", "search", {}, [op]));
    await Promise.all([thing.stop(), mallory.stop(), alice.stop(), spammer.stop()]);
  });
});

describe("thing registry: a restricted registry at a configured subdomain", () => {
  let broker: TestBroker;
  before(async () => {
    broker = await startTestBroker({
      config: {
        modules: { "thing-registry": { subdomain: "things", custom_tags: false, allowed_tags: ["color"] } },
      },
    });
    await broker.addUser("t1", "t1-pw");
  });
  after(() => broker.stop());

  test("only predefined and allowed tags are stored; registrations are rate-limited", async () => {
    const thing = await loginTo(broker, "t1", "t1-pw");
    const to = "things.localhost";
    assert.equal(
      await ask(thing, "set", "register", {}, tagEls({ SN: "1", Color: "red", KEY: "k" }), to),
      undefined,
    );
    await refused(
      ask(thing, "set", "register", {}, tagEls({ SN: "1", SHAPE: "round" }), to),
      "bad-request",
      /tag SHAPE is not accepted/,
    );
    const items = await thing.iqCaller.get(
      xml("query", { xmlns: "http://jabber.org/protocol/disco#items" }),
      "localhost",
    );
    // Other components (provisioning) are listed too; the registry only at its configured name.
    const jids = items!.getChildren("item").map((item) => item.attrs.jid);
    assert.ok(jids.includes(to), `items: ${jids.join(", ")}`);
    assert.ok(!jids.includes("registry.localhost"), `items: ${jids.join(", ")}`);
    // register_per_minute (default 10): two registrations were made above, the 11th is refused.
    for (let n = 3; n <= 10; n++) await ask(thing, "set", "register", {}, tagEls({ SN: `${n}` }), to);
    await refused(
      ask(thing, "set", "register", {}, tagEls({ SN: "11" }), to),
      "resource-constraint",
      /too many register requests/,
    );
    await thing.stop();
  });
});
