/**
 * The whole life cycle end to end, with `hanse simulate` as a child process: a simulated
 * thermometer creates its account with an API key and registers; its owner (an independent
 * @xmpp/client) claims it from the printed iotdisco URI; a stranger's readout is refused until the
 * owner answers the provisioning question, then it returns the right typed values and units; after
 * a restart the thing keeps its JID (no new account), its owner and the rule. A simulated relay:
 * control by a stranger goes through canControl; the owner allows one parameter, the other is
 * refused, and the readout shows the change. A thing with two nodes: the owner allows a stranger
 * one node only; the stranger's readout and control of both reach that node alone.
 * References: XEP-0077 + XEP-0348 (account), XEP-0347 §3.6, §3.9 (register, claim), XEP-0324
 * §3.1–§3.5 (canRead, canControl, narrowing, clearCache), XEP-0323 §3.1, XEP-0325 §3.2, §3.6
 * (control of several nodes), XEP-0326 (a thing with nodes);
 * docs/protocol/provisioning-questions.md (the owner's answer form).
 */
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { sendControl } from "../extensions/control/index.ts";
import { createApiKeyStore } from "../extensions/register/api-keys.ts";
import {
  type NodeRef,
  requestCoversNode,
  requestReadout,
  type SensorField,
} from "../extensions/sensor-data/index.ts";
import { Thing } from "../firmware/thing/thing.ts";
import { startTestBroker, type TestBroker } from "../server/testing/broker.ts";
import {
  claim,
  conditionOf,
  factoryApiKey,
  loginUser,
  portOf,
  simulatedThingOptions,
  until,
} from "./firmware-support.ts";
import { spawnHanse } from "./support/broker-process.ts";
import { type Element, type TestClient, xml } from "./support/xmpp-client.ts";

const NS_DATA = "jabber:x:data";
const QUESTION = "urn:hanse:iot:provisioning:question:0";
const PROVISIONING = "provisioning.localhost";

/** A running `hanse simulate`, its output collected line by line. */
class Simulation {
  private out = "";
  private err = "";
  readonly exited: Promise<number | null>;

  constructor(readonly child: ChildProcess) {
    child.stdout!.setEncoding("utf8").on("data", (s: string) => {
      this.out += s;
    });
    child.stderr!.setEncoding("utf8").on("data", (s: string) => {
      this.err += s;
    });
    this.exited = new Promise((resolve) => child.once("exit", (code) => resolve(code)));
  }

  /** The first output line matching `pattern` (waits for it). */
  line(pattern: RegExp, timeoutMs = 30_000): Promise<RegExpMatchArray> {
    return until(
      `a line matching ${pattern}\n--- stdout ---\n${this.out}\n--- stderr ---\n${this.err}`,
      () =>
        this.out
          .split("\n")
          .map((l) => l.match(pattern))
          .find((m) => m) ?? undefined,
      timeoutMs,
    );
  }

  get output(): string {
    return this.out;
  }

  async stop(): Promise<number | null> {
    this.child.kill("SIGTERM");
    return this.exited;
  }
}

/** The question form in a message to the owner, if it is one. */
function questionOf(stanza: Element): Element | undefined {
  if (!stanza.is("message")) return undefined;
  return stanza
    .getChildren("x", NS_DATA)
    .find((x) =>
      x.getChildren("field").some((f) => f.attrs.var === "FORM_TYPE" && f.getChildText("value") === QUESTION),
    );
}

function fieldValues(x: Element, name: string): string[] {
  const field = x.getChildren("field").find((f) => f.attrs.var === name);
  return field ? field.getChildren("value").map((v) => v.text()) : [];
}

/** The owner answers a question: allow or deny, for the caller, from now on (and a selection). */
async function answer(
  owner: TestClient,
  question: Element,
  decision: "allow" | "deny",
  selection: Record<string, string[]> = {},
): Promise<void> {
  const fields: Record<string, string[]> = {
    key: fieldValues(question, "key"),
    decision: [decision],
    scope: ["caller"],
    duration: ["always"],
    ...selection,
  };
  const x = xml(
    "x",
    { xmlns: NS_DATA, type: "submit" },
    xml("field", { var: "FORM_TYPE", type: "hidden" }, xml("value", {}, QUESTION)),
    ...Object.entries(fields).map(([name, values]) =>
      xml("field", { var: name }, ...values.map((v) => xml("value", {}, v))),
    ),
  );
  await owner.iqCaller.request(xml("iq", { type: "set", to: PROVISIONING }, x));
}

describe("thing life cycle with provisioning, through hanse simulate", () => {
  let broker: TestBroker;
  let apiKey: Awaited<ReturnType<typeof factoryApiKey>>;
  const dir = mkdtempSync(join(tmpdir(), "hanse-simulate-"));
  const caFile = join(dir, "ca.pem");
  const clients: TestClient[] = [];
  const sims: Simulation[] = [];
  const things: Thing[] = [];

  before(async () => {
    broker = await startTestBroker();
    writeFileSync(caFile, broker.certificatePem);
    apiKey = await factoryApiKey(broker, 10);
    for (const name of ["olga", "sven", "otto", "sina", "nora", "kurt"])
      await broker.addUser(name, `${name}-pw`);
  });
  after(async () => {
    await Promise.all(sims.map((s) => s.stop()));
    await Promise.all(things.map((t) => t.stop().catch(() => {})));
    await Promise.all(clients.map((c) => c.stop().catch(() => {})));
    await broker.stop();
  });

  const login = async (user: string) => {
    const c = await loginUser(broker, user);
    clients.push(c);
    return c;
  };

  const simulate = (kind: string, stateDir: string, extra: string[] = []) => {
    const sim = new Simulation(
      spawnHanse([
        "simulate",
        ...["--kind", kind, "--count", "1", "--domain", "localhost", "--host", "127.0.0.1"],
        ...["--port", String(broker.ports.c2s), "--api-key", `${apiKey.id}:${apiKey.credentials.secret}`],
        ...["--state-dir", stateDir, "--ca", caFile],
        ...extra,
      ]),
    );
    sims.push(sim);
    return sim;
  };

  test("simulated thermometer: claim from the printed URI, a stranger refused until allowed, restart", async () => {
    const stateDir = join(dir, "thermometers");
    let sim = simulate("thermometer", stateDir, ["--qr"]);
    const [, jid, uri] = await sim.line(/^thermometer 1 (\S+) unclaimed (iotdisco:\S+)$/);
    await sim.line(/[▀▄█]{4}/); // --qr: the claim code drawn on the terminal
    assert.match(jid!, /^thermometer-[0-9a-f]{12}@localhost$/);

    const owner = await login("olga");
    assert.equal(await claim(owner, uri!), jid);
    await sim.line(/^thermometer 1 \S+ claimed by olga@localhost$/);

    // The thing's resource is "sim"; a stranger reads without being a friend.
    const to = `${jid}/sim`;
    const stranger = await login("sven");
    const readout = () =>
      requestReadout(portOf(stranger), to, { categories: [], nodes: [], fieldNames: [], tokens: {} });
    assert.equal(await conditionOf(readout()), "forbidden");

    // XEP-0324: the thing asked canRead; the service asks the owner; the owner allows.
    const question = questionOf(await owner.nextStanza((s) => questionOf(s) !== undefined, 15_000))!;
    assert.deepEqual(fieldValues(question, "kind"), ["read"]);
    assert.deepEqual(fieldValues(question, "caller"), ["sven@localhost"]);
    await answer(owner, question, "allow");

    // clearCache reaches the thing; the next readout is answered with typed values and units.
    const fields = await until("the readout to be allowed", async () => {
      try {
        return (await readout()).fields;
      } catch {
        return undefined;
      }
    });
    const check = (all: SensorField[]) => {
      const byName = new Map(all.map((f) => [f.name, f]));
      const t = byName.get("Temperature")!.value;
      assert.equal(t.type, "numeric");
      if (t.type === "numeric") {
        assert.equal(t.unit, "°C");
        assert.equal(t.decimals, 1);
        assert.ok(t.value >= 10 && t.value <= 30, `plausible: ${t.value}`);
      }
      const h = byName.get("Humidity")!.value;
      assert.ok(h.type === "numeric" && h.unit === "%" && h.decimals === 0);
      assert.equal(byName.get("Serial")!.value.type, "string");
      assert.deepEqual(byName.get("Serial")!.categories, ["identity"]);
      assert.equal(byName.get("Readouts")!.value.type, "long");
      assert.equal(byName.get("Uptime")!.value.type, "duration");
    };
    check(fields);

    // Restart: SIGTERM stops cleanly; the same state directory gives the same thing.
    assert.equal(await sim.stop(), 0, sim.output);
    assert.match(sim.output, /^stopped$/m);
    sim = simulate("thermometer", stateDir);
    const [, again] = await sim.line(/^thermometer 1 (\S+) owned by olga@localhost$/);
    assert.equal(again, jid, "same JID");
    assert.deepEqual(
      (await createApiKeyStore(broker.storage.db).accounts(apiKey.id)).length,
      1,
      "no new account",
    );
    assert.doesNotMatch(sim.output, /unclaimed/, "not registered again");
    // The rule and the cached decision survive: the stranger reads at once, no new question.
    check(await until("readout after restart", async () => (await readout().catch(() => undefined))?.fields));
    assert.equal(owner.inbox.filter((s) => questionOf(s) !== undefined).length, 0, "no second question");
  });

  test("friendship: a stranger's subscription is refused and asked about; once allowed the thing befriends", async () => {
    const thing = new Thing(
      simulatedThingOptions(
        broker,
        "thermometer",
        "TH-FRIEND-1",
        join(dir, "friendly.json"),
        apiKey.credentials,
      ),
    );
    things.push(thing);
    const registered = new Promise<string>((resolve) => thing.once("registered", resolve));
    await thing.start();
    assert.equal(thing.provisioningService, PROVISIONING, "found with service discovery");
    const owner = await login("olga");
    await claim(owner, await registered);
    await until("claimed", () => thing.owner);
    const stranger = await login("sina");
    const thingJid = thing.jid!;

    // RFC 6121 §3.2.1: refused for now (isFriend said no); the owner is asked (kind friend).
    await stranger.send(xml("presence", { type: "subscribe", to: thingJid }));
    await stranger.nextStanza((s) => s.is("presence") && s.attrs.type === "unsubscribed", 15_000);
    const question = questionOf(
      await owner.nextStanza((s) => {
        const q = questionOf(s);
        return q !== undefined && fieldValues(q, "caller")[0] === "sina@localhost";
      }, 15_000),
    )!;
    assert.deepEqual(fieldValues(question, "kind"), ["friend"]);
    await answer(owner, question, "allow");

    // XEP-0324 §3.1: the service recommends the friendship; the thing asks to see the stranger.
    await stranger.nextStanza(
      (s) => s.is("presence") && s.attrs.type === "subscribe" && s.attrs.from === thingJid,
      15_000,
    );
    // Asking again now succeeds: the thing approves.
    await stranger.send(xml("presence", { type: "subscribe", to: thingJid }));
    await stranger.nextStanza(
      (s) => s.is("presence") && s.attrs.type === "subscribed" && s.attrs.from === thingJid,
      15_000,
    );
  });

  test("simulated relay: a stranger's control is asked about, one parameter allowed, the other refused", async () => {
    const thing = new Thing(
      simulatedThingOptions(broker, "relay", "RL-PROV-1", join(dir, "relay.json"), apiKey.credentials),
    );
    things.push(thing);
    const registered = new Promise<string>((resolve) => thing.once("registered", resolve));
    await thing.start();
    const owner = await login("otto");
    await claim(owner, await registered);
    await until("claimed", () => thing.owner);
    const stranger = await login("sina");
    const to = `${thing.jid}/fw`;
    const port = portOf(stranger);
    const set = (parameters: { name: string; type: "boolean" | "int"; value: string }[]) =>
      sendControl(port, to, { nodes: [], parameters, tokens: {} });

    // Both parameters at once: refused, and the owner is asked about both.
    const both = [
      { name: "Output", type: "boolean" as const, value: "true" },
      { name: "OnDelay", type: "int" as const, value: "500" },
    ];
    assert.equal(await conditionOf(set(both)), "forbidden");
    const question = questionOf(await owner.nextStanza((s) => questionOf(s) !== undefined, 15_000))!;
    assert.deepEqual(fieldValues(question, "kind"), ["control"]);
    assert.deepEqual(fieldValues(question, "parameters").sort(), ["OnDelay", "Output"]);
    await answer(owner, question, "allow", { parameters: ["Output"] });

    // Narrowed (XEP-0324 §3.4): only Output is applied, and setResponse says so.
    const applied = await until("control allowed", () => set(both).catch(() => undefined));
    assert.deepEqual(applied.parameterNames, ["Output"]);
    // The denied parameter alone is refused.
    assert.equal(await conditionOf(set([{ name: "OnDelay", type: "int", value: "500" }])), "forbidden");

    // The owner reads: Output changed, OnDelay did not.
    const values = new Map(
      (
        await requestReadout(portOf(owner), to, { categories: [], nodes: [], fieldNames: [], tokens: {} })
      ).fields.map((f) => [f.name, f.value]),
    );
    assert.deepEqual(values.get("Output"), { type: "boolean", value: true });
    assert.deepEqual(values.get("OnDelay"), { type: "int", value: 0n });
  });
  test("a thing with two nodes: the owner allows a stranger one node; readout and control reach only it", async () => {
    // A concentrator-style thing: two rooms, each with a temperature and a writable setpoint.
    const rooms = [
      { nodeId: "Room1", displayName: "Kitchen", nodeType: "Room", isControllable: true },
      { nodeId: "Room2", displayName: "Hall", nodeType: "Room", isControllable: true },
    ];
    const setpoints = new Map(rooms.map((r) => [r.nodeId, 20]));
    const thing = new Thing({
      ...simulatedThingOptions(
        broker,
        "thermometer",
        "TH-ROOMS-1",
        join(dir, "rooms.json"),
        apiKey.credentials,
      ),
      nodes: rooms,
      sensors({ request }) {
        const now = new Date();
        return rooms
          .filter((n) => request.nodes.length === 0 || request.nodes.some((r) => requestCoversNode(r, n)))
          .flatMap((n): SensorField[] =>
            [
              ["Temperature", 21.5],
              ["Setpoint", setpoints.get(n.nodeId)!],
            ].map(([name, value]) => ({
              node: { nodeId: n.nodeId },
              timestamp: now,
              name: name as string,
              value: { type: "numeric", value: value as number, decimals: 1, unit: "°C" },
              categories: ["momentary"],
              qos: ["automaticReadout"],
            })),
          );
      },
      control: {
        parameters: (node?: NodeRef) =>
          node
            ? [
                {
                  name: "Setpoint",
                  type: "double",
                  label: "Setpoint",
                  value: String(setpoints.get(node.nodeId)),
                },
              ]
            : [],
        apply(parameters, node) {
          for (const p of parameters)
            if (node && p.name === "Setpoint") setpoints.set(node.nodeId, Number(p.value));
        },
      },
    });
    things.push(thing);
    const registered = new Promise<string>((resolve) => thing.once("registered", resolve));
    await thing.start();
    const owner = await login("nora");
    await claim(owner, await registered);
    await until("claimed", () => thing.owner);
    const stranger = await login("kurt");
    const to = `${thing.jid}/fw`;
    const port = portOf(stranger);
    const bothRooms = [{ nodeId: "Room1" }, { nodeId: "Room2" }];
    const questionAbout = async (kind: string) =>
      questionOf(
        await owner.nextStanza((s) => {
          const q = questionOf(s);
          return (
            q !== undefined && fieldValues(q, "thing")[0] === thing.jid && fieldValues(q, "kind")[0] === kind
          );
        }, 15_000),
      )!;
    const questionsLeft = () =>
      owner.inbox.filter((s) => {
        const q = questionOf(s);
        return q !== undefined && fieldValues(q, "thing")[0] === thing.jid;
      }).length;

    // Readout of both nodes: refused, and the owner is asked, with both nodes offered.
    const readBoth = () =>
      requestReadout(port, to, { categories: [], nodes: bothRooms, fieldNames: [], tokens: {} });
    assert.equal(await conditionOf(readBoth()), "forbidden");
    const readQuestion = await questionAbout("read");
    assert.deepEqual(fieldValues(readQuestion, "caller"), ["kurt@localhost"]);
    assert.deepEqual(fieldValues(readQuestion, "nodes").sort(), ["Room1", "Room2"]);
    // XEP-0324 §3.1: the owner allows the kitchen only; canReadResponse narrows to it.
    await answer(owner, readQuestion, "allow", { nodes: ["Room1"] });
    const read = await until("readout allowed", () => readBoth().catch(() => undefined));
    assert.deepEqual(
      [...new Set(read.fields.map((f) => f.node?.nodeId))],
      ["Room1"],
      "only the kitchen's fields",
    );
    assert.deepEqual(read.fields.map((f) => f.name).sort(), ["Setpoint", "Temperature"]);

    // Control of both nodes: refused, asked; the owner allows the kitchen only.
    const setBoth = () =>
      sendControl(port, to, {
        nodes: bothRooms,
        parameters: [{ name: "Setpoint", type: "double", value: "23.5" }],
        tokens: {},
      });
    assert.equal(await conditionOf(setBoth()), "forbidden");
    const controlQuestion = await questionAbout("control");
    assert.deepEqual(fieldValues(controlQuestion, "nodes").sort(), ["Room1", "Room2"]);
    assert.deepEqual(fieldValues(controlQuestion, "parameters"), ["Setpoint"]);
    await answer(owner, controlQuestion, "allow", { nodes: ["Room1"] });
    // XEP-0324 §3.4: only the kitchen is set, and setResponse names it.
    const applied = await until("control allowed", () => setBoth().catch(() => undefined));
    assert.deepEqual(
      applied.nodes.map((n) => n.nodeId),
      ["Room1"],
    );
    assert.deepEqual(applied.parameterNames, ["Setpoint"]);
    assert.deepEqual(Object.fromEntries(setpoints), { Room1: 23.5, Room2: 20 });
    // The owner reads both rooms and sees the same.
    const seen = await requestReadout(portOf(owner), to, {
      categories: [],
      nodes: bothRooms,
      fieldNames: ["Setpoint"],
      tokens: {},
    });
    assert.deepEqual(
      seen.fields.map((f) => [f.node?.nodeId, f.value.type === "numeric" ? f.value.value : undefined]),
      [
        ["Room1", 23.5],
        ["Room2", 20],
      ],
    );

    // The stranger's later readouts are decided by the rule: still narrowed, no new question.
    const again = await readBoth();
    assert.deepEqual([...new Set(again.fields.map((f) => f.node?.nodeId))], ["Room1"]);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(questionsLeft(), 0, "no new question");
  });
});
