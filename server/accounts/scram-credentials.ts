/**
 * Derives the SCRAM verifiers stored for an account, and checks a plaintext password against
 * them (for SASL PLAIN), so the password itself is never stored.
 * References: RFC 5802 §3 (SaltedPassword, ClientKey, StoredKey, ServerKey), §2.2 (Hi() is
 * PBKDF2 with HMAC), RFC 4013 (SASLprep, the Normalize() of RFC 5802), RFC 7677 §4 (4096
 * iterations as the minimum for SCRAM-SHA-256).
 */
import { createHash, createHmac, pbkdf2, randomBytes, timingSafeEqual } from "node:crypto";
import { promisify } from "node:util";
import saslprep from "@mongodb-js/saslprep";
import type { ScramCredentials } from "../sasl/mechanism.ts";

const pbkdf2Async = promisify(pbkdf2);

export type ScramHash = ScramCredentials["hash"];
export const SCRAM_HASHES: readonly ScramHash[] = ["sha1", "sha256"];
export const DEFAULT_ITERATIONS = 4096;
const SALT_BYTES = 16;
const DIGEST_BYTES: Record<ScramHash, number> = { sha1: 20, sha256: 32 };
/** RFC 3454 table B.1, "commonly mapped to nothing". */
const MAPPED_TO_NOTHING =
  /\u00AD|\u034F|\u1806|[\u180B-\u180D]|[\u200B-\u200D]|\u2060|[\uFE00-\uFE0F]|\uFEFF/gu;

export class PasswordError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PasswordError";
  }
}

/**
 * RFC 5802 §2.2 Normalize(): SASLprep with unassigned code points refused (stored strings,
 * RFC 3454 §7). Throws PasswordError for an empty or prohibited password; the message never
 * quotes the password.
 */
export function preparePassword(password: string): string {
  if (password.length === 0) throw new PasswordError("the password is empty");
  // RFC 4013 §2.1 maps these to nothing; saslprep 1.6 crashes on a string that becomes empty.
  if (password.replace(MAPPED_TO_NOTHING, "").length === 0) {
    throw new PasswordError("the password is empty after SASLprep (RFC 4013)");
  }
  let prepared: string;
  try {
    prepared = saslprep(password);
  } catch (err) {
    throw new PasswordError(`the password is not allowed by SASLprep (RFC 4013): ${(err as Error).message}`);
  }
  return prepared;
}

export interface DeriveOptions {
  /** PBKDF2 iterations; default 4096 (RFC 7677 §4's minimum). */
  readonly iterations?: number;
  /** A fixed salt (to verify a password against stored credentials); default 16 random bytes. */
  readonly salt?: Buffer;
}

/** RFC 5802 §3, with PBKDF2 on libuv's thread pool so the event loop keeps running. */
export async function deriveScramCredentials(
  password: string,
  hash: ScramHash,
  opts: DeriveOptions = {},
): Promise<ScramCredentials> {
  const iterations = opts.iterations ?? DEFAULT_ITERATIONS;
  if (!Number.isSafeInteger(iterations) || iterations < 1)
    throw new RangeError(`bad iteration count ${iterations}`);
  const salt = opts.salt ?? randomBytes(SALT_BYTES);
  // SaltedPassword := Hi(Normalize(password), salt, i)
  const salted = await pbkdf2Async(preparePassword(password), salt, iterations, DIGEST_BYTES[hash], hash);
  // ClientKey := HMAC(SaltedPassword, "Client Key"); StoredKey := H(ClientKey)
  const clientKey = createHmac(hash, salted).update("Client Key").digest();
  const storedKey = createHash(hash).update(clientKey).digest();
  // ServerKey := HMAC(SaltedPassword, "Server Key")
  const serverKey = createHmac(hash, salted).update("Server Key").digest();
  return { hash, salt, iterations, storedKey, serverKey };
}

/**
 * Whether `password` is the one `stored` was derived from (for SASL PLAIN over TLS). Constant
 * time in the comparison; an unpreparable password is simply wrong.
 */
export async function verifyPassword(password: string, stored: ScramCredentials): Promise<boolean> {
  let candidate: ScramCredentials;
  try {
    candidate = await deriveScramCredentials(password, stored.hash, {
      salt: stored.salt,
      iterations: stored.iterations,
    });
  } catch (err) {
    if (err instanceof PasswordError) return false;
    throw err;
  }
  return (
    candidate.storedKey.length === stored.storedKey.length &&
    timingSafeEqual(candidate.storedKey, stored.storedKey)
  );
}
