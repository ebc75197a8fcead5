/**
 * Checks and reads the root element of an incoming stream, as saxes reports it: the stream header
 * is `<stream>` in the stream namespace, under a prefix, with the content namespace as default.
 *
 * References: RFC 6120 §4.7 (stream attributes), §4.8.1, §4.8.2, §4.8.5 (stream, content and
 * default namespaces, the "stream" prefix), §4.9.3.2 (bad-namespace-prefix), §4.9.3.10
 * (invalid-namespace).
 */

import type { SaxesTagNS } from "saxes";
import type { StreamErrorCondition } from "./errors.ts";
import { NS } from "./namespaces.ts";

export interface HeaderViolation {
  readonly condition: StreamErrorCondition;
  readonly text: string;
}

/** What is wrong with the stream header `tag`, or undefined when it is acceptable. */
export function streamHeaderViolation(tag: SaxesTagNS, contentNs: string): HeaderViolation | undefined {
  if (tag.local !== "stream" || tag.uri !== NS.stream) {
    // RFC 6120 §4.8.1, §4.9.3.10
    return {
      condition: "invalid-namespace",
      text: "the stream header must be <stream> in the stream namespace",
    };
  }
  if (tag.prefix === "") {
    // RFC 6120 §4.9.3.2: the header needs a prefix, since the default namespace is the content
    // namespace (§4.8.2, which must differ from the stream namespace). Any prefix bound to the
    // stream namespace is fine: we are namespace-aware (§4.8.5 makes "stream" the convention).
    return { condition: "bad-namespace-prefix", text: "the stream element must use a namespace prefix" };
  }
  if (tag.ns[""] !== contentNs) {
    // RFC 6120 §4.8.2, §4.9.3.10: the content namespace must be declared as the default.
    return { condition: "invalid-namespace", text: `the default namespace must be ${contentNs}` };
  }
  return undefined;
}

/**
 * The header's attributes except namespace declarations (`xml:lang` under that name), and the
 * namespaces it declares by prefix ("" is the default namespace).
 */
export function streamHeaderAttributes(tag: SaxesTagNS): {
  attrs: Record<string, string>;
  declared: Record<string, string>;
} {
  const attrs: Record<string, string> = {};
  const attributes = tag.attributes;
  for (const key in attributes) {
    const a = attributes[key]!;
    if (a.prefix !== "xmlns" && a.name !== "xmlns") attrs[a.name] = a.value;
  }
  const declared: Record<string, string> = {};
  for (const prefix in tag.ns) declared[prefix] = tag.ns[prefix]!;
  return { attrs, declared };
}
