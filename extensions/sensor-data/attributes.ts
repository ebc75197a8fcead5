/**
 * Typed attributes on incoming IoT elements (sensor data, concentrators): an optional xs:boolean
 * or xs:dateTime attribute, read strictly so that a malformed one is a bad-request naming it
 * rather than a silently wrong value.
 * References: XML Schema Part 2 §3.2.2 (boolean), §3.2.7 (dateTime); XEP-0323 schema (from, to,
 * when, timestamp, done, the category flags), XEP-0326 schema (hasChildren, isReadable,
 * lastChanged, ...); RFC 6120 §8.3.3.1 (bad-request).
 */
import type { Element } from "ltx";
import { StanzaError } from "../../server/xml/errors.ts";
import { parseXsBoolean, parseXsDateTime } from "../data-forms/xs-types.ts";

/** The xs:boolean attribute `name`, undefined when absent. */
export function readBooleanAttr(el: Element, name: string): boolean | undefined {
  const v = el.attrs[name];
  if (v === undefined) return undefined;
  const b = parseXsBoolean(String(v));
  if (b === undefined) throw new StanzaError("bad-request", `${name}='${String(v)}' is not a boolean`);
  return b;
}

/** The xs:dateTime attribute `name`, undefined when absent. */
export function readDateTimeAttr(el: Element, name: string): Date | undefined {
  const v = el.attrs[name];
  if (v === undefined) return undefined;
  const d = parseXsDateTime(String(v));
  if (!d) throw new StanzaError("bad-request", `${name}='${String(v)}' is not an xs:dateTime`);
  return d;
}
