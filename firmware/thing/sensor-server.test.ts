/**
 * The device never sends more than the caller asked for: a provisioning answer narrows a
 * readout, it cannot widen it (a service listing nodes or fields nobody asked for must not make
 * the thing send them).
 * References: XEP-0323 §5.3 (the device must not send what was not allowed), XEP-0324 §3.1
 * (the canRead answer lists the allowed subset of the request).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Element } from "ltx";
import {
  decodeFields,
  encodeReadoutRequest,
  NS_SENSOR_DATA,
  type SensorField,
} from "../../extensions/sensor-data/index.ts";
import type { IqHandler } from "../xmpp/iq.ts";
import type { AccessDecider, ReadAccess } from "./decisions.ts";
import { startSensorServer } from "./sensor-server.ts";

test("a canRead answer listing more than was asked does not widen the readout", async () => {
  const room = (nodeId: string, name: string, value: number): SensorField => ({
    node: { nodeId },
    timestamp: new Date("2026-11-22T12:00:00Z"),
    name,
    value: { type: "numeric", value, decimals: 1, unit: "°C" },
    categories: ["momentary"],
    qos: ["automaticReadout"],
  });
  // A (misbehaving) service answers with both rooms and both fields.
  const wide: ReadAccess = {
    allowed: true,
    nodes: [{ nodeId: "Room1" }, { nodeId: "Room2" }],
    fieldNames: ["Temperature", "Setpoint"],
    categories: [],
  };
  const sent: Element[] = [];
  let handler: IqHandler | undefined;
  const server = startSensorServer({
    decider: { canRead: async () => wide } as unknown as AccessDecider,
    source: () => [
      room("Room1", "Temperature", 21.5),
      room("Room1", "Setpoint", 22),
      room("Room2", "Temperature", 19.5),
      room("Room2", "Setpoint", 20),
    ],
    send: (stanza) => sent.push(stanza),
    onIq: (_type, _ns, name, h) => {
      if (name === "req") handler = h;
    },
    nodeExists: () => true,
  });
  const iq = new Element("iq", { type: "get", from: "kurt@localhost/r1", to: "thing@localhost/t", id: "q1" });
  iq.cnode(
    encodeReadoutRequest({
      seqnr: 7,
      categories: [],
      nodes: [{ nodeId: "Room1" }],
      fieldNames: ["Temperature"],
      tokens: {},
    }),
  );
  await handler!(iq);
  const deadline = Date.now() + 2000;
  while (!sent.some((m) => m.getChild("fields", NS_SENSOR_DATA)?.attrs.done === "true")) {
    assert.ok(Date.now() < deadline, "the readout finished");
    await new Promise((r) => setTimeout(r, 10));
  }
  const fields = sent.flatMap((m) => {
    const el = m.getChild("fields", NS_SENSOR_DATA);
    return el ? decodeFields(el).fields : [];
  });
  assert.deepEqual(
    fields.map((f) => `${f.node?.nodeId}/${f.name}`),
    ["Room1/Temperature"],
  );
  server.stop();
});
