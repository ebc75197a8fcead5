/**
 * XEP-0326 basics: round trips, NotImplemented, result codes, client helpers.
 * References: XEP-0326 §3.4–§3.6.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type Element, parse } from "ltx";
import { StanzaError } from "../../server/xml/errors.ts";
import { memoryPort } from "../sensor-data/testing.ts";
import {
  CONCENTRATOR_COMMANDS,
  ConcentratorResultError,
  concentratorError,
  containsNode,
  decodeContainsNodeResponse,
  decodeGetNodeResponse,
  decodeNodeRequest,
  decodeSourceId,
  encodeContainsNodeResponse,
  encodeDataSourcesResponse,
  encodeGetCapabilitiesResponse,
  encodeGetNodeResponse,
  encodeNodesResponse,
  encodeNotImplemented,
  encodeResponse,
  getAllDataSources,
  getCapabilities,
  getChildNodes,
  getNode,
  getRootNodes,
  type NodeInfo,
} from "./index.ts";

const xml = (s: string) => parse(s) as Element;
const CONCENTRATOR = "bridge@acme.test/main";

const root: NodeInfo = {
  nodeId: "Root",
  sourceId: "MeteringTopology",
  state: "None",
  hasChildren: true,
  displayName: "Root",
  nodeType: "Hanse.Root",
  isReadable: false,
  isControllable: false,
  hasCommands: false,
  lastChanged: new Date("2025-01-01T00:00:00Z"),
};
const child: NodeInfo = {
  nodeId: "Meter1",
  sourceId: "MeteringTopology",
  cacheType: "Meter",
  state: "WarningUnsigned",
  hasChildren: false,
  isReadable: true,
  isControllable: true,
  parentId: "Root",
  parameters: [{ type: "string", id: "Address", name: "Address", value: "10.0.0.7" }],
  messages: [
    { timestamp: new Date("2025-01-01T00:00:00Z"), type: "Warning", eventId: "E1", text: "Battery low" },
  ],
};

function concentrator(payload: Element): Element {
  switch (payload.getName()) {
    case "getCapabilities":
      return encodeGetCapabilitiesResponse(CONCENTRATOR_COMMANDS);
    case "getAllDataSources":
      return encodeDataSourcesResponse("getAllDataSources", [
        {
          sourceId: "MeteringTopology",
          name: "Metering",
          hasChildren: false,
          lastChanged: new Date("2025-01-01T00:00:00Z"),
        },
      ]);
    case "getRootNodes":
      assert.equal(decodeSourceId(payload), "MeteringTopology");
      return encodeNodesResponse("getRootNodes", [root]);
    case "getChildNodes": {
      const ref = decodeNodeRequest(payload);
      if (ref.nodeId !== "Root") throw concentratorError("getChildNodes", "NotFound", "no such node");
      assert.equal(ref.parameters, true);
      return encodeNodesResponse("getChildNodes", [child]);
    }
    case "getNode":
      return encodeGetNodeResponse(child);
    case "containsNode":
      return encodeContainsNodeResponse(decodeNodeRequest(payload).nodeId === "Meter1");
    default:
      return encodeNotImplemented(payload.getName());
  }
}

describe("XEP-0326 codec", () => {
  it("answers unknown commands with NotImplemented", () => {
    assert.equal(
      encodeNotImplemented("getNodeCommands").toString(),
      `<getNodeCommandsResponse xmlns="urn:xmpp:iot:concentrators" result="NotImplemented"/>`,
    );
  });

  it("node information survives the wire, on a list and on getNodeResponse", () => {
    const el = xml(encodeGetNodeResponse(child).toString());
    assert.equal(el.attrs.result, "OK");
    assert.deepEqual(decodeGetNodeResponse(el), child);
    // COMPAT: early examples name the node with `id`.
    const legacy = xml(
      `<getNodeResponse xmlns='urn:xmpp:iot:concentrators' result='OK' id='Node1' state='WarningUnsigned' hasChildren='false' lastChanged='2013-03-19T17:58:01Z'/>`,
    );
    assert.equal(decodeGetNodeResponse(legacy).nodeId, "Node1");
  });

  it("containsNode answers true/false text", () => {
    assert.equal(decodeContainsNodeResponse(xml(encodeContainsNodeResponse(true).toString())), true);
    assert.equal(
      decodeContainsNodeResponse(
        xml(
          `<containsNodeResponse xmlns='urn:xmpp:iot:concentrators' result='OK'> false </containsNodeResponse>`,
        ),
      ),
      false,
    );
  });

  it("a failed command is a standard stanza error that also carries the result code", () => {
    const error = concentratorError("getNode", "NotFound").toElement().toString();
    assert.match(error, /<item-not-found xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"\/>/);
    assert.match(error, /<getNodeResponse xmlns="urn:xmpp:iot:concentrators" result="NotFound"\/>/);
    assert.throws(() => decodeNodeRequest(xml(`<getNode xmlns='urn:xmpp:iot:concentrators'/>`)), StanzaError);
    assert.equal(encodeResponse("getNode", "Locked").attrs.result, "Locked");
  });
});

describe("XEP-0326 client helpers", () => {
  it("browse capabilities, data sources and the node tree", async () => {
    const port = memoryPort(CONCENTRATOR, "ops@acme.test/c", concentrator);
    assert.deepEqual(await getCapabilities(port, CONCENTRATOR), [...CONCENTRATOR_COMMANDS]);
    const sources = await getAllDataSources(port, CONCENTRATOR);
    assert.equal(sources[0]?.sourceId, "MeteringTopology");
    const roots = await getRootNodes(port, CONCENTRATOR, "MeteringTopology");
    assert.deepEqual(roots, [root]);
    assert.deepEqual(await getChildNodes(port, CONCENTRATOR, roots[0]!, { parameters: true }), [child]);
    assert.deepEqual(await getNode(port, CONCENTRATOR, child), child);
    assert.equal(await containsNode(port, CONCENTRATOR, { nodeId: "Meter1" }), true);
    assert.equal(await containsNode(port, CONCENTRATOR, { nodeId: "Nope" }), false);
    await assert.rejects(
      getChildNodes(port, CONCENTRATOR, { nodeId: "Nope" }),
      (e: unknown) => e instanceof StanzaError && e.condition === "item-not-found",
    );
  });

  it("reports a non-OK result code sent in an iq result", async () => {
    const port = memoryPort(CONCENTRATOR, "ops@acme.test/c", () => encodeNotImplemented("getAllDataSources"));
    await assert.rejects(
      getAllDataSources(port, CONCENTRATOR),
      (e: unknown) => e instanceof ConcentratorResultError && e.result === "NotImplemented",
    );
  });
});
