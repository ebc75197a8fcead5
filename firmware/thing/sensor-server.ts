/**
 * The device side of XEP-0323: answers `req` with `accepted` after asking who may read what,
 * then sends the fields in `fields` messages (one per node, the last one `done`), or `failure`;
 * a `when` in the future queues the readout (`accepted queued`, then `started`); `cancel` stops a
 * readout that has not finished.
 * References: XEP-0323 §3.1 (request, accepted, fields, done), §3.2 (failure), §3.4 (several
 * nodes, partial results), §3.5 (queued readouts: accepted queued='true', then started), §3.6
 * (cancel, cancelled), §3.7 (forbidden / item-not-found / bad-request as iq errors), §5.3
 * (the device may ignore hints; it must not send what provisioning did not allow);
 * XEP-0324 §3.1 (the canRead answer narrows nodes, fields and categories).
 */
import { Element } from "ltx";
import {
  decodeCancel,
  decodeReadoutRequest,
  encodeAccepted,
  encodeCancelled,
  encodeDone,
  encodeFailure,
  encodeFields,
  encodeStarted,
  matchesRequest,
  type NodeRef,
  NS_SENSOR_DATA,
  nodeKey,
  type ReadoutFailure,
  type ReadoutRequest,
  type SensorField,
} from "../../extensions/sensor-data/index.ts";
import { StanzaError } from "../../server/xml/errors.ts";
import type { Log } from "../xmpp/connection.ts";
import type { IqHandler } from "../xmpp/iq.ts";
import { type AccessDecider, allowedNodes, type ReadAccess, requireAllowed } from "./decisions.ts";
import { senderOf } from "./sender.ts";

/** What the data source is asked: the request as narrowed by provisioning, and who asks. */
export interface ReadoutContext {
  readonly request: ReadoutRequest;
  /** The caller's bare JID. */
  readonly caller: string;
}

/** What a data source returns: the fields (the SDK filters them by the request), and failures. */
export type ReadoutData =
  | readonly SensorField[]
  | { fields: readonly SensorField[]; failures?: ReadoutFailure[] };

export type SensorSource = (ctx: ReadoutContext) => ReadoutData | Promise<ReadoutData>;

export interface SensorServerDeps {
  readonly decider: AccessDecider;
  readonly source: SensorSource;
  send(stanza: Element): void;
  onIq(type: "get" | "set", ns: string, name: string, handler: IqHandler): void;
  /** The nodes this thing hosts (concentrators); undefined for a thing without nodes. */
  nodeExists?(node: NodeRef): boolean;
  readonly log?: Log;
  /** Readouts running or queued at once (an outsider must not grow this without bound). */
  readonly maxActive?: number;
  /** How far ahead a `when` may lie (ms). */
  readonly maxDelayMs?: number;
}

/** The request the data source and the filter see: narrowed by the canRead answer. */
export function narrowRead(req: ReadoutRequest, access: ReadAccess): ReadoutRequest {
  return {
    ...req,
    nodes: access.nodes.length > 0 ? access.nodes : req.nodes,
    fieldNames: access.fieldNames.length > 0 ? access.fieldNames : req.fieldNames,
    categories: access.categories.length > 0 ? access.categories : req.categories,
  };
}

export function startSensorServer(deps: SensorServerDeps): { stop(): void; readonly active: number } {
  const active = new Map<string, { cancelled: boolean; timer?: NodeJS.Timeout }>();
  const maxActive = deps.maxActive ?? 100;
  const maxDelayMs = deps.maxDelayMs ?? 24 * 3600_000;

  const message = (to: string, payload: Element) => {
    const m = new Element("message", { to });
    m.cnode(payload);
    deps.send(m);
  };

  /** `request` is the narrowed one; `asked` what the caller asked for (nothing beyond it is sent). */
  async function run(
    from: string,
    request: ReadoutRequest,
    asked: ReadoutRequest,
    caller: string,
    job: { cancelled: boolean },
  ) {
    const key = `${from}\u0000${request.seqnr}`;
    try {
      const data = await deps.source({ request, caller });
      if (job.cancelled) return;
      const all = Array.isArray(data)
        ? (data as readonly SensorField[])
        : (data as { fields: readonly SensorField[] }).fields;
      const failures = Array.isArray(data) ? [] : ((data as { failures?: ReadoutFailure[] }).failures ?? []);
      // §5.3: the device filters too, and never sends what provisioning did not allow, nor more
      // than was asked for (a service's answer narrows a request; it never widens it).
      const fields = all.filter((f) => matchesRequest(f, request) && matchesRequest(f, asked));
      const groups = new Map<string, SensorField[]>();
      for (const f of fields) {
        const k = f.node ? nodeKey(f.node) : "";
        const group = groups.get(k);
        if (group) group.push(f);
        else groups.set(k, [f]);
      }
      const batches = [...groups.values()];
      // §3.4: one message per node, partial results; the last message carries done.
      batches.forEach((batch, i) => {
        if (job.cancelled) return;
        const last = i === batches.length - 1 && failures.length === 0;
        message(from, encodeFields(request.seqnr, batch, last));
      });
      if (job.cancelled) return;
      if (failures.length > 0) message(from, encodeFailure(request.seqnr, failures, true));
      else if (batches.length === 0) message(from, encodeDone(request.seqnr));
    } catch (err) {
      // §3.2: the readout failed; the caller learns it from a failure message.
      deps.log?.("warn", "readout failed", { seqnr: request.seqnr, error: (err as Error).message });
      if (!job.cancelled) {
        message(
          from,
          encodeFailure(request.seqnr, [{ timestamp: new Date(), text: (err as Error).message }], true),
        );
      }
    } finally {
      active.delete(key);
    }
  }

  deps.onIq("get", NS_SENSOR_DATA, "req", async (iq) => {
    const from = iq.attrs.from ?? "";
    const caller = senderOf(iq);
    const req = iq.getChild("req", NS_SENSOR_DATA)!;
    const request = decodeReadoutRequest(req); // §3.7: bad-request for a malformed request
    const key = `${from}\u0000${request.seqnr}`;
    if (active.has(key)) throw new StanzaError("bad-request", `readout ${request.seqnr} is still running`);
    if (active.size >= maxActive) throw new StanzaError("resource-constraint", "too many readouts at once");
    const unknown = request.nodes.find((n) => !deps.nodeExists?.(n));
    if (unknown) throw new StanzaError("item-not-found", `no node ${unknown.nodeId}`); // §3.7
    const access = await deps.decider.canRead(caller, request);
    requireAllowed(access, "read"); // §3.7
    allowedNodes(request.nodes, access.nodes, "read");
    const narrowed = narrowRead(request, access);
    const delay = request.when ? request.when.getTime() - Date.now() : 0;
    if (delay > maxDelayMs) throw new StanzaError("bad-request", "the readout time lies too far ahead");
    const job: { cancelled: boolean; timer?: NodeJS.Timeout } = { cancelled: false };
    active.set(key, job);
    if (delay > 0) {
      // §3.5: queued until `when`; started tells the caller it runs now.
      job.timer = setTimeout(() => {
        if (job.cancelled) return;
        message(from, encodeStarted(request.seqnr));
        void run(from, narrowed, request, caller, job);
      }, delay);
      return encodeAccepted(request.seqnr, true);
    }
    // The result (accepted) goes out when this handler returns; the data after it.
    setImmediate(() => void run(from, narrowed, request, caller, job));
    return encodeAccepted(request.seqnr, false);
  });

  // §3.6: cancel (an iq get in the XEP's example; set is accepted too).
  const cancel = (iq: Element) => {
    const from = iq.attrs.from ?? "";
    const seqnr = decodeCancel(iq.getChild("cancel", NS_SENSOR_DATA)!);
    const job = active.get(`${from}\u0000${seqnr}`);
    if (!job) throw new StanzaError("item-not-found", `no readout ${seqnr} to cancel`);
    job.cancelled = true;
    clearTimeout(job.timer);
    active.delete(`${from}\u0000${seqnr}`);
    return encodeCancelled(seqnr);
  };
  deps.onIq("get", NS_SENSOR_DATA, "cancel", cancel);
  deps.onIq("set", NS_SENSOR_DATA, "cancel", cancel);

  return {
    stop() {
      for (const job of active.values()) {
        job.cancelled = true;
        clearTimeout(job.timer);
      }
      active.clear();
    },
    get active() {
      return active.size;
    },
  };
}
