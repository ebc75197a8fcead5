/**
 * Rosters, subscription states, pending requests and pre-approvals survive a broker restart and a
 * kill -9, on both storage engines: after the restart the users log in, find their rosters (same
 * version), get the request that was waiting, and see each other come online.
 * References: RFC 6121 §2.1 (the roster is stored by the server), §3.1.3 (a request is kept until
 * answered), §3.4 (pre-approval), §4.2-§4.3 (presence after login); XEP-0237 (the version is the
 * same roster); DESIGN.md §1.5 (both engines, same SQL).
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { startTestBroker } from "../../server/testing/broker.ts";
import { startBrokerProcess, writePasswordFile } from "../../test/support/broker-process.ts";
import { createDatabase } from "../../test/support/postgres.ts";
import { loginTo, type TestClient, xml } from "../../test/support/xmpp-client.ts";
import {
  assertItem,
  type Connect,
  getRoster,
  loginAs,
  nextPush,
  presenceFrom,
  pushShowing,
  rosterItem,
  setItem,
} from "./testing.ts";

const USERS = ["alice", "bob", "carol"];
const password = (u: string) => `${u}'s password`;
const A = "alice@localhost";
const B = "bob@localhost";
const C = "carol@localhost";
const send = (c: TestClient, type: string, to: string) => c.send(xml("presence", { type, to }));

/**
 * Before the restart: alice and bob subscribed both ways (bob named and grouped in alice's roster),
 * carol asking bob while bob is offline, alice pre-approving carol. Returns alice's roster version.
 * Every step waits for its roster push, which is sent only after the transaction committed.
 */
async function makeFriends(connect: Connect): Promise<string> {
  const alice = await loginAs(connect, "alice");
  const bob = await loginAs(connect, "bob");
  await setItem(alice, { jid: B, name: "Bob" }, ["Friends"]);
  await nextPush(alice, B);
  await send(alice, "subscribe", B);
  await presenceFrom(bob, A, "subscribe");
  await send(bob, "subscribed", A);
  await send(bob, "subscribe", A);
  await presenceFrom(alice, B, "subscribe");
  await send(alice, "subscribed", B);
  await pushShowing(alice, B, "both");
  await pushShowing(bob, A, "both");
  await bob.stop();

  const carol = await loginAs(connect, "carol");
  await send(carol, "subscribe", B);
  assertItem(await nextPush(carol, B), { subscription: "none", ask: "subscribe" });
  await send(alice, "subscribed", C);
  assertItem(await nextPush(alice, C), { subscription: "none", approved: "true" });
  const version = (await getRoster(alice, ""))!.attrs.ver!;
  await Promise.all([alice.stop(), carol.stop()]);
  return version;
}

/** After the restart: everything above is still true and works. */
async function checkFriends(connect: Connect, aliceVersion: string): Promise<void> {
  const alice = await loginAs(connect, "alice", { roster: false, presence: false });
  // XEP-0237: the same version still means the same roster.
  assert.equal(await getRoster(alice, aliceVersion), undefined, "alice's cached roster is current");
  const bobItem = await rosterItem(alice, B);
  assertItem(bobItem, { subscription: "both" });
  assert.equal(bobItem!.attrs.name, "Bob");
  assert.deepEqual(
    bobItem!.getChildren("group").map((g) => g.text()),
    ["Friends"],
  );
  assertItem(await rosterItem(alice, C), { subscription: "none", approved: "true" });
  await alice.send(xml("presence"));

  // bob: the request carol made while he was offline, and alice online (probe answered).
  const bob = await loginAs(connect, "bob");
  await presenceFrom(bob, C, "subscribe");
  await presenceFrom(bob, alice.jid!.toString());
  await presenceFrom(alice, bob.jid!.toString());
  assertItem(await rosterItem(bob, A), { subscription: "both" });

  // carol: still asking bob; alice's pre-approval still holds.
  const carol = await loginAs(connect, "carol");
  assertItem(await rosterItem(carol, B), { subscription: "none", ask: "subscribe" });
  await send(carol, "subscribe", A);
  await presenceFrom(carol, A, "subscribed");
  await pushShowing(alice, C, "from");

  // A dropped connection after the restart is still announced.
  bob.tlsSocket()!.destroy();
  await presenceFrom(alice, bob.jid!.toString(), "unavailable");
  await bob.stop().catch(() => {});
  await Promise.all([alice.stop(), carol.stop()]);
}

for (const engine of ["embedded", "postgres"] as const) {
  describe(`roster persistence (${engine} engine)`, () => {
    test("a graceful restart keeps rosters, requests and pre-approvals", async (t) => {
      let broker = await startTestBroker({ engine });
      t.after(() => broker.stop());
      for (const u of USERS) await broker.addUser(u, password(u));
      const connect: Connect = (username, resource) =>
        loginTo(broker, username, password(username), resource ? { resource } : {});
      const version = await makeFriends(connect);
      await broker.stop();
      broker = await startTestBroker({
        engine,
        reuse: { data_dir: broker.config.data_dir, database: broker.config.database },
      });
      await checkFriends(connect, version);
    });

    test("kill -9 loses nothing that was pushed", async (t) => {
      const databaseUrl = engine === "postgres" ? await createDatabase("hanse_roster") : undefined;
      const common = { ...(databaseUrl && { databaseUrl }), logLevel: "warn" };
      let broker = await startBrokerProcess(common);
      t.after(() => broker.kill9());
      for (const u of USERS) {
        const r = await broker.cli([
          "user",
          "add",
          `${u}@localhost`,
          "--password-file",
          writePasswordFile(password(u)),
        ]);
        assert.equal(r.code, 0, r.stderr);
      }
      const connect: Connect = (username) => broker.login(username, password(username));
      const version = await makeFriends(connect);
      const exit = await broker.kill9();
      assert.equal(exit.signal, "SIGKILL");
      broker = await startBrokerProcess({ ...common, dataDir: broker.dataDir });
      await checkFriends(connect, version);
      assert.equal((await broker.stop()).code, 0, broker.output());
    });
  });
}
