/**
 * The thing SDK over a real broker, with an independent @xmpp/client as owner: the account made
 * with an API key, registration, the claim from the iotdisco URI, the owner's readout with typed
 * values, units, categories and QoS, control with setResponse and paramError, the control form,
 * cancel, the persisted state file (mode 0600, no KEY after the claim), restart without a new
 * account, disown and re-registration with a new KEY.
 * References: XEP-0077 §3.1 + XEP-0348 §2 (account), XEP-0347 §3.6, §3.9, §3.17 (register, claim,
 * disown), XEP-0323 §3.1–§3.6, XEP-0325 §3.1–§3.5.
 */
import assert from "node:assert/strict";
import { mkdtempSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { getControlForm, sendControl } from "../extensions/control/index.ts";
import { formValue } from "../extensions/data-forms/form.ts";
import { createApiKeyStore } from "../extensions/register/api-keys.ts";
import { requestReadout } from "../extensions/sensor-data/index.ts";
import type { ApiKeyCredentials } from "../firmware/thing/account.ts";
import { readStateFile } from "../firmware/thing/state.ts";
import { Thing, type ThingOptions } from "../firmware/thing/thing.ts";
import { startTestBroker, type TestBroker } from "../server/testing/broker.ts";
import {
  claim,
  conditionOf,
  factoryApiKey,
  loginUser,
  NS_DISCOVERY,
  once,
  portOf,
  simulatedThingOptions,
  until,
} from "./firmware-support.ts";
import { type TestClient, xml } from "./support/xmpp-client.ts";

describe("thing SDK against a Hanse broker", () => {
  let broker: TestBroker;
  let apiKey: ApiKeyCredentials;
  let keyId: string;
  const dir = mkdtempSync(join(tmpdir(), "hanse-firmware-"));
  const things: Thing[] = [];
  const clients: TestClient[] = [];

  before(async () => {
    broker = await startTestBroker();
    ({ id: keyId, credentials: apiKey } = await factoryApiKey(broker, 10));
    await broker.addUser("olga", "olga-pw");
  });
  after(async () => {
    await Promise.all(things.map((t) => t.stop().catch(() => {})));
    await Promise.all(clients.map((c) => c.stop().catch(() => {})));
    await broker.stop();
  });

  const login = async (user: string) => {
    const c = await loginUser(broker, user);
    clients.push(c);
    return c;
  };

  const thingOptions = (kind: "thermometer" | "relay", name: string, serial: string): ThingOptions =>
    simulatedThingOptions(broker, kind, serial, join(dir, `${name}.json`), apiKey);

  test("a thermometer: account with the API key, registration, claim, readout, restart", async () => {
    const opts = thingOptions("thermometer", "thermo", "T-0001");
    let thing = new Thing(opts);
    things.push(thing);
    const registered = once<[string]>(thing, "registered");
    await thing.start();
    const [uri] = await registered;
    assert.match(uri, /^iotdisco:/);
    assert.match(uri, /KEY=/);
    assert.match(uri, /R=registry\.localhost/);
    const jid = thing.jid!;
    assert.match(jid, /^thing-[0-9a-f]{12}@localhost$/);
    assert.deepEqual(await createApiKeyStore(broker.storage.db).accounts(keyId), [jid.split("@")[0]]);

    // The state file: mode 0600, the password, and KEY while unclaimed.
    assert.equal(statSync(opts.stateFile).mode & 0o777, 0o600);
    let state = await readStateFile(opts.stateFile);
    assert.equal(state.jid, jid);
    assert.ok(state.key && uri.includes(state.key));

    const png = await thing.claimQr("png");
    assert.deepEqual([...png.subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47], "a PNG");
    assert.match(await thing.claimQr("terminal"), /[▀▄█]/);

    const owner = await login("olga");
    const claimedEvent = once<[string]>(thing, "claimed");
    assert.equal(await claim(owner, uri), jid);
    assert.deepEqual(await claimedEvent, ["olga@localhost"]);
    assert.equal(thing.owner, "olga@localhost");
    assert.equal(thing.claimUri(), undefined, "no claim URI once claimed");
    state = await readStateFile(opts.stateFile);
    assert.equal(state.owner, "olga@localhost");
    assert.equal(state.key, undefined, "XEP-0347 §6.5: KEY forgotten after the claim");

    // The owner reads everything: typed values with units, categories and QoS.
    const port = portOf(owner);
    const result = await requestReadout(port, `${jid}/fw`, {
      categories: [],
      nodes: [],
      fieldNames: [],
      tokens: {},
    });
    const byName = new Map(result.fields.map((f) => [f.name, f]));
    const temperature = byName.get("Temperature")!;
    assert.equal(temperature.value.type, "numeric");
    if (temperature.value.type === "numeric") {
      assert.equal(temperature.value.unit, "°C");
      assert.equal(temperature.value.decimals, 1);
      assert.ok(temperature.value.value >= 10 && temperature.value.value <= 30);
    }
    assert.deepEqual(temperature.categories, ["momentary"]);
    assert.deepEqual(byName.get("Serial")!.value, { type: "string", value: "T-0001" });
    assert.deepEqual(byName.get("Serial")!.categories, ["identity"]);
    assert.deepEqual(byName.get("Status")!.value, { type: "enum", value: "Ok", dataType: "DeviceStatus" });
    assert.equal(byName.get("Battery")!.value.type, "int");
    assert.deepEqual(byName.get("Battery")!.qos, ["automaticEstimate"]);
    for (const [name, type] of [
      ["Manufactured", "date"],
      ["Booted", "dateTime"],
      ["Uptime", "duration"],
      ["Clock", "time"],
      ["Readouts", "long"],
    ] as const) {
      assert.equal(byName.get(name)?.value.type, type, name);
    }
    // Categories asked for: only identity fields come back.
    const identity = await requestReadout(port, `${jid}/fw`, {
      categories: ["identity"],
      nodes: [],
      fieldNames: [],
      tokens: {},
    });
    assert.deepEqual(identity.fields.map((f) => f.name).sort(), ["Manufactured", "Model", "Serial"]);

    // Restart: same JID, no new account, still owned, no registration.
    await thing.stop();
    thing = new Thing(opts);
    things.push(thing);
    let registeredAgain = false;
    thing.on("registered", () => {
      registeredAgain = true;
    });
    await thing.start();
    assert.equal(thing.jid, jid);
    assert.equal(thing.owner, "olga@localhost");
    assert.equal(registeredAgain, false);
    assert.equal((await createApiKeyStore(broker.storage.db).accounts(keyId)).length, 1, "no new account");
    const again = await requestReadout(port, `${jid}/fw`, {
      categories: [],
      nodes: [],
      fieldNames: ["Temperature"],
      tokens: {},
    });
    assert.deepEqual(
      again.fields.map((f) => f.name),
      ["Temperature"],
    );

    // Disown (XEP-0347 §3.17): the thing acknowledges, forgets its owner, registers with a new KEY.
    const disowned = once(thing, "disowned");
    const reRegistered = once<[string]>(thing, "registered");
    await owner.iqCaller.request(
      xml("iq", { type: "set", to: "registry.localhost" }, xml("disown", { xmlns: NS_DISCOVERY, jid })),
    );
    await disowned;
    const [newUri] = await reRegistered;
    assert.equal(thing.owner, undefined);
    assert.notEqual(newUri, uri, "a new KEY");
    assert.equal(await claim(owner, newUri), jid, "claimable again with the new URI");
    await until("claimed again", () => thing.owner);
  });

  test("a relay: control changes the next readout; bad parameters get paramError; the form", async () => {
    const thing = new Thing(thingOptions("relay", "relay", "R-0001"));
    things.push(thing);
    const registered = once<[string]>(thing, "registered");
    await thing.start();
    const [uri] = await registered;
    const owner = await login("olga");
    await claim(owner, uri);
    await until("claimed", () => thing.owner);
    const port = portOf(owner);
    const to = `${thing.jid}/fw`;
    const output = async () =>
      (await requestReadout(port, to, { categories: [], nodes: [], fieldNames: ["Output"], tokens: {} }))
        .fields[0]!.value;

    assert.deepEqual(await output(), { type: "boolean", value: false });
    const controlled = once(thing, "controlled");
    const applied = await sendControl(port, to, {
      nodes: [],
      parameters: [{ name: "Output", type: "boolean", value: "true" }],
      tokens: {},
    });
    assert.deepEqual(applied.parameterNames, ["Output"]);
    await controlled;
    assert.deepEqual(await output(), { type: "boolean", value: true });

    // XEP-0325 §3.1: a set in a message, no answer; the readout shows it.
    await owner.send(
      xml(
        "message",
        { to },
        xml("set", { xmlns: "urn:xmpp:iot:control" }, xml("boolean", { name: "Output", value: "false" })),
      ),
    );
    await until("switched off by message", async () => {
      const v = await output();
      return v.type === "boolean" && v.value === false ? true : undefined;
    });

    // Unknown parameter, wrong type, out of range: errors, nothing applied (all or nothing).
    const set = (parameters: { name: string; type: "boolean" | "int" | "string"; value: string }[]) =>
      sendControl(port, to, { nodes: [], parameters, tokens: {} });
    assert.equal(
      await conditionOf(set([{ name: "Colour", type: "string", value: "red" }])),
      "item-not-found",
    );
    assert.equal(await conditionOf(set([{ name: "Output", type: "int", value: "1" }])), "bad-request");
    assert.equal(
      await conditionOf(
        set([
          { name: "Output", type: "boolean", value: "true" },
          { name: "OnDelay", type: "int", value: "999999" },
        ]),
      ),
      "bad-request",
    );
    assert.deepEqual(await output(), { type: "boolean", value: false }, "nothing applied");

    // XEP-0325 §3.4: the control form carries the current values.
    const form = await getControlForm(port, to);
    assert.equal(formValue(form, "Output"), "false");
    assert.equal(formValue(form, "OnDelay"), "0");
  });
});
