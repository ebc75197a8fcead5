/**
 * Read-out data messages: `fields` (values grouped by node, then by timestamp) and their
 * decoding.
 * References: XEP-0323 §3.1 (fields messages, done), §3.2 (value types), §3.3 (field types on a
 * field mean the intersection), §3.4 (QoS; none set means automaticReadout), §3.9 (module,
 * stringIds, writable), schema element fields (node → timestamp value=xs:dateTime → values).
 */
import { Element } from "ltx";
import { StanzaError } from "../../server/xml/errors.ts";
import { formatXsDateTime, parseXsBoolean } from "../data-forms/xs-types.ts";
import { readDateTimeAttr } from "./attributes.ts";
import {
  type FieldCategory,
  type QosFlag,
  readCategoryFlags,
  readFlag,
  readQosFlags,
  writeCategoryFlags,
  writeQosFlags,
} from "./categories.ts";
import { type FieldValue, fieldValueAttrs, isFieldValueType, readFieldValue } from "./field-values.ts";
import { NS_SENSOR_DATA } from "./namespace.ts";
import { type NodeRef, nodeKey, nodeRefAttrs, readNodeRef } from "./node-ref.ts";
import { readSeqnr } from "./request.ts";

export interface SensorField {
  /** Undefined for a device without nodes. */
  readonly node?: NodeRef;
  readonly timestamp: Date;
  readonly name: string;
  readonly value: FieldValue;
  readonly categories: readonly FieldCategory[];
  readonly qos: readonly QosFlag[];
  readonly writable?: boolean;
  readonly module?: string;
  readonly stringIds?: string;
}

/** Most fields one decoded message may carry. */
export const MAX_FIELDS_PER_MESSAGE = 10_000;

/**
 * COMPAT: the schema has no place for values outside a `node`, so a device without nodes sends
 * `<node nodeId=''>`; we read that back as "no node".
 */
const NO_NODE: NodeRef = { nodeId: "" };

function isNoNode(ref: NodeRef): boolean {
  return ref.nodeId === "" && !ref.sourceId && !ref.cacheType;
}

/** Groups by node, then timestamp, each in order of first appearance. */
export function encodeFields(seqnr: number, fields: readonly SensorField[], done: boolean): Element {
  const el = new Element("fields", { xmlns: NS_SENSOR_DATA, seqnr: String(seqnr) });
  if (done) el.attrs.done = "true";
  const nodes = new Map<string, { node: Element; stamps: Map<number, Element> }>();
  for (const field of fields) {
    const ref = field.node ?? NO_NODE;
    const key = nodeKey(ref);
    let group = nodes.get(key);
    if (!group) {
      group = { node: el.c("node", nodeRefAttrs(ref)), stamps: new Map() };
      nodes.set(key, group);
    }
    const time = field.timestamp.getTime();
    let stamp = group.stamps.get(time);
    if (!stamp) {
      stamp = group.node.c("timestamp", { value: formatXsDateTime(field.timestamp) });
      group.stamps.set(time, stamp);
    }
    const value = stamp.c(field.value.type, { name: field.name, ...fieldValueAttrs(field.value) });
    writeCategoryFlags(value, field.categories);
    writeQosFlags(value, field.qos);
    if (field.writable !== undefined) value.attrs.writable = field.writable ? "true" : "false";
    if (field.module !== undefined) value.attrs.module = field.module;
    if (field.stringIds !== undefined) value.attrs.stringIds = field.stringIds;
  }
  return el;
}

export function readDone(el: Element): boolean {
  return readFlag(el, "done");
}

export function readTimestamp(el: Element, attr: string): Date {
  const d = readDateTimeAttr(el, attr);
  if (!d) throw new StanzaError("bad-request", `${attr}='' is not an xs:dateTime`); // required
  return d;
}

function readField(el: Element, node: NodeRef | undefined, timestamp: Date): SensorField {
  const name = el.attrs.name;
  if (typeof name !== "string")
    throw new StanzaError("bad-request", `a <${el.getName()}/> field has no name`);
  const writable = el.attrs.writable === undefined ? undefined : parseXsBoolean(String(el.attrs.writable));
  return {
    ...(node && { node }),
    timestamp,
    name,
    value: readFieldValue(el),
    categories: readCategoryFlags(el),
    qos: readQosFlags(el),
    ...(writable !== undefined && { writable }),
    ...(typeof el.attrs.module === "string" && { module: el.attrs.module }),
    ...(typeof el.attrs.stringIds === "string" && { stringIds: el.attrs.stringIds }),
  };
}

/** Reads a `fields` message payload; unknown child elements are ignored (XEP-0323 extensibility). */
export function decodeFields(el: Element): { seqnr: number; done: boolean; fields: SensorField[] } {
  if (el.getName() !== "fields" || el.getNS() !== NS_SENSOR_DATA) {
    throw new StanzaError("bad-request", `expected <fields xmlns='${NS_SENSOR_DATA}'/>`);
  }
  const fields: SensorField[] = [];
  const readStamp = (stamp: Element, node: NodeRef | undefined) => {
    const timestamp = readTimestamp(stamp, "value");
    for (const v of stamp.getChildElements()) {
      if (!isFieldValueType(v.getName())) continue;
      if (fields.length >= MAX_FIELDS_PER_MESSAGE) {
        throw new StanzaError("bad-request", `more than ${MAX_FIELDS_PER_MESSAGE} fields in one message`);
      }
      fields.push(readField(v, node, timestamp));
    }
  };
  for (const child of el.getChildElements()) {
    if (child.getName() === "node") {
      const ref = readNodeRef(child);
      const node = isNoNode(ref) ? undefined : ref;
      for (const stamp of child.getChildElements())
        if (stamp.getName() === "timestamp") readStamp(stamp, node);
    } else if (child.getName() === "timestamp") {
      readStamp(child, undefined); // COMPAT: tolerated from devices that leave out the node
    }
  }
  return { seqnr: readSeqnr(el), done: readDone(el), fields };
}
