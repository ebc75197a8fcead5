/**
 * The thing SDK against a plain XMPP server without IoT services (a real Prosody on loopback,
 * started by the interop harness): the thing is configured without a provisioning service, so it
 * lets in its owner and the friends approved on the device. A friend (an independent
 * @xmpp/client) becomes a friend by mutual presence subscription, then reads the thing and
 * controls it; a stranger is refused.
 * References: RFC 6121 §3.1 (subscription handshake), XEP-0323 §3.1 (readout), XEP-0325 §3.2
 * (control), XEP-0324 §3.1 (without a provisioning server the thing decides itself).
 */
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { sendControl } from "../extensions/control/index.ts";
import { loginAs, presenceFrom, pushShowing } from "../extensions/roster/testing.ts";
import { requestReadout } from "../extensions/sensor-data/index.ts";
import { createDevice } from "../firmware/simulator/kinds.ts";
import { Thing } from "../firmware/thing/thing.ts";
import { conditionOf, portOf } from "./firmware-support.ts";
import { createPeer, type Peer, peerInstalled } from "./interop/support/peers.ts";
import { connectClient, type TestClient, xml } from "./support/xmpp-client.ts";

// An address and domain of this file's own: never meets the federation suite's Prosody.
const DOMAIN = "things-prosody.test";
const IP = "127.0.2.20";
const TIMEOUT = 20_000;

describe("thing SDK against Prosody (no IoT services)", () => {
  let peer: Peer;
  let thing: Thing;
  const clients: TestClient[] = [];
  const dir = mkdtempSync(join(tmpdir(), "hanse-firmware-prosody-"));

  before(async () => {
    if (!peerInstalled("prosody"))
      throw new Error("prosody is not installed: apt-get install prosody lua-unbound");
    peer = createPeer({ kind: "prosody", domain: DOMAIN, ip: IP, hosts: { [DOMAIN]: IP } });
    await peer.start();
    for (const name of ["relay1", "fiona", "stan"]) await peer.register(name, `${name}-pw`);
  });
  after(async () => {
    await thing?.stop().catch(() => {});
    await Promise.all(clients.map((c) => c.stop().catch(() => {})));
    await peer?.stop();
    peer?.remove();
  });

  const login = async (user: string) => {
    const c = await loginAs(
      (u) =>
        connectClient({
          service: peer.service,
          domain: DOMAIN,
          username: u,
          password: `${u}-pw`,
          ca: peer.certificate(),
          mechanism: "SCRAM-SHA-1",
        }),
      user,
    );
    clients.push(c);
    return c;
  };

  test("a friend reads and controls a relay; a stranger is refused", async () => {
    try {
      const device = createDevice("relay", { serial: "RL-PROSODY" });
      thing = new Thing({
        domain: DOMAIN,
        host: IP,
        port: 5222,
        ca: peer.certificate(),
        stateFile: join(dir, "relay.json"),
        account: { username: "relay1", password: "relay1-pw" },
        provisioning: false,
        friends: [`fiona@${DOMAIN}`],
        tags: device.tags,
        sensors: device.sensors,
        control: device.control!,
        resource: "fw",
        reconnect: false,
      });
      await thing.start();
      assert.equal(thing.jid, `relay1@${DOMAIN}`);
      assert.equal(thing.registryService, undefined, "Prosody has no thing registry");
      const thingJid = `relay1@${DOMAIN}`;
      const to = `${thingJid}/fw`;

      // Friendship = mutual presence subscription; the thing approves a friend listed on it.
      const friend = await login("fiona");
      await friend.send(xml("presence", { type: "subscribe", to: thingJid }));
      await presenceFrom(friend, thingJid, "subscribed", TIMEOUT);
      await presenceFrom(friend, thingJid, "subscribe", TIMEOUT); // the thing asks back
      await friend.send(xml("presence", { type: "subscribed", to: thingJid }));
      await pushShowing(friend, thingJid, "both");

      const port = portOf(friend);
      const read = async () =>
        new Map(
          (
            await requestReadout(
              port,
              to,
              { categories: [], nodes: [], fieldNames: [], tokens: {} },
              { timeoutMs: TIMEOUT },
            )
          ).fields.map((f) => [f.name, f.value]),
        );
      assert.deepEqual((await read()).get("Output"), { type: "boolean", value: false });
      const applied = await sendControl(
        port,
        to,
        { nodes: [], parameters: [{ name: "Output", type: "boolean", value: "true" }], tokens: {} },
        { timeoutMs: TIMEOUT },
      );
      assert.deepEqual(applied.parameterNames, ["Output"]);
      assert.deepEqual((await read()).get("Output"), { type: "boolean", value: true });

      // Someone the thing does not know: refused (subscription and readout).
      const stranger = await login("stan");
      await stranger.send(xml("presence", { type: "subscribe", to: thingJid }));
      await presenceFrom(stranger, thingJid, "unsubscribed", TIMEOUT);
      assert.equal(
        await conditionOf(
          requestReadout(
            portOf(stranger),
            to,
            { categories: [], nodes: [], fieldNames: [], tokens: {} },
            { timeoutMs: TIMEOUT },
          ),
        ),
        "forbidden",
      );
    } catch (err) {
      (err as Error).message += `\n--- prosody log ---\n${peer.logTail()}`;
      throw err;
    }
  });
});
