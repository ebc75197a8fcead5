/**
 * The audit trail writer: every decision, question, answer, rule change and clearCache is
 * recorded (who, what, when, why).
 *
 * - Decisions are buffered and written in batches, so a decision answered from the cache does not
 *   wait for the database. A crash can lose the last batch of decision rows (at most
 *   `audit_flush_interval` ms).
 * - Questions, answers and rule changes go through `write`, which resolves only once the row is
 *   stored (with everything recorded before it, so the order stays true).
 * - Repeated identical decisions are coalesced: the first is written as usual (`count: 1`); the
 *   repeats within `audit_coalesce_window` become one more row with their `count`, `firstAt` and
 *   `lastAt`. The counts of a thing's decision rows therefore add up to its decisions. A thing
 *   with more than MAX_GROUPS_PER_THING different repeated decisions in one window (somebody
 *   varying requests to flood the trail) gets its further repeats counted in one overflow row per
 *   action and outcome, without their request details.
 *
 * A query closes every open group first, so readers see every decision recorded before it.
 * The table refuses UPDATE and DELETE (migrations.ts) except for the retention job.
 * References: docs/protocol/provisioning-questions.md §Audit trail.
 */
import type { Logger } from "../server/observability/logger.ts";
import type { AuditEntry, AuditQuery, AuditRecord, ProvisioningStore } from "./store.ts";

/** Entries kept in memory before a write is forced, whatever the interval. */
const MAX_BUFFERED = 500;
/** Open coalescing groups in all; beyond that the oldest is closed (written) early. */
const MAX_OPEN_GROUPS = 10_000;
/** Different coalesced decisions one thing may have open before they share an overflow group. */
export const MAX_GROUPS_PER_THING = 100;

interface Group {
  readonly key: string;
  readonly first: AuditEntry;
  readonly openedAt: number;
  repeats: number;
  firstRepeatAt?: Date;
  lastRepeatAt?: Date;
  readonly overflow: boolean;
}

export interface AuditLogOptions {
  /** Milliseconds repeats of a decision are counted before their row is written; 0 = off. */
  readonly coalesceWindowMs: number;
}

export class AuditLog {
  private buffer: AuditEntry[] = [];
  private writing: Promise<void> = Promise.resolve();
  private readonly store: ProvisioningStore;
  private readonly log: Logger;
  private readonly windowMs: number;
  /** Open groups by key, oldest first (a reopened group is deleted and inserted again). */
  private readonly groups = new Map<string, Group>();
  private readonly groupsPerThing = new Map<string, number>();

  /** Without options nothing is coalesced (one row per decision). */
  constructor(store: ProvisioningStore, log: Logger, options: AuditLogOptions = { coalesceWindowMs: 0 }) {
    this.store = store;
    this.log = log;
    this.windowMs = options.coalesceWindowMs;
  }

  /** Records an entry, written with the next batch. */
  record(entry: AuditEntry): void {
    this.buffer.push({ ...entry, at: entry.at ?? new Date() });
    if (this.buffer.length >= MAX_BUFFERED) void this.flush();
  }

  /** Records an entry and resolves once it (and everything recorded before it) is stored. */
  write(entry: AuditEntry): Promise<void> {
    this.buffer.push({ ...entry, at: entry.at ?? new Date() });
    return this.flush();
  }

  /**
   * Records a decision that may repeat. `key` identifies identical decisions (the caller builds it
   * from thing, caller, kind, outcome, rules and request digest); the entry needs a `thing`.
   */
  recordRepeatable(key: string, entry: AuditEntry): void {
    const now = new Date();
    const counted = { ...entry, at: entry.at ?? now, detail: { ...entry.detail, count: 1 } };
    if (this.windowMs === 0) {
      this.record(counted);
      return;
    }
    const open = this.groups.get(key);
    if (open && now.getTime() - open.openedAt < this.windowMs) {
      this.repeat(open, now);
      return;
    }
    if (open) this.close(open);
    const thing = entry.thing ?? "";
    if ((this.groupsPerThing.get(thing) ?? 0) >= MAX_GROUPS_PER_THING) {
      // Too many different decisions on this thing in one window: count the rest together.
      const overflowKey = `overflow\u0000${thing}\u0000${entry.action}\u0000${String(entry.detail?.outcome)}`;
      const overflow = this.groups.get(overflowKey);
      if (overflow && now.getTime() - overflow.openedAt < this.windowMs) {
        this.repeat(overflow, now);
        return;
      }
      if (overflow) this.close(overflow);
      this.open(overflowKey, counted, now, true);
      this.repeat(this.groups.get(overflowKey)!, now);
      return;
    }
    this.record(counted);
    this.open(key, counted, now, false);
  }

  /** Writes what is buffered; resolves when every entry recorded so far is stored. */
  flush(): Promise<void> {
    const batch = this.buffer;
    this.buffer = [];
    this.writing = this.writing.then(async () => {
      if (batch.length === 0) return;
      try {
        await this.store.appendAudit(batch);
      } catch (err) {
        // Never silently: the operator must learn that the trail has a gap.
        this.log.error({ err, entries: batch.length }, "audit entries could not be written");
      }
    });
    return this.writing;
  }

  /** The periodic write: closes the groups whose window has passed, then flushes. */
  tick(): Promise<void> {
    const now = Date.now();
    for (const group of this.groups.values()) {
      if (now - group.openedAt < this.windowMs) break; // oldest first: the rest are newer
      this.close(group);
    }
    return this.flush();
  }

  /** Closes every group and writes everything (queries, stop). */
  settle(): Promise<void> {
    for (const group of [...this.groups.values()]) this.close(group);
    return this.flush();
  }

  async query(q: AuditQuery): Promise<AuditRecord[]> {
    await this.settle();
    return this.store.audit(q);
  }

  private open(key: string, first: AuditEntry, now: Date, overflow: boolean): void {
    if (this.groups.size >= MAX_OPEN_GROUPS) this.close(this.groups.values().next().value!);
    this.groups.set(key, { key, first, openedAt: now.getTime(), repeats: 0, overflow });
    const thing = first.thing ?? "";
    this.groupsPerThing.set(thing, (this.groupsPerThing.get(thing) ?? 0) + 1);
  }

  private repeat(group: Group, now: Date): void {
    group.repeats++;
    group.firstRepeatAt ??= now;
    group.lastRepeatAt = now;
  }

  /** Removes the group and, if it counted repeats, records one row with their number. */
  private close(group: Group): void {
    this.groups.delete(group.key);
    const thing = group.first.thing ?? "";
    const left = (this.groupsPerThing.get(thing) ?? 1) - 1;
    if (left > 0) this.groupsPerThing.set(thing, left);
    else this.groupsPerThing.delete(thing);
    if (group.repeats === 0) return;
    const first = group.first;
    const detail: Record<string, unknown> = group.overflow
      ? {
          outcome: first.detail?.outcome,
          why: `more than ${MAX_GROUPS_PER_THING} different repeated decisions on this thing: counted without their details`,
        }
      : { ...first.detail };
    this.record({
      actor: first.actor,
      action: first.action,
      thing: first.thing,
      owner: first.owner,
      caller: group.overflow ? undefined : first.caller,
      at: group.lastRepeatAt,
      detail: {
        ...detail,
        count: group.repeats,
        repeated: true,
        firstAt: group.firstRepeatAt!.toISOString(),
        lastAt: group.lastRepeatAt!.toISOString(),
      },
    });
  }
}
