/**
 * Field-type flags (categories) and quality-of-service flags, both boolean attributes.
 * References: XEP-0323 §3.3 (field types; on a request several mean the union, on a field the
 * intersection; `all` and `historical` shorthands), §3.4 (quality of service; none set means
 * automaticReadout), schema attribute groups fieldTypes and fieldQoS; digest §2.2.
 */
import type { Element } from "ltx";
import { readBooleanAttr } from "./attributes.ts";

export type FieldCategory =
  | "momentary"
  | "peak"
  | "status"
  | "computed"
  | "identity"
  | "historicalSecond"
  | "historicalMinute"
  | "historicalHour"
  | "historicalDay"
  | "historicalWeek"
  | "historicalMonth"
  | "historicalQuarter"
  | "historicalYear"
  | "historicalOther";

export const HISTORICAL_CATEGORIES: readonly FieldCategory[] = [
  "historicalSecond",
  "historicalMinute",
  "historicalHour",
  "historicalDay",
  "historicalWeek",
  "historicalMonth",
  "historicalQuarter",
  "historicalYear",
  "historicalOther",
];

export const FIELD_CATEGORIES: readonly FieldCategory[] = [
  "momentary",
  "peak",
  "status",
  "computed",
  "identity",
  ...HISTORICAL_CATEGORIES,
];

export type QosFlag =
  | "missing"
  | "inProgress"
  | "automaticEstimate"
  | "manualEstimate"
  | "manualReadout"
  | "automaticReadout"
  | "timeOffset"
  | "warning"
  | "error"
  | "endOfSeries"
  | "powerFailure"
  | "signed"
  | "invoiced"
  | "invoiceConfirmed";

export const QOS_FLAGS: readonly QosFlag[] = [
  "missing",
  "inProgress",
  "automaticEstimate",
  "manualEstimate",
  "manualReadout",
  "automaticReadout",
  "timeOffset",
  "warning",
  "error",
  "endOfSeries",
  "powerFailure",
  "signed",
  "invoiced",
  "invoiceConfirmed",
];

/** An xs:boolean attribute; absent is false; anything else is a bad-request naming it. */
export function readFlag(el: Element, name: string): boolean {
  return readBooleanAttr(el, name) ?? false;
}

/**
 * The categories flagged on a request (or `canRead`): the union, with `all` meaning every
 * category and `historical` every historical one. An empty result means none was given, which
 * a request reads as "all".
 */
export function readCategoryFlags(el: Element): FieldCategory[] {
  const all = readFlag(el, "all");
  const historical = readFlag(el, "historical");
  return FIELD_CATEGORIES.filter(
    (c) => all || (historical && HISTORICAL_CATEGORIES.includes(c)) || readFlag(el, c),
  );
}

/** Sets `c='true'` for each category. */
export function writeCategoryFlags(el: Element, categories: readonly FieldCategory[]): void {
  for (const c of FIELD_CATEGORIES) if (categories.includes(c)) el.attrs[c] = "true";
}

/** The QoS flags on a field, in canonical order. */
export function readQosFlags(el: Element): QosFlag[] {
  return QOS_FLAGS.filter((q) => readFlag(el, q));
}

export function writeQosFlags(el: Element, qos: readonly QosFlag[]): void {
  for (const q of QOS_FLAGS) if (qos.includes(q)) el.attrs[q] = "true";
}
