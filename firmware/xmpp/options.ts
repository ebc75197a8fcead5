/**
 * The options and events of XmppClient (client.ts), in a file of their own so that code which only
 * configures or listens to a client does not need the whole implementation.
 * References: RFC 6120 §5 (TLS), §6 (SASL), §13.7 (certificates); XEP-0198 (stream management);
 * XEP-0368 (direct TLS).
 */
import type { Element } from "ltx";
import type { Log } from "./connection.ts";

/** Which server to reach and how to trust it: what the connection, the client, a thing and the simulator share. */
export interface ServerAddress {
  readonly domain: string;
  /** Where to connect; default the domain (no SRV lookup), port 5222 (5223 for direct TLS). */
  readonly host?: string;
  readonly port?: number;
  /** Default "starttls". Plaintext is never allowed (RFC 6120 §13.8). */
  readonly tls?: "starttls" | "direct";
  readonly ca?: string | Buffer | readonly (string | Buffer)[];
  /** Default true: the certificate must be valid for `domain` (RFC 6125). */
  readonly rejectUnauthorized?: boolean;
}

/** The ServerAddress part of larger options, without the keys left undefined. */
export function serverAddressOf(o: ServerAddress): ServerAddress {
  return {
    domain: o.domain,
    ...(o.host !== undefined && { host: o.host }),
    ...(o.port !== undefined && { port: o.port }),
    ...(o.tls !== undefined && { tls: o.tls }),
    ...(o.ca !== undefined && { ca: o.ca }),
    ...(o.rejectUnauthorized !== undefined && { rejectUnauthorized: o.rejectUnauthorized }),
  };
}

export interface XmppClientOptions extends ServerAddress {
  readonly username: string;
  readonly password: string;
  readonly resource?: string;
  /** SASL mechanisms the client may use (default all it knows, strongest first). */
  readonly saslMechanisms?: readonly string[];
  /** Default true: XEP-0198 with resumption. */
  readonly streamManagement?: boolean;
  /** Default 1 s .. 60 s; false: never reconnect. */
  readonly reconnect?: { readonly initialDelayMs?: number; readonly maxDelayMs?: number } | false;
  /** Default 15000; also the limit of each login step. */
  readonly requestTimeoutMs?: number;
  /** Default true: send initial presence after each fresh login (RFC 6121 §4.2). */
  readonly presence?: boolean;
  /** Idle time before a keepalive (SM <r/> or whitespace). Default 60000. */
  readonly keepaliveMs?: number;
  /** Largest inbound stanza in bytes; bigger ones close the stream. Default 256 KiB. */
  readonly maxStanzaBytes?: number;
  /** Most stanzas queued while offline. Default 1000. */
  readonly maxQueuedStanzas?: number;
  readonly log?: Log;
}

export interface XmppClientEvents {
  online: [info: { resumed: boolean }];
  offline: [info: { error?: Error }];
  message: [stanza: Element];
  presence: [stanza: Element];
  error: [err: Error];
}
