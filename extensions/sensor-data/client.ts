/**
 * The client side of a read-out: send `req`, collect the device's messages for that seqnr until
 * it says done, filter what came back.
 * References: XEP-0323 §3.1 (accepted may be omitted if data or done arrives first; errors as
 * iq error), §3.1.2 (queued, started), §3.5 (the device may ignore hints; the client filters),
 * §3.10 (no delivery guarantee: clients need timeouts); digest §2.1.
 */
import { Element } from "ltx";
import { StanzaError } from "../../server/xml/errors.ts";
import { decodeFields, type SensorField } from "./fields.ts";
import { decodeFailure, type ReadoutFailure } from "./messages.ts";
import { NS_SENSOR_DATA } from "./namespace.ts";
import type { StanzaPort } from "./port.ts";
import { encodeReadoutRequest, matchesRequest, type ReadoutRequest, readSeqnr } from "./request.ts";

export type { StanzaPort } from "./port.ts";

export interface ReadoutResult {
  readonly fields: SensorField[];
  readonly failures: ReadoutFailure[];
}

export const DEFAULT_READOUT_TIMEOUT_MS = 10_000;

/** XEP-0323 §3.1: seqnr must be unique per client; one counter per connection. */
const seqnrs = new WeakMap<StanzaPort, number>();

export function nextSeqnr(port: StanzaPort): number {
  const next = ((seqnrs.get(port) ?? 0) % 2_147_483_647) + 1; // stays a positive xs:int
  seqnrs.set(port, next);
  return next;
}

function splitJid(jid: string): { bare: string; resource: string | undefined } {
  const slash = jid.indexOf("/");
  const bare = (slash < 0 ? jid : jid.slice(0, slash)).toLowerCase();
  return { bare, resource: slash < 0 ? undefined : jid.slice(slash + 1) };
}

/** A message from `to`, or (when `to` is bare) from any resource of it. */
export function isFrom(stanza: Element, to: string): boolean {
  const from = stanza.attrs.from;
  if (typeof from !== "string") return false;
  const a = splitJid(from);
  const b = splitJid(to);
  return a.bare === b.bare && (b.resource === undefined || a.resource === b.resource);
}

/**
 * Reads a device (or nodes behind a concentrator). Resolves with the fields that match the
 * request's field names and categories (fields of sub-nodes are kept: reading a node reads its
 * children, digest §1.1) and any failures. Rejects with the device's StanzaError if it refuses,
 * or with a timeout error if it does not finish in time.
 */
export function requestReadout(
  port: StanzaPort,
  to: string,
  r: Omit<ReadoutRequest, "seqnr"> & { seqnr?: number },
  opts: { timeoutMs?: number } = {},
): Promise<ReadoutResult> {
  const seqnr = r.seqnr ?? nextSeqnr(port);
  const request: ReadoutRequest = { ...r, seqnr };
  const timeoutMs = opts.timeoutMs ?? DEFAULT_READOUT_TIMEOUT_MS;
  const fields: SensorField[] = [];
  const failures: ReadoutFailure[] = [];

  return new Promise<ReadoutResult>((resolve, reject) => {
    let settled = false;
    const finish = (error?: unknown) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      unsubscribe();
      if (error === undefined) resolve({ fields, failures });
      else reject(error);
    };
    const timer = setTimeout(
      () => finish(new Error(`read-out ${seqnr} from ${to} did not finish within ${timeoutMs} ms`)),
      timeoutMs,
    );

    // Subscribed before sending: data and done may arrive before the iq result (§3.1).
    const unsubscribe = port.onStanza((stanza) => {
      if (stanza.name !== "message" || !isFrom(stanza, to) || stanza.attrs.type === "error") return;
      for (const payload of stanza.getChildElements()) {
        if (payload.getNS() !== NS_SENSOR_DATA) continue;
        try {
          if (readSeqnr(payload) !== seqnr) continue;
          const name = payload.getName();
          if (name === "fields") {
            const got = decodeFields(payload);
            fields.push(...got.fields.filter((f) => matchesRequest(f, { ...request, nodes: [] })));
            if (got.done) finish();
          } else if (name === "failure") {
            const got = decodeFailure(payload);
            failures.push(...got.failures);
            if (got.done) finish();
          } else if (name === "done") {
            finish();
          }
        } catch (error) {
          // A malformed answer ends the read-out: waiting longer would only hide the device's bug.
          finish(
            error instanceof StanzaError
              ? new Error(`bad read-out message from ${to}: ${error.message}`)
              : error,
          );
        }
      }
    });

    const iq = new Element("iq", {
      type: "get",
      to,
      id: `sd-${seqnr}-${Math.random().toString(36).slice(2, 10)}`,
    });
    iq.cnode(encodeReadoutRequest(request));
    port.request(iq, timeoutMs).then(
      () => {
        // accepted (queued or not), or an empty result: keep collecting until done.
      },
      (error: unknown) => finish(error),
    );
  });
}
