/**
 * The client side of SCRAM-SHA-1 / SCRAM-SHA-256 for the load generator: no channel binding
 * ("n,,"), no authzid, ASCII user names and passwords only (the bench makes its own accounts, so
 * SASLprep is the identity). Written here on purpose: the generator must not share code with the
 * server it measures.
 * References: RFC 5802 §3 (algorithm), §5.1 (attributes), §7 (syntax); RFC 7677 (SCRAM-SHA-256).
 *
 * SaltedPassword (PBKDF2, thousands of iterations) is cached per (password, salt, iterations), as
 * real clients do after their first login: otherwise the generator would spend milliseconds of
 * CPU per login on the cores it shares with the server under test.
 */
import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from "node:crypto";

export type ScramHash = "sha1" | "sha256";

export const SCRAM_MECHANISM: Record<ScramHash, string> = { sha1: "SCRAM-SHA-1", sha256: "SCRAM-SHA-256" };
const LENGTH: Record<ScramHash, number> = { sha1: 20, sha256: 32 };

const saltedCache = new Map<string, Buffer>();

export class ScramClient {
  private readonly hash: ScramHash;
  private readonly password: string;
  private readonly clientNonce: string;
  private readonly clientFirstBare: string;
  private serverSignature: Buffer | undefined;

  constructor(hash: ScramHash, username: string, password: string, nonce?: string) {
    this.hash = hash;
    this.password = password;
    this.clientNonce = nonce ?? randomBytes(18).toString("base64");
    // RFC 5802 §5.1: "=" and "," in the name are escaped as =3D and =2C.
    const name = username.replace(/=/g, "=3D").replace(/,/g, "=2C");
    this.clientFirstBare = `n=${name},r=${this.clientNonce}`;
  }

  /** client-first-message, with the GS2 header "n,," (no channel binding, no authzid). */
  first(): string {
    return `n,,${this.clientFirstBare}`;
  }

  /** client-final-message for a server-first-message (RFC 5802 §3). */
  final(serverFirst: string): string {
    const attrs = parseAttributes(serverFirst);
    const nonce = attrs.get("r");
    const salt = attrs.get("s");
    const iterations = Number(attrs.get("i"));
    if (!nonce?.startsWith(this.clientNonce) || !salt || !(iterations > 0)) {
      throw new Error(`bad server-first-message: ${serverFirst}`);
    }
    const key = `${this.hash}\0${this.password}\0${salt}\0${iterations}`;
    let salted = saltedCache.get(key);
    if (!salted) {
      salted = pbkdf2Sync(
        this.password,
        Buffer.from(salt, "base64"),
        iterations,
        LENGTH[this.hash],
        this.hash,
      );
      saltedCache.set(key, salted);
    }
    const withoutProof = `c=biws,r=${nonce}`; // biws = base64("n,,")
    const authMessage = `${this.clientFirstBare},${serverFirst},${withoutProof}`;
    const clientKey = createHmac(this.hash, salted).update("Client Key").digest();
    const storedKey = createHash(this.hash).update(clientKey).digest();
    const signature = createHmac(this.hash, storedKey).update(authMessage).digest();
    const proof = Buffer.alloc(clientKey.length);
    for (let i = 0; i < proof.length; i++) proof[i] = clientKey[i]! ^ signature[i]!;
    const serverKey = createHmac(this.hash, salted).update("Server Key").digest();
    this.serverSignature = createHmac(this.hash, serverKey).update(authMessage).digest();
    return `${withoutProof},p=${proof.toString("base64")}`;
  }

  /** Checks the server-final-message ("v=..."): the server proved it knows the verifier. */
  verify(serverFinal: string): boolean {
    const v = parseAttributes(serverFinal).get("v");
    if (!v || !this.serverSignature) return false;
    const got = Buffer.from(v, "base64");
    return got.length === this.serverSignature.length && timingSafeEqual(got, this.serverSignature);
  }
}

function parseAttributes(message: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of message.split(",")) {
    const eq = part.indexOf("=");
    if (eq === 1) out.set(part[0]!, part.slice(2));
  }
  return out;
}

/** Derives the verifiers a server stores for `password` (used to provision bench accounts). */
export function scramVerifiers(
  hash: ScramHash,
  password: string,
  salt: Buffer,
  iterations: number,
): { storedKey: Buffer; serverKey: Buffer } {
  const salted = pbkdf2Sync(password, salt, iterations, LENGTH[hash], hash);
  const clientKey = createHmac(hash, salted).update("Client Key").digest();
  return {
    storedKey: createHash(hash).update(clientKey).digest(),
    serverKey: createHmac(hash, salted).update("Server Key").digest(),
  };
}
