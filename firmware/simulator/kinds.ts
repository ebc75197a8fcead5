/**
 * The simulated devices: a thermometer, a power meter and a relay, with values that change
 * plausibly (random walks within a range, counters that only grow, a relay that switches when
 * told to), and the meta tags each registers with.
 * References: XEP-0323 §3.2 (value types: numeric with unit and decimals, boolean, enum, string,
 * date, dateTime, duration, time, int, long), §3.3 (field categories), §3.4 (QoS), §3.9
 * (writable); XEP-0325 §3 (control parameters: the relay's Output); XEP-0347 §5.2 (predefined tags
 * MAN, MODEL, SN, CLASS, V).
 */
import type { ControlParameter, ParameterSpec } from "../../extensions/control/index.ts";
import type { FieldCategory, FieldValue, QosFlag, SensorField } from "../../extensions/sensor-data/index.ts";
import type { ControlHandler } from "../thing/control-server.ts";
import type { MetaTags } from "../thing/registry-client.ts";
import type { ReadoutContext, SensorSource } from "../thing/sensor-server.ts";

export const KINDS = ["thermometer", "power-meter", "relay"] as const;
export type SimulatedKind = (typeof KINDS)[number];

export interface SimulatedDevice {
  readonly kind: SimulatedKind;
  readonly tags: MetaTags;
  readonly sensors: SensorSource;
  readonly control?: ControlHandler;
  /** Advances the simulation by `ms` milliseconds. */
  tick(ms: number): void;
}

export interface DeviceOptions {
  /** The serial number (SN tag and Serial field). */
  readonly serial: string;
  /** The manufacturer's domain (MAN tag). */
  readonly manufacturer?: string;
  /** Random numbers in [0, 1) (tests pass a seeded one). */
  readonly random?: () => number;
}

const MODELS: Record<SimulatedKind, { model: string; cls: string }> = {
  thermometer: { model: "HT-1", cls: "Sensor" },
  "power-meter": { model: "PM-3", cls: "Meter" },
  relay: { model: "RL-2", cls: "Actuator" },
};

/** A value that wanders within [min, max] (steps scale with the square root of time). */
class Walk {
  constructor(
    public value: number,
    private readonly min: number,
    private readonly max: number,
    private readonly stepPerSecond: number,
    private readonly random: () => number,
  ) {}
  tick(ms: number): void {
    const step = (this.random() * 2 - 1) * this.stepPerSecond * Math.sqrt(ms / 1000);
    this.value = Math.min(this.max, Math.max(this.min, this.value + step));
  }
}

const round = (v: number, decimals: number) => Number(v.toFixed(decimals));
const numeric = (value: number, decimals: number, unit: string): FieldValue => ({
  type: "numeric",
  value: round(value, decimals),
  decimals,
  unit,
});

function field(
  name: string,
  value: FieldValue,
  categories: FieldCategory[],
  timestamp: Date,
  extra: { qos?: QosFlag[]; writable?: boolean } = {},
): SensorField {
  return {
    name,
    value,
    categories,
    qos: extra.qos ?? ["automaticReadout"],
    timestamp,
    ...(extra.writable !== undefined && { writable: extra.writable }),
  };
}

/** xs:duration of whole seconds, e.g. PT1H2M3S. */
function duration(ms: number): string {
  let s = Math.floor(ms / 1000);
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  return `PT${h}H${m}M${s}S`;
}

const xsDate = (d: Date) => d.toISOString().slice(0, 10);
const xsTime = (d: Date) => d.toISOString().slice(11, 19);

/** Fields every simulated device reports: identity and status (several value types). */
function common(
  o: DeviceOptions,
  kind: SimulatedKind,
  bootedAt: Date,
  now: Date,
  readouts: bigint,
): SensorField[] {
  return [
    field("Serial", { type: "string", value: o.serial }, ["identity"], now),
    field("Model", { type: "string", value: MODELS[kind].model }, ["identity"], now),
    field("Manufactured", { type: "date", value: "2026-01-15" }, ["identity"], now),
    field("Status", { type: "enum", value: "Ok", dataType: "DeviceStatus" }, ["status"], now),
    field(
      "Booted",
      { type: "dateTime", value: bootedAt.toISOString().replace(/\.\d+Z$/, "Z") },
      ["status"],
      now,
    ),
    field(
      "Uptime",
      { type: "duration", value: duration(now.getTime() - bootedAt.getTime()) },
      ["status"],
      now,
    ),
    field("Clock", { type: "time", value: xsTime(now) }, ["status"], now),
    field("Readouts", { type: "long", value: readouts }, ["computed"], now),
  ];
}

function thermometer(o: DeviceOptions, random: () => number): SimulatedDevice {
  const temperature = new Walk(19 + random() * 4, 10, 30, 0.05, random);
  const humidity = new Walk(40 + random() * 10, 20, 80, 0.2, random);
  let max = temperature.value;
  let min = temperature.value;
  let readouts = 0n;
  const bootedAt = new Date();
  return {
    kind: "thermometer",
    tags: tagsFor("thermometer", o),
    tick(ms) {
      temperature.tick(ms);
      humidity.tick(ms);
      max = Math.max(max, temperature.value);
      min = Math.min(min, temperature.value);
    },
    sensors() {
      const now = new Date();
      readouts++;
      return [
        field("Temperature", numeric(temperature.value, 1, "°C"), ["momentary"], now),
        field("Humidity", numeric(humidity.value, 0, "%"), ["momentary"], now),
        field("Temperature, max", numeric(max, 1, "°C"), ["peak"], now),
        field("Temperature, min", numeric(min, 1, "°C"), ["peak"], now),
        field("Battery", { type: "int", value: 97n }, ["status"], now, { qos: ["automaticEstimate"] }),
        ...common(o, "thermometer", bootedAt, now, readouts),
      ];
    },
  };
}

function powerMeter(o: DeviceOptions, random: () => number): SimulatedDevice {
  const power = new Walk(800 + random() * 1500, 50, 9000, 40, random);
  const voltage = new Walk(230, 215, 245, 0.5, random);
  let energyKwh = 1000 + Math.floor(random() * 9000);
  let peakW = power.value;
  let pulses = 0n;
  let readouts = 0n;
  const bootedAt = new Date();
  return {
    kind: "power-meter",
    tags: tagsFor("power-meter", o),
    tick(ms) {
      power.tick(ms);
      voltage.tick(ms);
      const kwh = (power.value * ms) / 3_600_000_000; // W·ms → kWh; a counter only grows
      energyKwh += kwh;
      pulses += BigInt(Math.round(kwh * 1000)); // 1000 impulses per kWh
      peakW = Math.max(peakW, power.value);
    },
    sensors() {
      const now = new Date();
      readouts++;
      return [
        field("Power", numeric(power.value, 0, "W"), ["momentary"], now),
        field("Energy", numeric(energyKwh, 3, "kWh"), ["momentary"], now),
        field("Voltage", numeric(voltage.value, 1, "V"), ["momentary"], now),
        field("Current", numeric(power.value / voltage.value, 2, "A"), ["momentary", "computed"], now),
        field("Power, peak", numeric(peakW, 0, "W"), ["peak"], now),
        field("Pulses", { type: "long", value: pulses }, ["momentary"], now),
        field("Energy, today", numeric(energyKwh % 50, 3, "kWh"), ["historicalDay"], new Date(xsDate(now)), {
          qos: ["automaticReadout", "endOfSeries"],
        }),
        ...common(o, "power-meter", bootedAt, now, readouts),
      ];
    },
  };
}

function relay(o: DeviceOptions): SimulatedDevice {
  let output = false;
  let onDelayMs = 0;
  let switches = 0;
  let readouts = 0n;
  const bootedAt = new Date();
  const control: ControlHandler = {
    parameters(): readonly ParameterSpec[] {
      return [
        { name: "Output", type: "boolean", label: "Output (on/off)", value: String(output) },
        {
          name: "OnDelay",
          type: "int",
          label: "Delay before switching on (ms)",
          value: String(onDelayMs),
          min: "0",
          max: "60000",
        },
      ];
    },
    apply(parameters: readonly ControlParameter[]) {
      for (const p of parameters) {
        // XEP-0325 §3.7: applied in document order.
        if (p.name === "Output") {
          const next = p.value === "true" || p.value === "1";
          if (next !== output) switches++;
          output = next;
        } else if (p.name === "OnDelay") {
          onDelayMs = Number(p.value);
        }
      }
    },
  };
  return {
    kind: "relay",
    tags: tagsFor("relay", o),
    control,
    tick() {},
    sensors(_ctx: ReadoutContext) {
      const now = new Date();
      readouts++;
      return [
        field("Output", { type: "boolean", value: output }, ["momentary", "status"], now, { writable: true }),
        field("OnDelay", { type: "int", value: BigInt(onDelayMs) }, ["status"], now, { writable: true }),
        field("Switches", { type: "int", value: BigInt(switches) }, ["computed"], now),
        ...common(o, "relay", bootedAt, now, readouts),
      ];
    },
  };
}

export function tagsFor(kind: SimulatedKind, o: DeviceOptions): MetaTags {
  return {
    MAN: o.manufacturer ?? "hanse.example",
    MODEL: MODELS[kind].model,
    CLASS: MODELS[kind].cls,
    SN: o.serial,
    V: 1.0,
  };
}

export function createDevice(kind: SimulatedKind, o: DeviceOptions): SimulatedDevice {
  const random = o.random ?? Math.random;
  switch (kind) {
    case "thermometer":
      return thermometer(o, random);
    case "power-meter":
      return powerMeter(o, random);
    default:
      return relay(o);
  }
}
