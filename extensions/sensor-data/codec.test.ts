/**
 * XEP-0323 codec: the digest's example, request and data round trips, rejection of bad input.
 * References: XEP-0323 §3.1–§3.8, schema; digest §2.1–§2.2.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type Element, parse } from "ltx";
import { StanzaError } from "../../server/xml/errors.ts";
import { seededRandom } from "../../test/support/seeded-random.ts";
import {
  decodeAccepted,
  decodeCancel,
  decodeFailure,
  decodeFields,
  decodeReadoutRequest,
  encodeAccepted,
  encodeCancel,
  encodeDone,
  encodeFailure,
  encodeFields,
  encodeReadoutRequest,
  FIELD_CATEGORIES,
  FIELD_VALUE_TYPES,
  type FieldValue,
  HISTORICAL_CATEGORIES,
  matchesRequest,
  NODE_LIMITS,
  readCategoryFlags,
  readNodeRefs,
  readTokens,
  type SensorField,
  sameNode,
} from "./index.ts";

const xml = (s: string) => parse(s) as Element;
const wire = (el: Element) => xml(el.toString());

function rejects(fn: () => unknown, text: RegExp): void {
  assert.throws(
    fn,
    (e: unknown) => e instanceof StanzaError && e.condition === "bad-request" && text.test(e.text ?? ""),
  );
}

describe("XEP-0323 digest example", () => {
  it("decodes the request and the fields message", () => {
    const req = decodeReadoutRequest(
      xml(`<req xmlns='urn:xmpp:iot:sensordata' seqnr='42' momentary='true'><node nodeId='M7'/></req>`),
    );
    assert.equal(req.seqnr, 42);
    assert.deepEqual(req.categories, ["momentary"]);
    assert.deepEqual(req.nodes, [{ nodeId: "M7" }]);
    assert.deepEqual(req.fieldNames, []);
    assert.deepEqual(req.tokens, {});

    const msg = decodeFields(
      xml(`<fields xmlns='urn:xmpp:iot:sensordata' seqnr='42' done='true'>
        <node nodeId='M7'>
          <timestamp value='2025-02-01T10:00:00Z'>
            <numeric name='Energy' momentary='true' automaticReadout='true' value='1043.25' unit='kWh'/>
            <string name='Serial' identity='true' value='AB-77'/>
          </timestamp>
        </node>
      </fields>`),
    );
    assert.equal(msg.seqnr, 42);
    assert.equal(msg.done, true);
    const ts = new Date("2025-02-01T10:00:00Z");
    assert.deepEqual(msg.fields, [
      {
        node: { nodeId: "M7" },
        timestamp: ts,
        name: "Energy",
        value: { type: "numeric", value: 1043.25, decimals: 2, unit: "kWh" },
        categories: ["momentary"],
        qos: ["automaticReadout"],
      },
      {
        node: { nodeId: "M7" },
        timestamp: ts,
        name: "Serial",
        value: { type: "string", value: "AB-77" },
        categories: ["identity"],
        qos: [],
      },
    ]);
    assert.equal(decodeAccepted(xml(`<accepted xmlns='urn:xmpp:iot:sensordata' seqnr='42'/>`)).queued, false);
  });
});

describe("read-out requests", () => {
  it("round-trips every attribute and child", () => {
    const r = {
      seqnr: 2147483647,
      categories: ["momentary", "historicalDay"] as const,
      nodes: [{ nodeId: "N1", sourceId: "S", cacheType: "C" }, { nodeId: "N2" }],
      fieldNames: ["Temperature", "Energy"],
      from: new Date("2025-01-01T00:00:00Z"),
      to: new Date("2025-01-02T00:00:00.250Z"),
      when: new Date("2025-01-03T12:00:00Z"),
      tokens: { serviceToken: "s1 s2", deviceToken: "d", userToken: "u" },
    };
    assert.deepEqual(
      decodeReadoutRequest(wire(encodeReadoutRequest({ ...r, categories: [...r.categories] }))),
      r,
    );
  });

  it("expands all and historical, and reads the union of flags", () => {
    const all = xml(`<req xmlns='urn:xmpp:iot:sensordata' seqnr='1' all='true'/>`);
    assert.deepEqual(readCategoryFlags(all), FIELD_CATEGORIES);
    const hist = xml(
      `<req xmlns='urn:xmpp:iot:sensordata' seqnr='1' historical='1' peak='true' status='false'/>`,
    );
    assert.deepEqual(readCategoryFlags(hist), ["peak", ...HISTORICAL_CATEGORIES]);
  });

  it("rejects missing or invalid seqnr, bad dates, bad flags and oversized requests", () => {
    const ns = "xmlns='urn:xmpp:iot:sensordata'";
    rejects(() => decodeReadoutRequest(xml(`<req ${ns}/>`)), /no seqnr/);
    rejects(() => decodeReadoutRequest(xml(`<req ${ns} seqnr='abc'/>`)), /not a 32-bit integer/);
    rejects(() => decodeReadoutRequest(xml(`<req ${ns} seqnr='2147483648'/>`)), /not a 32-bit integer/);
    rejects(() => decodeReadoutRequest(xml(`<req ${ns} seqnr='1' from='yesterday'/>`)), /from=/);
    rejects(
      () =>
        decodeReadoutRequest(
          xml(`<req ${ns} seqnr='1' from='2025-02-01T00:00:00Z' to='2025-01-01T00:00:00Z'/>`),
        ),
      /from is after to/,
    );
    rejects(() => decodeReadoutRequest(xml(`<req ${ns} seqnr='1' momentary='yes'/>`)), /not a boolean/);
    rejects(() => decodeReadoutRequest(xml(`<req ${ns} seqnr='1'><node sourceId='S'/></req>`)), /no nodeId/);
    rejects(() => decodeReadoutRequest(xml(`<req ${ns} seqnr='1'><field/></req>`)), /no name/);
    rejects(() => decodeReadoutRequest(xml(`<req xmlns='urn:other' seqnr='1'/>`)), /expected <req/);
    const nodes = Array.from(
      { length: NODE_LIMITS.nodesPerRequest + 1 },
      (_, i) => `<node nodeId='n${i}'/>`,
    ).join("");
    rejects(() => decodeReadoutRequest(xml(`<req ${ns} seqnr='1'>${nodes}</req>`)), /more than/);
    rejects(() => readTokens(xml(`<req userToken='${"t".repeat(5000)}'/>`)), /longer than/);
  });

  it("compares node references with missing attributes as empty", () => {
    assert.ok(sameNode({ nodeId: "a" }, { nodeId: "a", sourceId: "", cacheType: "" }));
    assert.ok(!sameNode({ nodeId: "a" }, { nodeId: "a", sourceId: "S" }));
    assert.deepEqual(readNodeRefs(xml(`<set><node nodeId='x' cacheType='c'/><other/></set>`)), [
      { nodeId: "x", cacheType: "c" },
    ]);
  });

  it("cancel round-trips", () => {
    assert.equal(decodeCancel(wire(encodeCancel(77))), 77);
  });
});

function randomValue(next: () => number): FieldValue {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)]!;
  // A uniformly random signed integer of `bits` bits.
  const big = (bits: bigint) => {
    let n = 0n;
    for (let i = 0n; i < bits; i += 16n) n = (n << 16n) | BigInt(Math.floor(next() * 65536));
    return (n & ((1n << bits) - 1n)) - (1n << (bits - 1n));
  };

  switch (pick(FIELD_VALUE_TYPES)) {
    case "numeric": {
      const decimals = Math.floor(next() * 5);
      const value = Number(((next() - 0.5) * 10 ** Math.floor(next() * 7)).toFixed(decimals));
      return { type: "numeric", value, decimals, unit: pick(["°C", "kWh", "", "m³/h"]) };
    }
    case "boolean":
      return { type: "boolean", value: next() < 0.5 };
    case "enum":
      return { type: "enum", value: pick(["On", "Off", "Auto"]), dataType: "Mode" };
    case "string":
      return { type: "string", value: pick(["", "AB-77", "<&>\"'", "Temperature: 21.4 °C"]) };
    case "date":
      return { type: "date", value: pick(["2024-02-29", "2025-12-31Z", "1999-01-01+02:00"]) };
    case "dateTime":
      return { type: "dateTime", value: pick(["2013-04-02T08:00:00", "2025-02-01T10:00:00.5Z"]) };
    case "duration":
      return { type: "duration", value: pick(["PT3M30S", "P1Y", "-P2DT1H"]) };
    case "time":
      return { type: "time", value: pick(["08:00:00", "23:59:59.125Z"]) };
    case "int":
      return { type: "int", value: pick([-(2n ** 31n), 2n ** 31n - 1n, 0n, big(32n)]) };
    case "long":
      return { type: "long", value: pick([-(2n ** 63n), 2n ** 63n - 1n, big(64n)]) };
  }
}

describe("fields messages", () => {
  it("round-trips random fields, keeping decimals, ranges and grouping (seeded)", () => {
    const next = seededRandom(42);
    for (let round = 0; round < 50; round++) {
      const fields: SensorField[] = [];
      for (let i = 0; i < 12; i++) {
        const node =
          next() < 0.25
            ? undefined
            : { nodeId: `n${Math.floor(next() * 3)}`, ...(next() < 0.5 && { sourceId: "S" }) };
        fields.push({
          ...(node && { node }),
          timestamp: new Date(Date.UTC(2025, 0, 1, Math.floor(next() * 3))),
          name: `f${i}`,
          value: randomValue(next),
          categories: next() < 0.5 ? ["momentary"] : ["status", "historicalDay"],
          qos: next() < 0.5 ? [] : ["automaticReadout", "signed"],
          ...(next() < 0.3 && { writable: next() < 0.5 }),
          ...(next() < 0.2 && { module: "M", stringIds: "1,2|Mod|seed" }),
        });
      }
      const el = wire(encodeFields(round, fields, round % 2 === 0));
      const back = decodeFields(el);
      assert.equal(back.seqnr, round);
      assert.equal(back.done, round % 2 === 0);
      // Grouping changes the order (by node, then timestamp), never the content.
      const key = (f: SensorField) => f.name;
      assert.deepEqual(
        [...back.fields].sort((a, b) => key(a).localeCompare(key(b))),
        [...fields].sort((a, b) => key(a).localeCompare(key(b))),
      );
      // Each node appears once, each timestamp once within its node.
      const nodeKeys = el.getChildren("node").map((n) => JSON.stringify(n.attrs));
      assert.equal(new Set(nodeKeys).size, nodeKeys.length);
    }
  });

  it("writes numeric values with their decimals", () => {
    const f: SensorField = {
      timestamp: new Date("2025-01-01T00:00:00Z"),
      name: "T",
      value: { type: "numeric", value: 21.5, decimals: 2, unit: "°C" },
      categories: [],
      qos: [],
    };
    const el = encodeFields(1, [f], true);
    assert.match(el.toString(), /value="21.50" unit="°C"/);
    assert.throws(
      () => encodeFields(1, [{ ...f, value: { type: "int", value: 2n ** 31n } }], true),
      RangeError,
    );
    assert.throws(
      () => encodeFields(1, [{ ...f, value: { type: "date", value: "2025-02-30" } }], true),
      RangeError,
    );
  });

  it("rejects malformed values", () => {
    const msg = (v: string) =>
      xml(
        `<fields xmlns='urn:xmpp:iot:sensordata' seqnr='1'><node nodeId='n'><timestamp value='2025-01-01T00:00:00Z'>${v}</timestamp></node></fields>`,
      );
    rejects(() => decodeFields(msg(`<int name='a' value='2147483648'/>`)), /xs:int/);
    rejects(() => decodeFields(msg(`<long name='a' value='12.5'/>`)), /xs:long/);
    rejects(() => decodeFields(msg(`<numeric name='a' value='abc' unit=''/>`)), /xs:double/);
    rejects(() => decodeFields(msg(`<boolean name='a' value='yes'/>`)), /xs:boolean/);
    rejects(() => decodeFields(msg(`<duration name='a' value='3 minutes'/>`)), /xs:duration/);
    rejects(() => decodeFields(msg(`<enum name='a' value='x'/>`)), /dataType/);
    rejects(() => decodeFields(msg(`<string value='x'/>`)), /no name/);
    rejects(() => decodeFields(msg(`<string name='x'/>`)), /no value/);
    rejects(
      () =>
        decodeFields(
          xml(
            `<fields xmlns='urn:xmpp:iot:sensordata' seqnr='1'><node nodeId='n'><timestamp value='now'/></node></fields>`,
          ),
        ),
      /timestamp|value=/,
    );
  });
});

describe("accepted, failure, done", () => {
  it("round-trips", () => {
    assert.deepEqual(decodeAccepted(wire(encodeAccepted(5, true))), { seqnr: 5, queued: true });
    const failures = [
      {
        node: { nodeId: "N1", sourceId: "S" },
        timestamp: new Date("2025-01-01T00:00:00Z"),
        text: "Timeout.",
      },
      { timestamp: new Date("2025-01-01T00:00:01Z"), text: "Device busy" },
    ];
    assert.deepEqual(decodeFailure(wire(encodeFailure(9, failures, true))), {
      seqnr: 9,
      done: true,
      failures,
    });
    assert.equal(encodeDone(3).toString(), `<done xmlns="urn:xmpp:iot:sensordata" seqnr="3"/>`);
  });
});

describe("matchesRequest", () => {
  const field: SensorField = {
    node: { nodeId: "N1", sourceId: "S" },
    timestamp: new Date(),
    name: "Temperature",
    value: { type: "boolean", value: true },
    categories: ["status", "historicalDay"],
    qos: [],
  };
  it("filters by node (nodeId alone covers every source), name and category", () => {
    assert.ok(matchesRequest(field, { nodes: [], fieldNames: [], categories: [] }));
    assert.ok(matchesRequest(field, { nodes: [{ nodeId: "N1" }], fieldNames: [], categories: [] }));
    assert.ok(
      !matchesRequest(field, { nodes: [{ nodeId: "N1", sourceId: "T" }], fieldNames: [], categories: [] }),
    );
    assert.ok(!matchesRequest(field, { nodes: [{ nodeId: "N2" }], fieldNames: [], categories: [] }));
    assert.ok(matchesRequest(field, { nodes: [], fieldNames: ["Temperature"], categories: [] }));
    assert.ok(!matchesRequest(field, { nodes: [], fieldNames: ["Energy"], categories: [] }));
    assert.ok(matchesRequest(field, { nodes: [], fieldNames: [], categories: ["momentary", "status"] }));
    assert.ok(!matchesRequest(field, { nodes: [], fieldNames: [], categories: ["momentary", "identity"] }));
  });
});
