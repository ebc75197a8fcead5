/**
 * SASL authentication, client side: SCRAM-SHA-256, then SCRAM-SHA-1, each with channel binding
 * (-PLUS) when the server offers it and the TLS connection can produce the binding data; PLAIN
 * only when the server offers nothing else, and only ever on a TLS stream.
 *
 * The server's final message is verified (RFC 5802 §3 ServerSignature): a server that cannot prove
 * it knows the password is treated as an authentication failure. The iteration count a server asks
 * for is bounded so that a hostile server cannot make the device compute for hours.
 *
 * References: RFC 6120 §6.3-§6.5 (SASL negotiation, <auth/>, <challenge/>, <response/>,
 * <success/> with additional data, <failure/> conditions); RFC 5802 §3, §5.1, §6, §7 (SCRAM);
 * RFC 7677 (SCRAM-SHA-256); RFC 9266 (tls-exporter), RFC 5929 §4 (tls-server-end-point);
 * XEP-0440 (channel-binding types offered); RFC 4616 (PLAIN); RFC 4013 (SASLprep).
 */
import { pbkdf2, randomBytes } from "node:crypto";
import { promisify } from "node:util";
import saslprep from "@mongodb-js/saslprep";
import { Element } from "ltx";
import { channelBindingData } from "../../server/net/tls.ts";
import { type ChannelBindingType, digest, hmac, type ScramHash } from "../../server/sasl/scram.ts";
import { SaslFailure, type SaslFailureCondition } from "../../server/xml/errors.ts";
import { NS } from "../../server/xml/namespaces.ts";
import type { StreamConnection } from "./connection.ts";

const pbkdf2Async = promisify(pbkdf2);

/** RFC 7677 §4 asks for at least 4096; more than this would stall a small device for minutes. */
const MAX_ITERATIONS = 1_000_000;
const HASH_LENGTH: Record<ScramHash, number> = { sha1: 20, sha256: 32 };

export interface Credentials {
  readonly username: string;
  readonly password: string;
  /** Mechanisms we may use (default: all we know); the preference order stays ours. */
  readonly saslMechanisms?: readonly string[];
  /** Do not use -PLUS (set after a server refused our channel binding, see ChannelBindingRefused). */
  readonly avoidChannelBinding?: boolean;
}

/**
 * A -PLUS mechanism failed. Either the password is wrong or the server cannot verify our channel
 * binding (ejabberd 23.01 offers -PLUS without listing binding types, XEP-0440, and refuses
 * tls-exporter with "Invalid channel binding"). Raised only when the binding type was guessed; the
 * client then tries once more without channel binding before it calls the failure final.
 */
export class ChannelBindingRefused extends SaslFailure {
  readonly mechanism: string;
  constructor(failure: SaslFailure, mechanism: string) {
    super(failure.condition, failure.text);
    this.mechanism = mechanism;
  }
}

interface Choice {
  readonly name: string;
  readonly scram?: {
    readonly hash: ScramHash;
    readonly cbType?: ChannelBindingType;
    /** The server did not list its binding types (XEP-0440); cbType is our guess. */
    readonly cbTypeGuessed?: boolean;
    readonly cbFlag: string;
  };
}

/** Authentication failures are final (no retry), except a temporary one (RFC 6120 §6.5.11). */
export function isFinalAuthFailure(err: Error): boolean {
  return err instanceof SaslFailure && err.condition !== "temporary-auth-failure";
}

/** Mechanisms the server offers (RFC 6120 §6.4.1). */
export function offeredMechanisms(features: Element): string[] {
  const mechanisms = features.getChild("mechanisms", NS.sasl);
  return mechanisms ? mechanisms.getChildren("mechanism").map((m) => m.text().trim()) : [];
}

/** Picks the strongest mechanism both sides can do; throws if there is none. */
export function chooseMechanism(
  features: Element,
  conn: StreamConnection,
  allowed?: readonly string[],
): Choice {
  const offered = offeredMechanisms(features).filter((m) => !allowed || allowed.includes(m));
  const socket = conn.tlsSocket;
  // XEP-0440: the server may list its binding types; without the list, tls-exporter is the
  // TLS 1.3 default (RFC 9266 §3).
  const listed = features
    .getChild("sasl-channel-binding", NS.saslChannelBinding)
    ?.getChildren("channel-binding")
    .map((c) => c.attrs.type);
  const serverTypes = listed ?? ["tls-exporter"];
  const ourTypes = (["tls-exporter", "tls-server-end-point"] as const).filter(
    (t) => socket !== undefined && channelBindingData(socket, t, "client") !== undefined,
  );
  const cbType = ourTypes.find((t) => serverTypes.includes(t));
  for (const [hash, base] of [
    ["sha256", "SCRAM-SHA-256"],
    ["sha1", "SCRAM-SHA-1"],
  ] as const) {
    if (cbType && offered.includes(`${base}-PLUS`)) {
      return {
        name: `${base}-PLUS`,
        scram: { hash, cbType, cbTypeGuessed: listed === undefined, cbFlag: `p=${cbType}` },
      };
    }
  }
  // Judged on everything offered: if we chose not to bind although the server can, that is "n".
  const serverCanBind = offeredMechanisms(features).some((m) => m.endsWith("-PLUS"));
  for (const [hash, base] of [
    ["sha256", "SCRAM-SHA-256"],
    ["sha1", "SCRAM-SHA-1"],
  ] as const) {
    if (offered.includes(base)) {
      // RFC 5802 §6: "y" = we could bind but think the server cannot (it offered no -PLUS): a
      // server that can would see a downgrade. "n" = we cannot bind on this connection.
      const cbFlag = ourTypes.length > 0 && !serverCanBind ? "y" : "n";
      return { name: base, scram: { hash, cbFlag } };
    }
  }
  // PLAIN only over TLS (RFC 4616 §6) and only as the last resort.
  if (offered.includes("PLAIN") && conn.secure) return { name: "PLAIN" };
  throw new SaslFailure(
    "invalid-mechanism",
    `no usable SASL mechanism among: ${offered.join(", ") || "none"}`,
  );
}

/** RFC 5802 §5.1: "," and "=" in a user name become "=2C" and "=3D". */
function saslname(name: string): string {
  return name.replace(/=/g, "=3D").replace(/,/g, "=2C");
}

function prep(value: string, what: string): string {
  try {
    return saslprep(value, { allowUnassigned: true });
  } catch {
    throw new SaslFailure("malformed-request", `the ${what} fails SASLprep`);
  }
}

function auth(mechanism: string, data: Buffer | undefined): Element {
  const el = new Element("auth", { xmlns: NS.sasl, mechanism });
  // RFC 6120 §6.4.2: "=" means an empty initial response.
  el.t(data === undefined ? "" : data.length === 0 ? "=" : data.toString("base64"));
  return el;
}

const isSaslReply = (el: Element) => el.attrs.xmlns === NS.sasl;

function failureOf(el: Element): SaslFailure {
  const condition = el.getChildElements().find((c) => c.name !== "text")?.name ?? "not-authorized";
  const text = el.getChildText("text") ?? undefined;
  return new SaslFailure(condition as SaslFailureCondition, text);
}

function decodeB64(el: Element): Buffer {
  const text = el.text().trim();
  return text === "=" ? Buffer.alloc(0) : Buffer.from(text, "base64");
}

/** Authenticates on a secured stream whose features offer SASL. Resolves with the mechanism used. */
export async function authenticate(conn: StreamConnection, creds: Credentials): Promise<string> {
  const features = conn.features;
  if (!features) throw new Error("no stream features");
  if (!conn.secure) throw new Error("refusing to authenticate without TLS");
  const allowed = creds.avoidChannelBinding
    ? (creds.saslMechanisms ?? offeredMechanisms(features)).filter((m) => !m.endsWith("-PLUS"))
    : creds.saslMechanisms;
  const choice = chooseMechanism(features, conn, allowed);
  try {
    if (choice.scram) await scram(conn, creds, choice.name, choice.scram);
    else await plain(conn, creds);
  } catch (err) {
    // Only a guessed binding type may be given up: a server that listed the type (XEP-0440) and
    // still refuses our binding is either right about the password or sees a man in the middle.
    if (err instanceof SaslFailure && err.condition === "not-authorized" && choice.scram?.cbTypeGuessed) {
      throw new ChannelBindingRefused(err, choice.name);
    }
    throw err;
  }
  return choice.name;
}

async function plain(conn: StreamConnection, creds: Credentials): Promise<void> {
  // RFC 4616 §2: [authzid] NUL authcid NUL passwd
  const message = `\0${prep(creds.username, "user name")}\0${prep(creds.password, "password")}`;
  conn.send(auth("PLAIN", Buffer.from(message, "utf8")));
  const reply = await conn.take(isSaslReply, "SASL PLAIN");
  if (reply.name === "failure") throw failureOf(reply);
  if (reply.name !== "success") throw new SaslFailure("malformed-request", `unexpected <${reply.name}/>`);
}

async function scram(
  conn: StreamConnection,
  creds: Credentials,
  mechanism: string,
  opts: NonNullable<Choice["scram"]>,
): Promise<void> {
  const { hash, cbType, cbFlag } = opts;
  const clientNonce = randomBytes(24).toString("base64");
  const gs2Header = `${cbFlag},,`; // RFC 5802 §7: no authzid, we act as ourselves
  const clientFirstBare = `n=${saslname(prep(creds.username, "user name"))},r=${clientNonce}`;
  conn.send(auth(mechanism, Buffer.from(gs2Header + clientFirstBare, "utf8")));

  const challenge = await conn.take(isSaslReply, "SASL challenge");
  if (challenge.name === "failure") throw failureOf(challenge);
  if (challenge.name !== "challenge") throw new SaslFailure("malformed-request", "expected a challenge");
  const serverFirst = decodeB64(challenge).toString("utf8");
  // RFC 5802 §7: server-first-message = [reserved-mext ","] nonce "," salt "," iteration-count ["," extensions]
  const attrs = new Map(serverFirst.split(",").map((a) => [a.slice(0, 1), a.slice(2)] as const));
  if (attrs.has("m")) throw new SaslFailure("malformed-request", "server requires an unknown extension");
  const nonce = attrs.get("r") ?? "";
  const salt = Buffer.from(attrs.get("s") ?? "", "base64");
  const iterations = Number(attrs.get("i"));
  if (!nonce.startsWith(clientNonce) || nonce.length === clientNonce.length) {
    throw new SaslFailure("malformed-request", "the server nonce does not extend ours");
  }
  if (!Number.isInteger(iterations) || iterations < 1 || iterations > MAX_ITERATIONS || salt.length === 0) {
    throw new SaslFailure("malformed-request", "bad salt or iteration count");
  }

  const cbData = cbType ? channelBindingData(conn.tlsSocket!, cbType, "client")! : Buffer.alloc(0);
  const channelBinding = Buffer.concat([Buffer.from(gs2Header, "utf8"), cbData]).toString("base64");
  const withoutProof = `c=${channelBinding},r=${nonce}`;
  const authMessage = `${clientFirstBare},${serverFirst},${withoutProof}`;
  // RFC 5802 §3: SaltedPassword := Hi(Normalize(password), salt, i)
  const password = prep(creds.password, "password");
  const salted = await pbkdf2Async(password, salt, iterations, HASH_LENGTH[hash], hash);
  const clientKey = hmac(hash, salted, "Client Key");
  const clientSignature = hmac(hash, digest(hash, clientKey), authMessage);
  const proof = Buffer.alloc(clientKey.length);
  for (let i = 0; i < proof.length; i++) proof[i] = clientKey[i]! ^ clientSignature[i]!;
  const serverSignature = hmac(hash, hmac(hash, salted, "Server Key"), authMessage);

  const response = new Element("response", { xmlns: NS.sasl }).t(
    Buffer.from(`${withoutProof},p=${proof.toString("base64")}`, "utf8").toString("base64"),
  );
  conn.send(response);
  let outcome = await conn.take(isSaslReply, "SASL outcome");
  let serverFinal: Buffer;
  if (outcome.name === "challenge") {
    // RFC 6120 §6.3.10 allows the server-final-message as a last challenge instead of success data.
    serverFinal = decodeB64(outcome);
    conn.send(new Element("response", { xmlns: NS.sasl }));
    outcome = await conn.take(isSaslReply, "SASL outcome");
  } else {
    serverFinal = outcome.name === "success" ? decodeB64(outcome) : Buffer.alloc(0);
  }
  if (outcome.name === "failure") throw failureOf(outcome);
  if (outcome.name !== "success") throw new SaslFailure("malformed-request", `unexpected <${outcome.name}/>`);
  // RFC 5802 §3: the server proves it knows the password too.
  const v = /^v=([A-Za-z0-9+/=]+)/.exec(serverFinal.toString("utf8"))?.[1];
  if (!v || !Buffer.from(v, "base64").equals(serverSignature)) {
    throw new SaslFailure("not-authorized", "the server's signature is wrong: not the server we know");
  }
}
