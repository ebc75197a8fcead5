/**
 * The simulator as a load generator and as a plausible device: many power meters started with a
 * staggered start (each its own account, state file and claim URI), values that change (the
 * energy counter only grows), a second run from the same state directory reusing every account,
 * and the command line's usage errors.
 * References: XEP-0347 §3.9 (claim URIs), XEP-0323 §3.2 (numeric values with units and decimals);
 * DESIGN.md §2 (firmware/ as load generator).
 */
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { createApiKeyStore } from "../extensions/register/api-keys.ts";
import { requestReadout } from "../extensions/sensor-data/index.ts";
import { createDevice, type SimulatedDevice } from "../firmware/simulator/kinds.ts";
import { Simulator, type SimulatorEvent } from "../firmware/simulator/simulator.ts";
import type { ApiKeyCredentials } from "../firmware/thing/account.ts";
import { startTestBroker, type TestBroker } from "../server/testing/broker.ts";
import { claim, factoryApiKey, loginUser, portOf } from "./firmware-support.ts";
import { runHanse } from "./support/broker-process.ts";

const COUNT = 24;

describe("the simulator", () => {
  let broker: TestBroker;
  let apiKey: ApiKeyCredentials;
  let keyId: string;
  const dir = mkdtempSync(join(tmpdir(), "hanse-sim-"));

  before(async () => {
    broker = await startTestBroker();
    ({ id: keyId, credentials: apiKey } = await factoryApiKey(broker, 100));
    await broker.addUser("olga", "olga-pw");
  });
  after(async () => {
    await broker.stop();
  });

  const simulator = (events: SimulatorEvent[]) =>
    new Simulator({
      kind: "power-meter",
      count: COUNT,
      domain: "localhost",
      host: "127.0.0.1",
      port: broker.ports.c2s!,
      ca: broker.certificatePem,
      apiKey,
      stateDir: join(dir, "meters"),
      staggerMs: 5,
      tickMs: 100,
      report: (e) => events.push(e),
    });

  test(`${COUNT} power meters: staggered start, own accounts, claimable, counters grow, restart reuses them`, async () => {
    const events: SimulatorEvent[] = [];
    let sim = simulator(events);
    const { started, failed } = await sim.start();
    assert.deepEqual({ started, failed }, { started: COUNT, failed: 0 });
    const unclaimed = events.filter((e) => e.type === "unclaimed");
    assert.equal(unclaimed.length, COUNT);
    const jids = new Set(unclaimed.map((e) => e.jid));
    assert.equal(jids.size, COUNT, "one account each");
    assert.equal(new Set(unclaimed.map((e) => e.uri)).size, COUNT, "one claim URI each");
    assert.equal((await createApiKeyStore(broker.storage.db).accounts(keyId)).length, COUNT);

    // Claim one and read it twice: the energy counter grows, values carry units and decimals.
    const first = unclaimed.find((e) => e.index === 1)!;
    const owner = await loginUser(broker, "olga");
    try {
      await claim(owner, first.uri);
      const read = async () => {
        const r = await requestReadout(portOf(owner), `${first.jid}/sim`, {
          categories: [],
          nodes: [],
          fieldNames: ["Energy", "Power", "Voltage"],
          tokens: {},
        });
        return new Map(r.fields.map((f) => [f.name, f.value]));
      };
      const before = await read();
      await new Promise((r) => setTimeout(r, 1500));
      const later = await read();
      const energy = (m: Map<string, unknown>) =>
        m.get("Energy") as { value: number; unit: string; decimals: number };
      assert.equal(energy(before).unit, "kWh");
      assert.equal(energy(before).decimals, 3);
      assert.ok(energy(later).value >= energy(before).value, "a counter never goes back");
      const voltage = later.get("Voltage") as { value: number; unit: string };
      assert.equal(voltage.unit, "V");
      assert.ok(voltage.value >= 215 && voltage.value <= 245);
    } finally {
      await owner.stop();
    }
    await sim.stop();

    // Same state directory: the same things, no new accounts; the claimed one knows its owner.
    const again: SimulatorEvent[] = [];
    sim = simulator(again);
    assert.deepEqual(await sim.start(), { started: COUNT, failed: 0 });
    assert.equal(
      (await createApiKeyStore(broker.storage.db).accounts(keyId)).length,
      COUNT,
      "no new accounts",
    );
    assert.deepEqual(
      again.filter((e) => e.type === "owned").map((e) => e.type === "owned" && [e.index, e.owner]),
      [[1, "olga@localhost"]],
    );
    const sameUris = again
      .filter((e) => e.type === "unclaimed")
      .every((e) => unclaimed.some((u) => u.uri === e.uri));
    assert.ok(sameUris, "unclaimed things keep their claim URI");
    await sim.stop();
  });

  test("simulated values change plausibly", () => {
    let seed = 42;
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    /** The numeric value of field `name` in a readout of the device. */
    const numericField = (device: SimulatedDevice, name: string) => {
      const fields = device.sensors({
        caller: "",
        request: { seqnr: 1, categories: [], nodes: [], fieldNames: [], tokens: {} },
      });
      const f = (fields as unknown as { name: string; value: { value: number } }[]).find(
        (x) => x.name === name,
      )!;
      return f.value.value;
    };
    const meter = createDevice("power-meter", { serial: "X", random });
    const energy = () => numericField(meter, "Energy");
    let last = energy();
    for (let i = 0; i < 100; i++) {
      meter.tick(60_000); // a minute at a time
      const now = energy();
      assert.ok(now >= last, "energy never decreases");
      last = now;
    }
    const thermometer = createDevice("thermometer", { serial: "Y", random });
    for (let i = 0; i < 1000; i++) thermometer.tick(1000);
    const temperature = numericField(thermometer, "Temperature");
    assert.ok(temperature >= 10 && temperature <= 30, `temperature stays plausible: ${temperature}`);
  });

  test("hanse simulate: usage errors exit 2 with a message", async () => {
    const cases: [string[], RegExp][] = [
      [["simulate", "--kind", "toaster"], /--kind must be one of thermometer, power-meter, relay/],
      [["simulate", "--kind", "relay", "--count", "0", "--domain", "d", "--state-dir", dir], /--count/],
      [["simulate", "--kind", "relay", "--state-dir", dir], /--domain is required/],
      [
        ["simulate", "--kind", "relay", "--domain", "d", "--state-dir", dir, "--api-key", "nocolon"],
        /KEY:SECRET/,
      ],
      [["simulate", "--kind", "relay", "--bogus"], /bogus/],
    ];
    const results = await Promise.all(cases.map(([args]) => runHanse(args)));
    results.forEach((r, i) => {
      assert.equal(r.code, 2, `${cases[i]![0].join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, cases[i]![1]);
    });
  });
});
