/**
 * The older XSF QR string: `IoTDisco` then `;NAME:VALUE` per tag (`;#NAME:VALUE` for numbers),
 * '\' before ';' and '\' in values (we escape names the same way), UTF-8; always a claim.
 * References: XEP-0347 §3.9.
 */
import type { IotDisco } from "./iotdisco.ts";
import {
  checkTag,
  checkUnique,
  escapeLegacy,
  IotDiscoError,
  indexOfUnescaped,
  splitUnescaped,
  toTag,
  unescapeBackslashes,
} from "./iotdisco-text.ts";
import { formatDouble, type Tag, tagNameProblem } from "./tags.ts";

export const LEGACY_QR_PREFIX = "IoTDisco";

/** XEP-0347 §3.9: the older QR string for the tags of a claim. */
export function encodeLegacyQr(tags: readonly Tag[]): string {
  checkUnique(tags.map((t) => t.name));
  let out = LEGACY_QR_PREFIX;
  for (const tag of tags) {
    checkTag(tag);
    const value = tag.type === "num" ? formatDouble(tag.value) : tag.value;
    out += `;${tag.type === "num" ? "#" : ""}${escapeLegacy(tag.name)}:${escapeLegacy(value)}`;
  }
  return out;
}

export function decodeLegacy(text: string): IotDisco {
  const [prefix, ...parts] = splitUnescaped(text, ";");
  if (prefix !== LEGACY_QR_PREFIX) throw new IotDiscoError(`expected ${LEGACY_QR_PREFIX};NAME:VALUE...`);
  const tags: Tag[] = [];
  for (const raw of parts) {
    if (raw.length === 0) continue;
    const numeric = raw.startsWith("#");
    const body = numeric ? raw.slice(1) : raw;
    const colon = indexOfUnescaped(body, ":");
    if (colon <= 0) throw new IotDiscoError(`${JSON.stringify(raw)} is not NAME:VALUE`);
    const name = unescapeBackslashes(body.slice(0, colon));
    const value = unescapeBackslashes(body.slice(colon + 1));
    const problem = tagNameProblem(name);
    if (problem) throw new IotDiscoError(problem);
    tags.push(toTag({ numeric, name, op: "=", value }));
  }
  if (tags.length === 0) throw new IotDiscoError("the QR string carries no tags");
  checkUnique(tags.map((t) => t.name));
  return { kind: "claim", tags };
}
