/**
 * A canControl answer narrows a set; it never widens it: asked for the whole device, a caller
 * allowed only some nodes changes those nodes and nothing else.
 * References: XEP-0325 §3.6 (several nodes), XEP-0324 §3.4 (the canControl answer lists the
 * allowed nodes and parameters; the device acts on those and says so in setResponse).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { encodeSetRequest, NS_CONTROL, type ParameterSpec } from "../../extensions/control/index.ts";
import { readNodeRefs } from "../../extensions/sensor-data/index.ts";
import { startControlServer } from "./control-server.ts";
import type { AccessDecider, ControlAccess } from "./decisions.ts";

function server(access: ControlAccess, nodes: string[]) {
  const applied: string[] = [];
  const spec: ParameterSpec = { name: "Setpoint", type: "double", label: "Setpoint", value: "20" };
  const control = startControlServer({
    decider: { canControl: async () => access } as unknown as AccessDecider,
    handler: {
      parameters: () => [spec],
      apply: (params, node) => {
        for (const p of params) applied.push(`${node?.nodeId ?? "device"}:${p.name}=${p.value}`);
      },
    },
    onIq: () => {},
    nodeExists: (n) => nodes.includes(n.nodeId),
  });
  return { control, applied };
}

const setAll = () =>
  encodeSetRequest({
    nodes: [],
    parameters: [{ name: "Setpoint", type: "double", value: "23.5" }],
    tokens: {},
  });

test("asked for the whole device, a caller allowed one node changes only that node", async () => {
  const { control, applied } = server({ allowed: true, nodes: [{ nodeId: "Room1" }], parameterNames: [] }, [
    "Room1",
    "Room2",
  ]);
  const response = await control.handleSet("kurt@localhost/r1", setAll());
  assert.deepEqual(applied, ["Room1:Setpoint=23.5"]);
  assert.equal(response.getName(), "setResponse");
  assert.equal(response.getNS(), NS_CONTROL);
  assert.deepEqual(
    readNodeRefs(response).map((n) => n.nodeId),
    ["Room1"],
  );
});

test("an answer naming nodes the thing does not have changes nothing", async () => {
  const { control, applied } = server({ allowed: true, nodes: [{ nodeId: "Cellar" }], parameterNames: [] }, [
    "Room1",
    "Room2",
  ]);
  await assert.rejects(control.handleSet("kurt@localhost/r1", setAll()), { condition: "item-not-found" });
  assert.deepEqual(applied, []);
});
