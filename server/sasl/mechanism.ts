/**
 * The contract between a client stream and a SASL mechanism (server side).
 * References: RFC 6120 §6 (SASL negotiation), RFC 4422 (SASL), RFC 5802 (SCRAM),
 * RFC 7677 (SCRAM-SHA-256), RFC 9266 (tls-exporter channel binding), RFC 4616 (PLAIN).
 */
import type { SaslFailure } from "../xml/errors.ts";

/** Stored per account and per hash: never the password itself (RFC 5802 §3). */
export interface ScramCredentials {
  readonly hash: "sha1" | "sha256";
  readonly salt: Buffer;
  readonly iterations: number;
  readonly storedKey: Buffer;
  readonly serverKey: Buffer;
}

export interface SaslContext {
  /** The stream is encrypted (TLS or STARTTLS completed). */
  readonly secure: boolean;
  /** RFC 9266 / RFC 5929 channel-binding data for a type, or undefined if not available. */
  channelBinding(type: "tls-exporter" | "tls-server-end-point"): Buffer | undefined;
  /** Looks up the SCRAM credentials of a normalised username for one hash; undefined if unknown. */
  credentials(username: string, hash: "sha1" | "sha256"): Promise<ScramCredentials | undefined>;
}

export type SaslStep =
  | { readonly kind: "challenge"; readonly data: Buffer }
  /** Authentication succeeded; `data` goes in <success/> (SCRAM's server-final-message). */
  | {
      readonly kind: "success";
      readonly username: string;
      readonly authzid?: string;
      readonly data?: Buffer;
    };

export interface SaslServerMechanism {
  readonly name: string;
  /** Processes one client message (the initial response, or a response to a challenge). Throws SaslFailure. */
  step(input: Buffer): Promise<SaslStep>;
}

export interface SaslMechanismFactory {
  readonly name: string;
  /** Whether to offer this mechanism on a stream in this state (e.g. PLAIN only over TLS). */
  available(ctx: SaslContext): boolean;
  create(ctx: SaslContext): SaslServerMechanism;
}

export type { SaslFailure };
