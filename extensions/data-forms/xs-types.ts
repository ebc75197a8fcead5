/**
 * Lexical checks for the XML Schema datatypes the IoT XEPs and data-form validation use, and the
 * conversions we need (dateTime to Date, int/long to bigint, double with its decimals).
 * References: XML Schema Part 2 §3.2.2 (boolean), §3.2.5 (double), §3.2.6 (duration), §3.2.7
 * (dateTime, time zones), §3.2.8 (time), §3.2.9 (date), §3.3.16–17 (long, int); XEP-0122 §3
 * (xs: datatypes in form validation); XEP-0323 §2.2 digest (numeric keeps its decimals; a
 * dateTime without a zone is in the reader's own zone).
 */

/** xs:boolean (§3.2.2.1): "true", "false", "1", "0"; whitespace collapses. */
export function parseXsBoolean(v: string): boolean | undefined {
  switch (v.trim()) {
    case "true":
    case "1":
      return true;
    case "false":
    case "0":
      return false;
    default:
      return undefined;
  }
}

const DOUBLE = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;

/** xs:double (§3.2.5.1), including INF, -INF and NaN. */
export function parseXsDouble(v: string): number | undefined {
  const s = v.trim();
  if (s === "INF" || s === "+INF") return Number.POSITIVE_INFINITY;
  if (s === "-INF") return Number.NEGATIVE_INFINITY;
  if (s === "NaN") return Number.NaN;
  if (!DOUBLE.test(s)) return undefined;
  return Number(s);
}

/** How many digits follow the decimal point in a plain decimal lexical form ("21.50" -> 2). */
export function decimalsOf(lexical: string): number {
  const s = lexical.trim();
  if (/[eE]/.test(s)) return 0;
  const dot = s.indexOf(".");
  return dot < 0 ? 0 : s.length - dot - 1;
}

/** Lexical form of a double with a fixed number of decimals; XSD spellings for the specials. */
export function formatXsDouble(value: number, decimals?: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Number.POSITIVE_INFINITY) return "INF";
  if (value === Number.NEGATIVE_INFINITY) return "-INF";
  // String() and toFixed() both drop the sign of negative zero; xs:double keeps it.
  if (Object.is(value, -0)) return decimals ? `-${(0).toFixed(Math.min(decimals, 100))}` : "-0";
  if (decimals === undefined) return String(value);
  // toFixed works only up to 100 decimals and switches to exponent form from 1e21.
  if (decimals <= 100 && Math.abs(value) < 1e21) return value.toFixed(decimals);
  return String(value);
}

const INT_RANGES = {
  int: [-(2n ** 31n), 2n ** 31n - 1n],
  long: [-(2n ** 63n), 2n ** 63n - 1n],
} as const;

/** xs:int / xs:long (§3.3.16–17): an optional sign, digits, inside the 32/64-bit range. */
export function parseXsInteger(v: string, kind: "int" | "long"): bigint | undefined {
  const s = v.trim();
  if (!/^[+-]?\d{1,40}$/.test(s)) return undefined;
  const n = BigInt(s);
  const [min, max] = INT_RANGES[kind];
  return n < min || n > max ? undefined : n;
}

const TZ = "(Z|[+-]\\d{2}:\\d{2})?";
const DATE_PART = "(-?\\d{4,})-(\\d{2})-(\\d{2})";
const TIME_PART = "(\\d{2}):(\\d{2}):(\\d{2})(\\.\\d+)?";
const DATE_RE = new RegExp(`^${DATE_PART}${TZ}$`);
const TIME_RE = new RegExp(`^${TIME_PART}${TZ}$`);
const DATETIME_RE = new RegExp(`^${DATE_PART}T${TIME_PART}${TZ}$`);

function daysInMonth(year: number, month: number): number {
  if (month === 2) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
  return [4, 6, 9, 11].includes(month) ? 30 : 31;
}

function validDate(y: string, m: string, d: string): boolean {
  if (y.replace("-", "").length > 4 && y.replace("-", "").startsWith("0")) return false; // §3.2.7.1
  const year = Number(y);
  const month = Number(m);
  const day = Number(d);
  if (year === 0) return false; // XSD 1.0 has no year zero
  return month >= 1 && month <= 12 && day >= 1 && day <= daysInMonth(year, month);
}

function validTime(h: string, mi: string, s: string, frac: string | undefined): boolean {
  // §3.2.7: 24:00:00 is allowed and means midnight at the end of the day.
  if (h === "24") return mi === "00" && s === "00" && (!frac || /^\.0+$/.test(frac));
  return Number(h) <= 23 && Number(mi) <= 59 && Number(s) <= 59;
}

function validZone(tz: string | undefined): boolean {
  if (!tz || tz === "Z") return true;
  const [hh, mm] = tz.slice(1).split(":").map(Number) as [number, number];
  return mm <= 59 && (hh < 14 || (hh === 14 && mm === 0));
}

export function isXsDate(v: string): boolean {
  const m = DATE_RE.exec(v);
  return !!m && validDate(m[1]!, m[2]!, m[3]!) && validZone(m[4]);
}

export function isXsTime(v: string): boolean {
  const m = TIME_RE.exec(v);
  return !!m && validTime(m[1]!, m[2]!, m[3]!, m[4]) && validZone(m[5]);
}

export function isXsDateTime(v: string): boolean {
  const m = DATETIME_RE.exec(v);
  return !!m && validDate(m[1]!, m[2]!, m[3]!) && validTime(m[4]!, m[5]!, m[6]!, m[7]) && validZone(m[8]);
}

// §3.2.6.1: PnYnMnDTnHnMnS; at least one part, and T only with a time part after it.
const DURATION_RE = /^-?P(?=\d|T\d)(\d+Y)?(\d+M)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+(\.\d+)?S)?)?$/;

export function isXsDuration(v: string): boolean {
  return DURATION_RE.test(v);
}

/**
 * xs:dateTime to a Date. Only four-digit years (what a Date and a device clock can hold). No zone
 * means "undefined": like XEP-0323 says, the reader assumes its own zone.
 */
export function parseXsDateTime(v: string): Date | undefined {
  const m = DATETIME_RE.exec(v);
  if (!m || !isXsDateTime(v) || !/^\d{4}$/.test(m[1]!)) return undefined;
  const [year, month, day, hour, minute, second] = [1, 2, 3, 4, 5, 6].map((i) => Number(m[i]));
  const ms = m[7] ? Math.floor(Number(`0${m[7]}`) * 1000) : 0;
  const tz = m[8];
  // set*FullYear, unlike the Date constructor, does not map years 0–99 to 19xx.
  const date = new Date(0);
  if (tz === undefined) {
    date.setFullYear(year!, month! - 1, day!);
    date.setHours(hour!, minute!, second!, ms);
  } else {
    const sign = tz.startsWith("-") ? -1 : 1;
    const offsetMinutes = tz === "Z" ? 0 : sign * (Number(tz.slice(1, 3)) * 60 + Number(tz.slice(4, 6)));
    date.setUTCFullYear(year!, month! - 1, day!);
    date.setUTCHours(hour!, minute! - offsetMinutes, second!, ms);
  }
  return Number.isNaN(date.getTime()) ? undefined : date;
}

/** A Date as xs:dateTime in UTC, without a fraction when it is whole seconds. */
export function formatXsDateTime(d: Date): string {
  const iso = d.toISOString();
  return iso.endsWith(".000Z") ? `${iso.slice(0, -5)}Z` : iso;
}

/** RRGGBB or RRGGBBAA in hex (XEP-0325 color). */
export function isColor(v: string): boolean {
  return /^[0-9A-Fa-f]{6}([0-9A-Fa-f]{2})?$/.test(v);
}

/**
 * The value types the IoT XEPs share, each with the check of its lexical form: the parameter
 * types of XEP-0325 §3.2; XEP-0326 node parameters are these without date; XEP-0323 §3.2 field
 * values use the lexical ones and add numeric and enum. One table, so the XEPs cannot drift apart.
 */
export const VALUE_TYPE_CHECKS = {
  boolean: (v: string) => parseXsBoolean(v) !== undefined,
  color: isColor, // XEP-0325 §3.2: RRGGBB or RRGGBBAA
  date: isXsDate,
  dateTime: isXsDateTime,
  double: (v: string) => parseXsDouble(v) !== undefined,
  duration: isXsDuration,
  int: (v: string) => parseXsInteger(v, "int") !== undefined,
  long: (v: string) => parseXsInteger(v, "long") !== undefined,
  string: () => true,
  time: isXsTime,
} as const satisfies Record<string, (lexical: string) => boolean>;

export type ValueType = keyof typeof VALUE_TYPE_CHECKS;

export const VALUE_TYPES = Object.keys(VALUE_TYPE_CHECKS) as readonly ValueType[];
