/**
 * The device's other answers in a read-out: accepted, started, failure, done.
 * References: XEP-0323 §3.1 (accepted with queued, started for queued jobs, done when no fields
 * or failure message carried done='true'), §3.1.4 (failure with error elements; nodeId and
 * timestamp required), schema elements accepted, started, failure, done; digest §2.1.
 */
import { Element } from "ltx";
import { StanzaError } from "../../server/xml/errors.ts";
import { formatXsDateTime } from "../data-forms/xs-types.ts";
import { readFlag } from "./categories.ts";
import { readDone, readTimestamp } from "./fields.ts";
import { NS_SENSOR_DATA } from "./namespace.ts";
import { type NodeRef, nodeRefAttrs, readNodeRef } from "./node-ref.ts";
import { readSeqnr } from "./request.ts";

export interface ReadoutFailure {
  /** Undefined for a device without nodes. */
  readonly node?: NodeRef;
  readonly timestamp: Date;
  readonly text: string;
}

/** Most errors one decoded failure message may carry, and the longest text kept. */
export const FAILURE_LIMITS = { errors: 1000, textLength: 4096 } as const;

function expect(el: Element, name: string): void {
  if (el.getName() !== name || el.getNS() !== NS_SENSOR_DATA) {
    throw new StanzaError("bad-request", `expected <${name} xmlns='${NS_SENSOR_DATA}'/>`);
  }
}

function element(name: string, seqnr: number): Element {
  return new Element(name, { xmlns: NS_SENSOR_DATA, seqnr: String(seqnr) });
}

/** The iq result accepting a request; queued means a `started` message follows later. */
export function encodeAccepted(seqnr: number, queued = false): Element {
  const el = element("accepted", seqnr);
  if (queued) el.attrs.queued = "true";
  return el;
}

export function decodeAccepted(el: Element): { seqnr: number; queued: boolean } {
  expect(el, "accepted");
  return { seqnr: readSeqnr(el), queued: readFlag(el, "queued") };
}

export function encodeStarted(seqnr: number): Element {
  return element("started", seqnr);
}

export function decodeStarted(el: Element): number {
  expect(el, "started");
  return readSeqnr(el);
}

export function encodeDone(seqnr: number): Element {
  return element("done", seqnr);
}

export function decodeDone(el: Element): number {
  expect(el, "done");
  return readSeqnr(el);
}

export function encodeFailure(seqnr: number, failures: readonly ReadoutFailure[], done: boolean): Element {
  const el = element("failure", seqnr);
  if (done) el.attrs.done = "true";
  for (const f of failures) {
    // COMPAT: nodeId is required by the schema; a device without nodes sends nodeId=''.
    el.c("error", { ...nodeRefAttrs(f.node ?? { nodeId: "" }), timestamp: formatXsDateTime(f.timestamp) }).t(
      f.text,
    );
  }
  return el;
}

export function decodeFailure(el: Element): { seqnr: number; done: boolean; failures: ReadoutFailure[] } {
  expect(el, "failure");
  const failures: ReadoutFailure[] = [];
  for (const e of el.getChildElements()) {
    if (e.getName() !== "error") continue;
    if (failures.length >= FAILURE_LIMITS.errors) {
      throw new StanzaError(
        "bad-request",
        `more than ${FAILURE_LIMITS.errors} errors in one failure message`,
      );
    }
    const ref = e.attrs.nodeId === undefined ? undefined : readNodeRef(e);
    const node = ref && (ref.nodeId !== "" || ref.sourceId || ref.cacheType) ? ref : undefined;
    failures.push({
      ...(node && { node }),
      timestamp: readTimestamp(e, "timestamp"),
      text: e.text().slice(0, FAILURE_LIMITS.textLength),
    });
  }
  return { seqnr: readSeqnr(el), done: readDone(el), failures };
}
