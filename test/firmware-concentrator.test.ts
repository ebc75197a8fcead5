/**
 * A thing with several nodes (a concentrator) over a real broker, seen by an independent
 * @xmpp/client: partial results (one `fields` message per node, the last one done), a failure for
 * one node, item-not-found for an unknown node, a queued readout (`when`: accepted queued, then
 * started), cancel, the XEP-0326 basics (capabilities, data sources, root and child nodes, node
 * information, NotImplemented, InsufficientPrivileges for strangers), and clearCache or
 * friendship recommendations refused from anyone but the provisioning service.
 * References: XEP-0323 §3.1–§3.6, XEP-0326 §3.2, §3.4–§3.6, XEP-0324 §3.1 (clearCache,
 * friend/unfriend only from the trusted service).
 */
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import {
  ConcentratorResultError,
  containsNode,
  getAllDataSources,
  getCapabilities,
  getChildNodes,
  getNode,
  getRootNodes,
  NS_CONCENTRATORS,
} from "../extensions/concentrators/index.ts";
import {
  type NodeRef,
  NS_SENSOR_DATA,
  requestCoversNode,
  requestReadout,
  type SensorField,
} from "../extensions/sensor-data/index.ts";
import { loadState, StateFileError } from "../firmware/thing/state.ts";
import { Thing } from "../firmware/thing/thing.ts";
import { startTestBroker, type TestBroker } from "../server/testing/broker.ts";
import { conditionOf, loginUser, portOf, until } from "./firmware-support.ts";
import { type Element, type TestClient, xml } from "./support/xmpp-client.ts";

const NODES = [
  { nodeId: "Floor1", displayName: "First floor", nodeType: "Floor" },
  { nodeId: "Room1", parentId: "Floor1", displayName: "Kitchen", nodeType: "Room" },
  { nodeId: "Room2", parentId: "Floor1", displayName: "Hall", nodeType: "Room" },
  { nodeId: "Broken", nodeType: "Room" },
];

describe("a concentrator thing: several nodes, partial results, XEP-0326 basics", () => {
  let broker: TestBroker;
  let thing: Thing;
  let owner: TestClient;
  let stranger: TestClient;
  let to: string;
  const dir = mkdtempSync(join(tmpdir(), "hanse-firmware-nodes-"));

  before(async () => {
    broker = await startTestBroker();
    const jid = await broker.addUser("conc", "conc-pw");
    for (const name of ["olga", "sven"]) await broker.addUser(name, `${name}-pw`);
    thing = new Thing({
      domain: "localhost",
      host: "127.0.0.1",
      port: broker.ports.c2s!,
      ca: broker.certificatePem,
      stateFile: join(dir, "conc.json"),
      account: { username: "conc", password: "conc-pw" },
      registry: false,
      provisioning: false,
      friends: ["olga@localhost"],
      nodes: NODES,
      resource: "fw",
      reconnect: false,
      async sensors({ request }) {
        const wanted = NODES.filter(
          (n) => request.nodes.length === 0 || request.nodes.some((r) => requestCoversNode(r, n)),
        );
        if (request.fieldNames.includes("Slow")) await new Promise((r) => setTimeout(r, 1500));
        const now = new Date();
        const fields: SensorField[] = wanted
          .filter((n) => n.nodeId !== "Broken")
          .map((n) => ({
            node: { nodeId: n.nodeId, sourceId: "MeteringTopology" },
            timestamp: now,
            name: "Temperature",
            value: { type: "numeric", value: 20.5, decimals: 2, unit: "°C" },
            categories: ["momentary"],
            qos: ["automaticReadout"],
          }));
        const failures = wanted
          .filter((n) => n.nodeId === "Broken")
          .map((n) => ({
            node: { nodeId: n.nodeId, sourceId: "MeteringTopology" },
            timestamp: now,
            text: "sensor unplugged",
          }));
        return { fields, failures };
      },
    });
    await thing.start();
    to = `${jid}/fw`;
    owner = await loginUser(broker, "olga");
    stranger = await loginUser(broker, "sven");
  });
  after(async () => {
    await thing?.stop();
    await owner?.stop();
    await stranger?.stop();
    await broker?.stop();
  });

  /** Sends a req and collects the sensor-data messages for its seqnr until done. */
  async function rawReadout(seqnr: number, attrs: Record<string, string>, nodes: NodeRef[] = []) {
    const messages: Element[] = [];
    const done = new Promise<void>((resolve) => {
      const l = (s: Element) => {
        const payload = s
          .getChildElements()
          .find((c) => c.getNS() === NS_SENSOR_DATA && c.attrs.seqnr === String(seqnr));
        if (!s.is("message") || !payload) return;
        messages.push(payload);
        if (payload.attrs.done === "true" || payload.name === "done") {
          owner.off("stanza", l);
          resolve();
        }
      };
      owner.on("stanza", l);
    });
    const result = await owner.iqCaller.request(
      xml(
        "iq",
        { type: "get", to },
        xml(
          "req",
          { xmlns: NS_SENSOR_DATA, seqnr: String(seqnr), ...attrs },
          ...nodes.map((n) => xml("node", { ...n })),
        ),
      ),
    );
    await done;
    return { accepted: result.getChild("accepted", NS_SENSOR_DATA)!, messages };
  }

  test("partial results: one fields message per node, done on the last; a failure for one node", async () => {
    const { accepted, messages } = await rawReadout(7, { momentary: "true" });
    assert.equal(accepted.attrs.queued ?? "false", "false");
    const fieldMessages = messages.filter((m) => m.name === "fields");
    assert.equal(fieldMessages.length, 3, "Floor1, Room1, Room2");
    assert.ok(
      fieldMessages.every((m) => m.attrs.done !== "true"),
      "done comes with the failure",
    );
    assert.deepEqual(
      fieldMessages.map((m) => m.getChild("node")!.attrs.nodeId),
      ["Floor1", "Room1", "Room2"],
    );
    assert.equal(
      fieldMessages[0]!.getChild("node")!.getChild("timestamp")!.getChild("numeric")!.attrs.value,
      "20.50",
      "decimals kept",
    );
    const failure = messages.at(-1)!;
    assert.equal(failure.name, "failure");
    assert.equal(failure.attrs.done, "true");
    assert.equal(failure.getChild("error")!.attrs.nodeId, "Broken");

    // Through the client codec: only the nodes asked for.
    const r = await requestReadout(portOf(owner), to, {
      categories: [],
      nodes: [{ nodeId: "Room2" }],
      fieldNames: [],
      tokens: {},
    });
    assert.deepEqual(
      r.fields.map((f) => f.node?.nodeId),
      ["Room2"],
    );
    assert.equal(
      await conditionOf(
        requestReadout(portOf(owner), to, {
          categories: [],
          nodes: [{ nodeId: "Attic" }],
          fieldNames: [],
          tokens: {},
        }),
      ),
      "item-not-found",
    );
  });

  test("a queued readout (when): accepted queued, started, then the fields", async () => {
    const when = new Date(Date.now() + 1200).toISOString();
    const started = Date.now();
    const { accepted, messages } = await rawReadout(8, { when }, [{ nodeId: "Room1" }]);
    assert.equal(accepted.attrs.queued, "true");
    assert.equal(messages[0]!.name, "started");
    assert.equal(messages.at(-1)!.name, "fields");
    assert.ok(Date.now() - started >= 1000, "not before `when`");
  });

  test("cancel: the readout stops and its data never comes", async () => {
    const seen: Element[] = [];
    const l = (s: Element) => {
      if (
        s.is("message") &&
        s.getChildElements().some((c) => c.getNS() === NS_SENSOR_DATA && c.attrs.seqnr === "9")
      )
        seen.push(s);
    };
    owner.on("stanza", l);
    await owner.iqCaller.request(
      xml(
        "iq",
        { type: "get", to },
        xml("req", { xmlns: NS_SENSOR_DATA, seqnr: "9" }, xml("field", { name: "Slow" })),
      ),
    );
    const cancelled = await owner.iqCaller.request(
      xml("iq", { type: "get", to }, xml("cancel", { xmlns: NS_SENSOR_DATA, seqnr: "9" })),
    );
    assert.equal(cancelled.getChild("cancelled", NS_SENSOR_DATA)?.attrs.seqnr, "9");
    await new Promise((r) => setTimeout(r, 2000));
    owner.off("stanza", l);
    assert.deepEqual(seen, [], "nothing after cancel");
    assert.equal(
      await conditionOf(
        owner.iqCaller.request(
          xml("iq", { type: "get", to }, xml("cancel", { xmlns: NS_SENSOR_DATA, seqnr: "9" })),
        ),
      ),
      "item-not-found",
    );
  });

  test("XEP-0326: capabilities, data sources, root and child nodes, node information", async () => {
    const port = portOf(owner);
    const capabilities = await getCapabilities(port, to);
    for (const c of ["getAllDataSources", "getRootNodes", "getChildNodes", "getNode", "containsNode"]) {
      assert.ok(capabilities.includes(c), c);
    }
    assert.deepEqual(
      (await getAllDataSources(port, to)).map((s) => s.sourceId),
      ["MeteringTopology"],
    );
    const roots = await getRootNodes(port, to, "MeteringTopology");
    assert.deepEqual(
      roots.map((n) => [n.nodeId, n.hasChildren]),
      [
        ["Floor1", true],
        ["Broken", false],
      ],
    );
    const children = await getChildNodes(port, to, { nodeId: "Floor1", sourceId: "MeteringTopology" });
    assert.deepEqual(
      children.map((n) => n.displayName),
      ["Kitchen", "Hall"],
    );
    const room = await getNode(port, to, { nodeId: "Room1", sourceId: "MeteringTopology" });
    assert.equal(room.parentId, "Floor1");
    assert.equal(room.nodeType, "Room");
    assert.equal(room.isReadable, true);
    assert.equal(await containsNode(port, to, { nodeId: "Room2" }), true);
    assert.equal(await containsNode(port, to, { nodeId: "Attic" }), false);
    await assert.rejects(getNode(port, to, { nodeId: "Attic" }), (err: { condition?: string }) => {
      assert.equal(err.condition, "item-not-found");
      return true;
    });
    // §3.6: a command we do not implement.
    const reply = await owner.iqCaller.request(
      xml("iq", { type: "get", to }, xml("getNodeCommands", { xmlns: NS_CONCENTRATORS, nodeId: "Room1" })),
    );
    assert.equal(reply.getChild("getNodeCommandsResponse", NS_CONCENTRATORS)?.attrs.result, "NotImplemented");
    // A stranger (not a friend on this provisioning-free thing) may not browse.
    await assert.rejects(getCapabilities(portOf(stranger), to), (err: unknown) => {
      const e = err as { condition?: string; result?: string };
      assert.ok(
        e.condition === "forbidden" ||
          (err instanceof ConcentratorResultError && e.result === "InsufficientPrivileges"),
      );
      return true;
    });
  });

  test("clearCache and friend recommendations count only from the provisioning service", async () => {
    assert.equal(
      await conditionOf(
        stranger.iqCaller.request(
          xml("iq", { type: "set", to }, xml("clearCache", { xmlns: "urn:xmpp:iot:provisioning" })),
        ),
      ),
      "forbidden",
    );
    // A forged `friend` recommendation makes the thing ask nobody for a subscription.
    await stranger.send(
      xml("message", { to }, xml("friend", { xmlns: "urn:xmpp:iot:provisioning", jid: "sven@localhost" })),
    );
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(
      stranger.inbox.filter((s) => s.is("presence") && s.attrs.type === "subscribe").length,
      0,
      "no subscription request from the thing",
    );
    const readout = requestReadout(portOf(stranger), to, {
      categories: [],
      nodes: [],
      fieldNames: [],
      tokens: {},
    });
    assert.equal(await conditionOf(readout), "forbidden");
    // Nor can anyone but the registry claim the thing for themselves (XEP-0347 §3.9).
    const forged = xml("claimed", { xmlns: "urn:xmpp:iot:discovery", jid: "sven@localhost" });
    assert.equal(
      await conditionOf(stranger.iqCaller.request(xml("iq", { type: "set", to }, forged))),
      "forbidden",
    );
    assert.equal(thing.owner, undefined);
  });

  test("a broken state file is an error, never silently replaced", async () => {
    const bad = join(dir, "broken.json");
    writeFileSync(bad, "{ not json");
    await assert.rejects(loadState(bad), StateFileError);
    writeFileSync(bad, JSON.stringify({ version: 2 }));
    await assert.rejects(loadState(bad), /not a version 1/);
    await until("no state for a missing file", async () =>
      (await loadState(join(dir, "none.json"))).version === 1 ? true : undefined,
    );
  });
});
