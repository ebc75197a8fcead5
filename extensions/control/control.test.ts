/**
 * XEP-0325 codec, control form and client helpers.
 * References: XEP-0325 §3.1–§3.3 (set, setResponse, paramError, getForm, partial form submit).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type Element, parse } from "ltx";
import { StanzaError } from "../../server/xml/errors.ts";
import { formToXml, parseForm } from "../data-forms/form.ts";
import { hasDynamicMarker, readValidation } from "../data-forms/validation.ts";
import { memoryPort } from "../sensor-data/testing.ts";
import {
  controlForm,
  decodeGetForm,
  decodeSetRequest,
  decodeSetResponse,
  encodeSetRequest,
  encodeSetResponse,
  getControlForm,
  type ParameterSpec,
  paramError,
  parametersFromForm,
  readParamError,
  sendControl,
} from "./index.ts";

const xml = (s: string) => parse(s) as Element;
const NS = "xmlns='urn:xmpp:iot:control'";

function rejectsWithParam(fn: () => unknown, condition: string, name: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof StanzaError);
    assert.equal(e.condition, condition);
    assert.equal(e.appElement?.attrs.var, name);
    return true;
  });
}

describe("set requests", () => {
  it("decodes the digest example in document order", () => {
    const set = decodeSetRequest(
      xml(
        `<set ${NS} xml:lang='en'><node nodeId='Relay2'/><int name='RampMs' value='250'/><boolean name='Output' value='true'/></set>`,
      ),
    );
    assert.deepEqual(set, {
      nodes: [{ nodeId: "Relay2" }],
      parameters: [
        { name: "RampMs", type: "int", value: "250" },
        { name: "Output", type: "boolean", value: "true" },
      ],
      tokens: {},
    });
  });

  it("round-trips every parameter type, tokens and a submitted form", () => {
    const s = {
      nodes: [{ nodeId: "D1", sourceId: "S" }],
      parameters: [
        { name: "b", type: "boolean", value: "false" },
        { name: "c", type: "color", value: "3399FF" },
        { name: "d", type: "date", value: "2013-05-01" },
        { name: "dt", type: "dateTime", value: "2013-04-02T08:00:00" },
        { name: "db", type: "double", value: "8.192" },
        { name: "du", type: "duration", value: "PT3M30S" },
        { name: "i", type: "int", value: "50000" },
        { name: "l", type: "long", value: "500000000000000" },
        { name: "s", type: "string", value: "Temperature: 21.4 °C" },
        { name: "t", type: "time", value: "08:00:00" },
      ] as const,
      form: { type: "submit" as const, fields: [{ var: "Output", values: ["1"] }] },
      tokens: { userToken: "u1" },
    };
    const back = decodeSetRequest(xml(encodeSetRequest({ ...s, parameters: [...s.parameters] }).toString()));
    assert.deepEqual(back, { ...s, parameters: [...s.parameters] });
  });

  it("rejects bad values with a paramError naming the parameter", () => {
    rejectsWithParam(
      () => decodeSetRequest(xml(`<set ${NS}><int name='Output' value='50000000000'/></set>`)),
      "bad-request",
      "Output",
    );
    rejectsWithParam(
      () => decodeSetRequest(xml(`<set ${NS}><color name='C' value='blue'/></set>`)),
      "bad-request",
      "C",
    );
    rejectsWithParam(() => decodeSetRequest(xml(`<set ${NS}><boolean name='B'/></set>`)), "bad-request", "B");
    assert.throws(() => decodeSetRequest(xml(`<set ${NS}><boolean value='true'/></set>`)), StanzaError);
    assert.throws(
      () => decodeSetRequest(xml(`<set ${NS}><x xmlns='jabber:x:data' type='form'/></set>`)),
      /must be of type submit/,
    );
  });

  it("serializes paramError inside the error element (XEP-0325 §3.1.3)", () => {
    const error = paramError("bad-request", "OutputPercent", "Invalid parameter value.").toElement();
    assert.equal(
      error.toString(),
      `<error type="modify"><bad-request xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/>` +
        `<text xmlns="urn:ietf:params:xml:ns:xmpp-stanzas" xml:lang="en">Invalid parameter value.</text>` +
        `<paramError xmlns="urn:xmpp:iot:control" var="OutputPercent">Invalid parameter value.</paramError></error>`,
    );
    assert.deepEqual(readParamError(xml(error.toString())), {
      name: "OutputPercent",
      text: "Invalid parameter value.",
    });
  });

  it("set responses: empty, or narrowed to nodes and parameters", () => {
    assert.equal(encodeSetResponse().toString(), `<setResponse xmlns="urn:xmpp:iot:control"/>`);
    const narrowed = { nodes: [{ nodeId: "D1" }], parameterNames: ["Output"] };
    assert.deepEqual(decodeSetResponse(xml(encodeSetResponse(narrowed).toString())), narrowed);
  });
});

const specs: ParameterSpec[] = [
  {
    name: "FadeTimeMilliseconds",
    type: "int",
    label: "Fade time",
    value: "0",
    min: "0",
    max: "10000",
    group: "Fade",
  },
  { name: "OutputPercent", type: "int", label: "Output", value: "0", min: "0", max: "100", group: "Fade" },
  { name: "MainSwitch", type: "boolean", label: "Main switch", value: "false" },
  { name: "Mode", type: "string", label: "Mode", value: "Auto", options: ["Auto", "Manual"] },
];

describe("control form", () => {
  it("marks every field notSame, validates with datatype and range, carries a session and groups", () => {
    const form = parseForm(xml(formToXml(controlForm(specs, "325ED0F3")).toString()));
    assert.equal(form.type, "form");
    assert.deepEqual(form.fields[0], { var: "xdd session", type: "hidden", values: ["325ED0F3"] });
    const params = form.fields.slice(1);
    assert.deepEqual(
      params.map((f) => f.var),
      specs.map((s) => s.name),
    );
    for (const f of params) assert.ok(hasDynamicMarker(f, "notSame"), f.var);
    assert.deepEqual(readValidation(params[1]!), { datatype: "xs:int", min: "0", max: "100" });
    assert.equal(params[2]!.type, "boolean");
    assert.equal(params[3]!.type, "list-single");
    const group = params[0]!.extra!.find((e) => e.getName() === "parameterGroup");
    assert.equal(group?.attrs.name, "Fade");
    assert.deepEqual(
      form.extra!.map((p) => p.attrs.label),
      ["Fade", "Control"],
    );
  });

  it("reads only the submitted fields of a partial form, in the device's order", () => {
    const submitted = parseForm(
      xml(`<x type='submit' xmlns='jabber:x:data'>
        <field var='xdd session' type='hidden'><value>325ED0F3</value></field>
        <field var='OutputPercent' type='text-single'><value>10</value></field>
        <field var='FadeTimeMilliseconds' type='text-single'><value>500</value></field>
        <field var='MainSwitch'><value>1</value></field>
      </x>`),
    );
    assert.deepEqual(parametersFromForm(submitted, specs), [
      { name: "FadeTimeMilliseconds", type: "int", value: "500" },
      { name: "OutputPercent", type: "int", value: "10" },
      { name: "MainSwitch", type: "boolean", value: "true" },
    ]);
  });

  it("rejects out-of-range, unknown and off-list values with paramError", () => {
    const form = (v: string, name = "OutputPercent") => ({
      type: "submit" as const,
      fields: [{ var: name, values: [v] }],
    });
    rejectsWithParam(() => parametersFromForm(form("200"), specs), "bad-request", "OutputPercent");
    rejectsWithParam(() => parametersFromForm(form("x"), specs), "bad-request", "OutputPercent");
    rejectsWithParam(() => parametersFromForm(form("1", "Nope"), specs), "item-not-found", "Nope");
    rejectsWithParam(() => parametersFromForm(form("Turbo", "Mode"), specs), "bad-request", "Mode");
  });
});

describe("control client", () => {
  const DEVICE = "dimmer@acme.test/fw";
  it("sendControl reports what the device applied; errors keep the paramError", async () => {
    const port = memoryPort(DEVICE, "ops@acme.test/c", (payload) => {
      const set = decodeSetRequest(payload);
      const percent = set.parameters.find((p) => p.name === "OutputPercent");
      if (percent && Number(percent.value) > 100)
        throw paramError("bad-request", "OutputPercent", "Out of range.");
      // Provisioning allowed only the first parameter.
      return set.parameters.length > 1
        ? encodeSetResponse({ nodes: [], parameterNames: [set.parameters[0]!.name] })
        : encodeSetResponse();
    });
    const one = {
      nodes: [],
      parameters: [{ name: "MainSwitch", type: "boolean" as const, value: "true" }],
      tokens: {},
    };
    assert.deepEqual(await sendControl(port, DEVICE, one), { nodes: [], parameterNames: ["MainSwitch"] });
    const two = {
      ...one,
      parameters: [...one.parameters, { name: "OutputPercent", type: "int" as const, value: "10" }],
    };
    assert.deepEqual(await sendControl(port, DEVICE, two), { nodes: [], parameterNames: ["MainSwitch"] });
    await assert.rejects(
      sendControl(port, DEVICE, {
        ...one,
        parameters: [{ name: "OutputPercent", type: "int", value: "200" }],
      }),
      (e: unknown) =>
        e instanceof StanzaError &&
        e.condition === "bad-request" &&
        e.appElement?.attrs.var === "OutputPercent",
    );
  });

  it("getControlForm fetches the form for the given nodes", async () => {
    const port = memoryPort(DEVICE, "ops@acme.test/c", (payload) => {
      const { nodes } = decodeGetForm(payload);
      assert.deepEqual(nodes, [{ nodeId: "DigitalOutput1" }]);
      return formToXml(controlForm(specs, "s1"));
    });
    const form = await getControlForm(port, DEVICE, [{ nodeId: "DigitalOutput1" }]);
    assert.equal(form.fields.length, specs.length + 1);
  });
});
