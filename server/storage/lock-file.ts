/**
 * The embedded engine's data-directory lock: `<data_dir>/db.lock`.
 * References: DESIGN.md §1.5 (one PGlite per data dir), PGlite docs (a data dir must not be opened
 * by two instances: it has no shared-memory locking like a PostgreSQL postmaster).
 *
 * The file's first line is the holder's PID, so `cat db.lock` answers "who has it". Further
 * `key=value` lines record the process start time (to tell a live holder from a dead one whose PID
 * was reused, e.g. PID 1 in a restarted container) and the unix socket the holder serves, so a
 * CLI can find the broker's database even when the socket had to live outside the data dir.
 */
import {
  linkSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmdirSync,
  rmSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";

export interface LockInfo {
  readonly pid: number;
  /** Field 22 of /proc/<pid>/stat (clock ticks since boot); undefined where /proc is missing. */
  readonly startTime?: string;
  /** The unix socket the holder serves the database on (once it listens). */
  readonly socket?: string;
}

export class DataDirLockedError extends Error {
  constructor(
    readonly dataDir: string,
    readonly holder: LockInfo,
  ) {
    super(`data directory ${dataDir} is in use by pid ${holder.pid}`);
    this.name = "DataDirLockedError";
  }
}

/** Locks held by this process, so a second open in the same process is refused too. */
const heldHere = new Set<string>();

/** Fields of /proc/<pid>/stat: state (3) and start time (22); undefined where /proc is missing. */
function procStat(pid: number): { state: string; startTime: string } | undefined {
  try {
    // The command name (field 2) may contain spaces and parentheses: count from the last ")".
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8");
    const rest = fields.slice(fields.lastIndexOf(")") + 2).split(" ");
    return { state: rest[0]!, startTime: rest[19]! };
  } catch {
    return undefined;
  }
}

function format(info: LockInfo): string {
  let text = `${info.pid}\n`;
  if (info.startTime) text += `start=${info.startTime}\n`;
  if (info.socket) text += `socket=${info.socket}\n`;
  return text;
}

function parse(text: string): LockInfo | undefined {
  const [first, ...rest] = text.split("\n");
  const pid = Number(first);
  if (!Number.isSafeInteger(pid) || pid <= 0) return undefined;
  const fields = new Map(
    rest.filter((l) => l.includes("=")).map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
  );
  return { pid, startTime: fields.get("start"), socket: fields.get("socket") };
}

/** Reads the lock; undefined if there is none or it is unreadable garbage. */
export function readLock(path: string): LockInfo | undefined {
  try {
    return parse(readFileSync(path, "utf8"));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}

/** Whether the recorded holder is still the same running process. */
export function holderAlive(path: string, info: LockInfo): boolean {
  if (info.pid === process.pid) return heldHere.has(path);
  try {
    process.kill(info.pid, 0);
  } catch (err) {
    // EPERM: the process exists but belongs to another user, so it is alive.
    if ((err as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  const now = procStat(info.pid);
  // A zombie (killed, not yet reaped by its parent) holds nothing any more.
  if (now?.state === "Z" || now?.state === "X") return false;
  return !(info.startTime && now && now.startTime !== info.startTime);
}

/**
 * Removes a stale lock under a short-lived guard directory, so that two processes recovering the
 * same stale lock cannot both delete it and then one delete the other's fresh lock.
 */
function removeStale(path: string, stale: string): void {
  const guard = `${path}.guard`;
  for (let i = 0; ; i++) {
    try {
      mkdirSync(guard);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      // A guard older than a few seconds was left by a process killed inside this tiny section.
      const since = statSync(guard, { throwIfNoEntry: false })?.mtimeMs ?? Date.now();
      if (Date.now() - since > 5000 || i > 500) rmSync(guard, { recursive: true, force: true });
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
    }
  }
  try {
    let current: string | undefined;
    try {
      current = readFileSync(path, "utf8");
    } catch {
      current = undefined;
    }
    if (current === stale) unlinkSync(path);
  } finally {
    rmdirSync(guard);
  }
}

export interface HeldLock {
  readonly path: string;
  /** Records the socket the holder serves on, for clients that find the database via the lock. */
  setSocket(socket: string): void;
  release(): void;
}

/**
 * Takes the lock or throws DataDirLockedError naming the live holder. A lock left by a dead process
 * (or by an earlier process with the same PID) is recovered.
 */
export function acquireLock(path: string, dataDir: string): HeldLock {
  const info: LockInfo = { pid: process.pid, startTime: procStat(process.pid)?.startTime };
  // Written whole to a private file, then hard-linked into place: link(2) fails if the lock
  // exists, so the lock never exists half-written.
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, format(info), { mode: 0o600 });
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        linkSync(tmp, path);
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EEXIST" || attempt >= 5) throw err;
      }
      let text: string;
      try {
        text = readFileSync(path, "utf8");
      } catch {
        continue; // released between our link and our read
      }
      const holder = parse(text);
      if (holder && holderAlive(path, holder)) throw new DataDirLockedError(dataDir, holder);
      removeStale(path, text);
    }
  } finally {
    unlinkSync(tmp);
  }
  heldHere.add(path);
  let current = info;
  let released = false;
  // A crash skips this, which is what the stale-lock recovery above is for.
  const onExit = () => release();
  process.once("exit", onExit);
  function release(): void {
    if (released) return;
    released = true;
    process.off("exit", onExit);
    heldHere.delete(path);
    const now = readLock(path);
    if (now?.pid === process.pid) unlinkSync(path);
  }
  return {
    path,
    setSocket(socket) {
      current = { ...current, socket };
      // Replaced by rename(2) so a reader never sees a half-written lock and takes it for stale.
      writeFileSync(tmp, format(current), { mode: 0o600 });
      renameSync(tmp, path);
    },
    release,
  };
}
