/**
 * requestReadout over an in-memory port that plays a small device.
 * References: XEP-0323 §3.1 (accepted, queued/started, fields, failure, done; iq errors), §3.5.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Element } from "ltx";
import { StanzaError } from "../../server/xml/errors.ts";
import {
  decodeReadoutRequest,
  encodeAccepted,
  encodeDone,
  encodeFailure,
  encodeFields,
  encodeStarted,
  requestReadout,
  type SensorField,
} from "./index.ts";
import { memoryPort } from "./testing.ts";

const DEVICE = "meter7@acme.test/fw";
const CLIENT = "ops@acme.test/console";
const at = new Date("2025-02-01T10:00:00Z");

function field(name: string, categories: SensorField["categories"]): SensorField {
  return {
    node: { nodeId: "M7" },
    timestamp: at,
    name,
    value: { type: "boolean", value: true },
    categories,
    qos: [],
  };
}

const message = (payload: Element, from = DEVICE) =>
  new Element("message", { from, to: CLIENT }).cnode(payload).root();

describe("requestReadout", () => {
  it("collects fields and failures until done, keeping only what was asked for", async () => {
    const port = memoryPort(DEVICE, CLIENT, (payload, _iq, device) => {
      const req = decodeReadoutRequest(payload);
      assert.deepEqual(req.nodes, [{ nodeId: "M7" }]);
      // Another client's read-out and a stranger's message must not be mixed in.
      device.emit(message(encodeFields(req.seqnr + 1, [field("Other", ["momentary"])], true)));
      device.emit(
        message(encodeFields(req.seqnr, [field("Spoof", ["momentary"])], true), "mallory@evil.test/x"),
      );
      // Data may arrive before the iq result (§3.1); the device ignores the category hint.
      device.emit(
        message(
          encodeFields(req.seqnr, [field("Energy", ["momentary"]), field("Serial", ["identity"])], false),
        ),
      );
      device.emit(
        message(
          encodeFailure(
            req.seqnr,
            [{ node: { nodeId: "M7" }, timestamp: at, text: "Sub-meter offline" }],
            false,
          ),
        ),
      );
      device.emit(message(encodeDone(req.seqnr)));
      return encodeAccepted(req.seqnr);
    });
    const result = await requestReadout(port, DEVICE, {
      categories: ["momentary"],
      nodes: [{ nodeId: "M7" }],
      fieldNames: [],
      tokens: {},
    });
    assert.deepEqual(
      result.fields.map((f) => f.name),
      ["Energy"],
    );
    assert.deepEqual(result.failures, [{ node: { nodeId: "M7" }, timestamp: at, text: "Sub-meter offline" }]);
  });

  it("follows a queued read-out (accepted queued, started, fields done) from a bare JID", async () => {
    const port = memoryPort(DEVICE, CLIENT, (payload, _iq, device) => {
      const { seqnr } = decodeReadoutRequest(payload);
      setTimeout(() => {
        device.emit(message(encodeStarted(seqnr)));
        device.emit(message(encodeFields(seqnr, [field("Energy", ["momentary"])], true)));
      }, 20);
      return encodeAccepted(seqnr, true);
    });
    const result = await requestReadout(port, "meter7@acme.test", {
      categories: [],
      nodes: [],
      fieldNames: [],
      tokens: {},
    });
    assert.equal(result.fields.length, 1);
  });

  it("uses a fresh seqnr per request on the same port", async () => {
    const seen: number[] = [];
    const port = memoryPort(DEVICE, CLIENT, (payload, _iq, device) => {
      const { seqnr } = decodeReadoutRequest(payload);
      seen.push(seqnr);
      device.emit(message(encodeDone(seqnr)));
      return undefined; // accepted omitted: allowed when done arrives (§3.1)
    });
    const empty = { categories: [], nodes: [], fieldNames: [], tokens: {} };
    await requestReadout(port, DEVICE, empty);
    await requestReadout(port, DEVICE, empty);
    assert.equal(new Set(seen).size, 2);
  });

  it("rejects with the device's stanza error", async () => {
    const port = memoryPort(DEVICE, CLIENT, () => {
      throw new StanzaError("forbidden", "Access denied.");
    });
    await assert.rejects(
      requestReadout(port, DEVICE, { categories: [], nodes: [], fieldNames: [], tokens: {} }),
      (e: unknown) => e instanceof StanzaError && e.condition === "forbidden",
    );
  });

  it("times out with a clear error and stops listening", async () => {
    let listening = 0;
    const inner = memoryPort(DEVICE, CLIENT, (payload) =>
      encodeAccepted(decodeReadoutRequest(payload).seqnr),
    );
    const port = {
      ...inner,
      onStanza(l: (s: Element) => void) {
        listening++;
        const off = inner.onStanza(l);
        return () => {
          listening--;
          off();
        };
      },
    };
    await assert.rejects(
      requestReadout(
        port,
        DEVICE,
        { categories: [], nodes: [], fieldNames: [], tokens: {} },
        { timeoutMs: 50 },
      ),
      /did not finish within 50 ms/,
    );
    assert.equal(listening, 0);
  });
});
