/**
 * Runs N simulated things of one kind: each a full Thing (own account, state file, registration,
 * claim, readout, control), started in a staggered way so a few thousand do not log in at once,
 * with their values advanced by one shared timer.
 * References: XEP-0347 §3.9 (each unclaimed thing announces its claim URI), XEP-0323/XEP-0325
 * (what the things answer); DESIGN.md §2 (firmware/ as load generator).
 */
import { createHash } from "node:crypto";
import { mkdir } from "node:fs/promises";
import { join, resolve } from "node:path";
import type { ApiKeyCredentials } from "../thing/account.ts";
import { Thing, type ThingLog, type ThingOptions } from "../thing/thing.ts";
import { type ServerAddress, serverAddressOf } from "../xmpp/options.ts";
import { createDevice, type SimulatedDevice, type SimulatedKind } from "./kinds.ts";

/** The broker every simulated thing logs in to (ServerAddress), and what to simulate. */
export interface SimulatorOptions extends ServerAddress {
  readonly kind: SimulatedKind;
  readonly count: number;
  readonly apiKey?: ApiKeyCredentials;
  /** One state file per thing lives here; the same directory gives the same things again. */
  readonly stateDir: string;
  readonly manufacturer?: string;
  readonly registry?: string | false;
  readonly provisioning?: string | false;
  /** Milliseconds between two starts (default 25). */
  readonly staggerMs?: number;
  /** Things logging in at the same time (default 16). */
  readonly parallel?: number;
  /** How often values change (default 1000 ms). */
  readonly tickMs?: number;
  /** Called with what an operator should see (claim URIs, claims, control). */
  readonly report: (event: SimulatorEvent) => void;
  readonly log?: ThingLog;
}

export type SimulatorEvent =
  | {
      readonly type: "unclaimed";
      readonly index: number;
      readonly jid: string;
      readonly uri: string;
      readonly thing: Thing;
    }
  | { readonly type: "owned"; readonly index: number; readonly jid: string; readonly owner: string }
  | { readonly type: "claimed"; readonly index: number; readonly jid: string; readonly owner: string }
  | { readonly type: "controlled"; readonly index: number; readonly jid: string; readonly text: string }
  | { readonly type: "failed"; readonly index: number; readonly error: Error };

/** A serial number that depends only on the state directory, kind and index (stable on restart). */
export function serialFor(stateDir: string, kind: SimulatedKind, index: number): string {
  const digest = createHash("sha256")
    .update(`${resolve(stateDir)}\u0000${kind}`)
    .digest("hex")
    .slice(0, 6);
  return `${digest}-${String(index).padStart(5, "0")}`.toUpperCase();
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class Simulator {
  readonly things: { thing: Thing; device: SimulatedDevice }[] = [];
  private timer: NodeJS.Timeout | undefined;
  private stopping = false;

  constructor(readonly options: SimulatorOptions) {
    if (!Number.isInteger(options.count) || options.count < 1)
      throw new RangeError("count must be a positive integer");
  }

  /** Starts every thing; resolves when each has started or failed (failures are reported). */
  async start(): Promise<{ started: number; failed: number }> {
    const o = this.options;
    await mkdir(o.stateDir, { recursive: true, mode: 0o700 });
    for (let i = 1; i <= o.count; i++) {
      const device = createDevice(o.kind, {
        serial: serialFor(o.stateDir, o.kind, i),
        ...(o.manufacturer !== undefined && { manufacturer: o.manufacturer }),
      });
      const options: ThingOptions = {
        ...serverAddressOf(o),
        ...(o.apiKey !== undefined && { apiKey: o.apiKey }),
        ...(o.registry !== undefined && { registry: o.registry }),
        ...(o.provisioning !== undefined && { provisioning: o.provisioning }),
        ...(o.log !== undefined && { log: o.log }),
        stateFile: join(o.stateDir, `${o.kind}-${i}.json`),
        usernamePrefix: o.kind,
        tags: device.tags,
        sensors: device.sensors,
        ...(device.control && { control: device.control }),
        resource: "sim",
      };
      this.things.push({ thing: new Thing(options), device });
    }
    let lastTick = Date.now();
    this.timer = setInterval(() => {
      const now = Date.now();
      for (const { device } of this.things) device.tick(now - lastTick);
      lastTick = now;
    }, o.tickMs ?? 1000);

    let next = 0;
    let started = 0;
    let failed = 0;
    const worker = async () => {
      while (!this.stopping && next < this.things.length) {
        const index = next++;
        if (index > 0) await sleep(o.staggerMs ?? 25);
        try {
          await this.startOne(index);
          started++;
        } catch (err) {
          failed++;
          o.report({ type: "failed", index: index + 1, error: err as Error });
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(o.parallel ?? 16, o.count) }, worker));
    return { started, failed };
  }

  private async startOne(index: number): Promise<void> {
    const { thing } = this.things[index]!;
    const n = index + 1;
    const report = this.options.report;
    thing.on("claimed", (owner) => report({ type: "claimed", index: n, jid: thing.jid!, owner }));
    thing.on("registered", (uri) => {
      if (uri) report({ type: "unclaimed", index: n, jid: thing.jid!, uri, thing });
    });
    thing.on("controlled", (caller, parameters) => {
      const text = `${caller} set ${parameters.map((p) => `${p.name}=${p.value}`).join(", ")}`;
      report({ type: "controlled", index: n, jid: thing.jid!, text });
    });
    thing.on("error", (error) => report({ type: "failed", index: n, error }));
    await thing.start();
    if (thing.owner) report({ type: "owned", index: n, jid: thing.jid!, owner: thing.owner });
  }

  async stop(): Promise<void> {
    this.stopping = true;
    clearInterval(this.timer);
    await Promise.all(this.things.map(({ thing }) => thing.stop().catch(() => {})));
  }
}
