/**
 * The simulated things of the readout scenario, in their own process (so their CPU is measured
 * apart from the broker's and the generator's): COUNT thermometers from the device SDK
 * (firmware/thing, firmware/simulator/kinds.ts), each a full Thing with its own connection
 * (STARTTLS, SCRAM), logged in with pre-created accounts PREFIX<FIRST>…, no registry and no
 * provisioning service, with the readers approved as friends on the device itself. They answer
 * XEP-0323 readouts as a real device would.
 *
 * Usage: node --import tsx bench/lib/readout-things.ts JSON   (see ThingsSpec). Prints
 * `THINGS_READY {"started":N,"failed":M}` once every thing is online or failed, then runs until
 * SIGTERM.
 * References: XEP-0323 §3.1 (readout); XEP-0324 §3.1 (without a provisioning service, the owner and
 * locally approved friends may read); RFC 6121 §2.2.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createDevice, type SimulatedDevice } from "../../firmware/simulator/kinds.ts";
import { Thing } from "../../firmware/thing/thing.ts";

export interface ThingsSpec {
  readonly domain: string;
  readonly host: string;
  readonly port: number;
  readonly prefix: string;
  readonly password: string;
  /** Account index of the first thing; the things are PREFIX<first> … PREFIX<first+count-1>. */
  readonly first: number;
  readonly count: number;
  /** Bare JIDs that may read every thing. */
  readonly readers: readonly string[];
  readonly resource: string;
  /** Logins at a time. */
  readonly parallel: number;
}

const spec = JSON.parse(process.argv[2] ?? "") as ThingsSpec;
const stateDir = mkdtempSync(join(tmpdir(), "hanse-bench-things-"));
const things: { thing: Thing; device: SimulatedDevice }[] = [];
for (let i = 0; i < spec.count; i++) {
  const username = `${spec.prefix}${spec.first + i}`;
  const device = createDevice("thermometer", { serial: `BENCH-${i}` });
  const thing = new Thing({
    domain: spec.domain,
    host: spec.host,
    port: spec.port,
    tls: "starttls",
    rejectUnauthorized: false, // the bench broker's certificate is self-signed
    account: { username, password: spec.password },
    stateFile: join(stateDir, `${username}.json`),
    registry: false,
    provisioning: false,
    friends: spec.readers,
    sensors: device.sensors,
    resource: spec.resource,
    streamManagement: false,
  });
  thing.on("error", (err) => process.stderr.write(`thing ${username}: ${err.message}\n`));
  things.push({ thing, device });
}

let next = 0;
let started = 0;
let failed = 0;
const errors: string[] = [];
await Promise.all(
  Array.from({ length: Math.min(spec.parallel, spec.count) }, async () => {
    while (next < things.length) {
      const { thing } = things[next++]!;
      try {
        await thing.start();
        started++;
      } catch (err) {
        failed++;
        if (errors.length < 5) errors.push((err as Error).message);
      }
    }
  }),
);
// Values move as on a real device.
let last = Date.now();
const ticker = setInterval(() => {
  const now = Date.now();
  for (const { device } of things) device.tick(now - last);
  last = now;
}, 1000);
process.stdout.write(`THINGS_READY ${JSON.stringify({ started, failed, errors })}\n`);

const stop = async () => {
  clearInterval(ticker);
  await Promise.all(things.map(({ thing }) => thing.stop().catch(() => {})));
  rmSync(stateDir, { recursive: true, force: true });
  process.exit(0);
};
process.once("SIGTERM", () => void stop());
process.once("SIGINT", () => void stop());
