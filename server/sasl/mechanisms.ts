/**
 * The SASL mechanisms a client stream offers, in preference order, and the checks around them.
 * References: RFC 6120 §6.3.3 (mechanisms feature), §6.3.8 and §6.5.6 (authzid, invalid-authzid),
 * §6.4.2 (PLAIN only over TLS), §6.5.5 (invalid-mechanism), RFC 5802 §6 (-PLUS), XEP-0440 (which
 * channel-binding types a server supports), RFC 9266, RFC 5929 §4.
 *
 * How the stream uses this:
 *   const names = selectMechanisms(ctx);           // <mechanisms> feature, best first
 *   const types = channelBindingTypes(ctx);        // XEP-0440 <sasl-channel-binding> (if non-empty)
 *   const factory = findMechanism(name, ctx);      // on <auth mechanism=...>; undefined -> invalid-mechanism
 *   const mech = factory.create(ctx); let step = await mech.step(initialResponse); ...
 *   on success: checkAuthzid(step, streamDomain) before binding the session.
 */
import { normalizeDomainpart } from "../jid.ts";
import { SaslFailure } from "../xml/errors.ts";
import type { SaslContext, SaslMechanismFactory } from "./mechanism.ts";
import { plainFactory } from "./plain.ts";
import { channelBindingTypes, type ScramOptions, scramFactory } from "./scram.ts";

export { channelBindingTypes };
export type SaslOptions = ScramOptions;

/** Strongest first: channel binding, then the stronger hash, then PLAIN (TLS only). */
export const MECHANISM_PREFERENCE: readonly string[] = [
  "SCRAM-SHA-256-PLUS",
  "SCRAM-SHA-1-PLUS",
  "SCRAM-SHA-256",
  "SCRAM-SHA-1",
  "PLAIN",
];

/** The factories, in preference order. Pass a persistent `fakeSecret` in production. */
export function createSaslMechanisms(opts: SaslOptions = {}): readonly SaslMechanismFactory[] {
  return [
    scramFactory("sha256", true, opts),
    scramFactory("sha1", true, opts),
    scramFactory("sha256", false, opts),
    scramFactory("sha1", false, opts),
    plainFactory(opts),
  ];
}

/** Default list (per-process fake-credential secret). */
export const SASL_MECHANISMS: readonly SaslMechanismFactory[] = createSaslMechanisms();

function rank(name: string): number {
  const i = MECHANISM_PREFERENCE.indexOf(name);
  return i < 0 ? MECHANISM_PREFERENCE.length : i;
}

/** Names to offer on this stream, best first (other factories, e.g. EXTERNAL, keep their order after). */
export function selectMechanisms(
  ctx: SaslContext,
  factories: readonly SaslMechanismFactory[] = SASL_MECHANISMS,
): string[] {
  return factories
    .filter((f) => f.available(ctx))
    .map((f, i) => ({ name: f.name, key: rank(f.name), i }))
    .sort((a, b) => a.key - b.key || a.i - b.i)
    .map((f) => f.name);
}

/**
 * The factory for a mechanism the client chose, only if it is offered on this stream; undefined
 * means <invalid-mechanism/> (RFC 6120 §6.5.5), or <encryption-required/> for PLAIN in the clear.
 */
export function findMechanism(
  name: string,
  ctx: SaslContext,
  factories: readonly SaslMechanismFactory[] = SASL_MECHANISMS,
): SaslMechanismFactory | undefined {
  return factories.find((f) => f.name === name && f.available(ctx));
}

/**
 * RFC 6120 §6.3.8: the authzid, if any, must be the user's own bare JID on this domain; otherwise
 * <invalid-authzid/> (§6.5.6). The mechanisms already checked its form and localpart.
 */
export function checkAuthzid(step: { username: string; authzid?: string }, domain: string): void {
  if (step.authzid === undefined) return;
  if (step.authzid !== `${step.username}@${normalizeDomainpart(domain)}`) {
    throw new SaslFailure("invalid-authzid", "authzid must be your bare JID");
  }
}
