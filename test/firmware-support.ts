/**
 * Helpers for the firmware tests: an independent @xmpp/client as owner or stranger speaking to a
 * thing (logged in to the test broker; a StanzaPort over it for the shared client codecs), a
 * manufacturer's API key, the options of a simulated device as a Thing, claiming a thing from its
 * iotdisco URI, and waiting for events.
 * References: XEP-0348 §2 (API keys), XEP-0347 §3.9 (mine with exactly the thing's tags),
 * XEP-0323/XEP-0325 (client side through extensions/sensor-data and extensions/control);
 * RFC 6121 §2.2 (the client fetches its roster before going online).
 */
import { createApiKeyStore } from "../extensions/register/api-keys.ts";
import { loginAs } from "../extensions/roster/testing.ts";
import type { StanzaPort } from "../extensions/sensor-data/index.ts";
import { createDevice, type SimulatedKind } from "../firmware/simulator/kinds.ts";
import type { ApiKeyCredentials } from "../firmware/thing/account.ts";
import type { ThingOptions } from "../firmware/thing/thing.ts";
import type { XmppClient } from "../firmware/xmpp/client.ts";
import type { TestBroker } from "../server/testing/broker.ts";
import { type Element, loginTo, type TestClient, xml } from "./support/xmpp-client.ts";

export const NS_DISCOVERY = "urn:xmpp:iot:discovery";

/** `user` (password `${user}-pw`) logged in to the broker like a good client: roster fetched, online. */
export function loginUser(broker: TestBroker, user: string): Promise<TestClient> {
  return loginAs((u, resource) => loginTo(broker, u, `${u}-pw`, resource ? { resource } : {}), user);
}

/** A manufacturer's API key on the broker (XEP-0348): its id, and the credentials a thing signs with. */
export async function factoryApiKey(
  broker: TestBroker,
  maxAccounts: number,
): Promise<{ id: string; credentials: ApiKeyCredentials }> {
  const key = await createApiKeyStore(broker.storage.db).create({ owner: "factory@localhost", maxAccounts });
  return { id: key.id, credentials: { key: key.id, secret: key.secret } };
}

/**
 * A simulated device of `kind` as a Thing on the broker: it creates its account with the API key,
 * keeps its state in `stateFile`, answers as resource "fw" and does not reconnect.
 */
export function simulatedThingOptions(
  broker: TestBroker,
  kind: SimulatedKind,
  serial: string,
  stateFile: string,
  apiKey: ApiKeyCredentials,
): ThingOptions {
  const device = createDevice(kind, { serial });
  return {
    domain: broker.domain,
    host: "127.0.0.1",
    port: broker.ports.c2s!,
    ca: broker.certificatePem,
    stateFile,
    apiKey,
    tags: device.tags,
    sensors: device.sensors,
    ...(device.control && { control: device.control }),
    resource: "fw",
    reconnect: false,
  };
}

/** The shared client codecs over an @xmpp/client connection. */
export function portOf(client: TestClient): StanzaPort {
  return {
    request: (iq, timeoutMs) => client.iqCaller.request(iq, timeoutMs),
    send: (stanza) => void client.send(stanza),
    onStanza(listener) {
      const l = (s: Element) => listener(s);
      client.on("stanza", l);
      return () => client.off("stanza", l);
    },
  };
}

/**
 * Parses the tags of an iotdisco claim URI as an owner's app would (XEP-0347 digest §6.3:
 * `NAME=VALUE`, `#NAME=VALUE` for numbers, `;`-separated, `\` escapes, percent-encoding) —
 * written here independently of the registry's own parser.
 */
export function tagsOfClaimUri(uri: string): { tags: Element[]; registry: string | undefined } {
  if (!uri.startsWith("iotdisco:")) throw new Error(`not an iotdisco URI: ${uri}`);
  const parts: string[] = [];
  let current = "";
  const body = uri.slice("iotdisco:".length);
  for (let i = 0; i < body.length; i++) {
    const c = body[i]!;
    if (c === "\\" && i + 1 < body.length) {
      current += body[++i];
    } else if (c === ";") {
      parts.push(current);
      current = "";
    } else current += c;
  }
  if (current) parts.push(current);
  const tags: Element[] = [];
  let registry: string | undefined;
  for (const part of parts) {
    const numeric = part.startsWith("#");
    const eq = part.indexOf("=");
    const name = decodeURIComponent(part.slice(numeric ? 1 : 0, eq));
    const value = decodeURIComponent(part.slice(eq + 1));
    if (name === "R") registry = value;
    else tags.push(xml(numeric ? "num" : "str", { name, value }));
  }
  return { tags, registry };
}

/** The owner claims the thing behind `uri`; resolves with the thing's JID from `claimed`. */
export async function claim(owner: TestClient, uri: string, isPublic = false): Promise<string> {
  const { tags, registry } = tagsOfClaimUri(uri);
  const result = await owner.iqCaller.request(
    xml(
      "iq",
      { type: "set", to: registry! },
      xml("mine", { xmlns: NS_DISCOVERY, public: String(isPublic) }, ...tags),
    ),
  );
  return result.getChild("claimed", NS_DISCOVERY)!.attrs.jid as string;
}

/** Resolves when the device client is online (again): after login, resumption or a new session. */
export function onceOnline(client: XmppClient): Promise<{ resumed: boolean }> {
  return new Promise((resolve) => client.once("online", resolve));
}

/** Resolves when `emitter` emits `event` (with its arguments), or rejects after `timeoutMs`. */
export function once<T extends unknown[]>(
  emitter: { once(event: string, l: (...args: T) => void): unknown },
  event: string,
  timeoutMs = 10_000,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${event}`)), timeoutMs);
    emitter.once(event, (...args: T) => {
      clearTimeout(timer);
      resolve(args);
    });
  });
}

// One polling helper for every broker test (it lives with the provisioning test helpers).
export { until } from "../provisioning/testing.ts";

/** The stanza error condition of a rejected request (xmpp.js StanzaError or ours). */
export async function conditionOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
  } catch (err) {
    return (err as { condition?: string }).condition ?? `no condition: ${(err as Error).message}`;
  }
  return undefined;
}
