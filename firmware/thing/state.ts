/**
 * The thing's persisted state: its account, its registration, its owner and its cached
 * provisioning decisions, in one small JSON file written atomically (temporary file, fsync,
 * rename) with mode 0600, so a restart neither creates a new account nor registers again, and
 * a power cut leaves either the old or the new file, never half of one.
 * References: XEP-0324 §3.1 ("the cache should survive power cycles", avoiding a reconnect
 * storm of questions), XEP-0347 §6.5 (KEY is secret: kept only until the thing is claimed),
 * XEP-0077 §3.1 (the account the thing created).
 */
import { randomBytes } from "node:crypto";
import { open, readFile, rename, unlink } from "node:fs/promises";

/** One cached provisioning answer (see decisions.ts for the key and the meaning). */
export interface StoredDecision {
  readonly key: string;
  readonly answer: unknown;
}

export interface ThingState {
  readonly version: 1;
  /** The account: created with the API key, or given by the operator. */
  username?: string;
  password?: string;
  /** The bare JID, once the account exists. */
  jid?: string;
  /** Whether the tags are registered at the registry (XEP-0347 §3.6). */
  registered?: boolean;
  /** The registry the tags were registered at. */
  registry?: string;
  /** XEP-0347 §6.5: the secret KEY tag, kept only until the thing is claimed. */
  key?: string;
  /** XEP-0347 §3.9: the owner, once claimed. */
  owner?: string;
  /** Whether the owner made the thing public (XEP-0347 §3.9 `public`). */
  public?: boolean;
  /** XEP-0324 §3.1: the decision cache, least recently used first. */
  decisions?: StoredDecision[];
}

/** Largest state file we read back: a corrupted or hostile file must not eat the memory. */
const MAX_STATE_BYTES = 8 * 1024 * 1024;

export class StateFileError extends Error {}

/** Reads the state; a missing file is a fresh thing. A broken file is an error, never overwritten silently. */
export async function loadState(path: string): Promise<ThingState> {
  let text: string;
  try {
    const handle = await open(path, "r");
    try {
      const { size } = await handle.stat();
      if (size > MAX_STATE_BYTES) throw new StateFileError(`${path} is larger than ${MAX_STATE_BYTES} bytes`);
      text = await handle.readFile("utf8");
    } finally {
      await handle.close();
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return { version: 1 };
    throw err;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new StateFileError(`${path} is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof parsed !== "object" || parsed === null || (parsed as { version?: unknown }).version !== 1) {
    throw new StateFileError(`${path} is not a version 1 thing state file`);
  }
  const state = parsed as ThingState;
  for (const field of ["username", "password", "jid", "registry", "key", "owner"] as const) {
    if (state[field] !== undefined && typeof state[field] !== "string") {
      throw new StateFileError(`${path}: ${field} is not a string`);
    }
  }
  if (state.decisions !== undefined && !Array.isArray(state.decisions)) {
    throw new StateFileError(`${path}: decisions is not a list`);
  }
  return state;
}

/** Writes the file atomically with mode 0600 (it holds the password and, until claimed, KEY). */
export async function saveState(path: string, state: ThingState): Promise<void> {
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  const handle = await open(tmp, "wx", 0o600);
  try {
    await handle.writeFile(`${JSON.stringify(state, null, 2)}\n`, "utf8");
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => {});
    throw err;
  }
}

/**
 * Serialises saves of one state object: each `save()` writes the state as it is then, after the
 * previous write finished, so the file always ends with the latest state.
 */
export class StateStore {
  private chain: Promise<void> = Promise.resolve();
  private pending = false;

  constructor(
    readonly path: string,
    readonly state: ThingState,
  ) {}

  static async open(path: string): Promise<StateStore> {
    return new StateStore(path, await loadState(path));
  }

  /** Resolves once the state (as of now or later) is on disk. Coalesces bursts of saves. */
  save(): Promise<void> {
    if (this.pending) return this.chain;
    this.pending = true;
    this.chain = this.chain
      .catch(() => {})
      .then(() => {
        this.pending = false;
        return saveState(this.path, this.state);
      });
    return this.chain;
  }

  /** Waits for every save in flight. */
  async flush(): Promise<void> {
    await this.chain;
  }
}

/** Exposed for tests and tools that inspect a thing's file. */
export async function readStateFile(path: string): Promise<ThingState> {
  return JSON.parse(await readFile(path, "utf8")) as ThingState;
}
