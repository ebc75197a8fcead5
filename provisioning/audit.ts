/**
 * The audit trail writer: every decision, question, answer, rule change and clearCache is
 * recorded (who, what, when, why). Entries are buffered and written in batches, so a decision
 * answered from the cache does not wait for the database; a query flushes first, so readers see
 * everything recorded before it. The table refuses UPDATE and DELETE (migrations.ts).
 * References: docs/protocol/provisioning-questions.md §Audit trail.
 */
import type { Logger } from "../server/observability/logger.ts";
import type { AuditEntry, AuditQuery, AuditRecord, ProvisioningStore } from "./store.ts";

/** Entries kept in memory before a write is forced, whatever the interval. */
const MAX_BUFFERED = 500;

export class AuditLog {
  private buffer: AuditEntry[] = [];
  private writing: Promise<void> = Promise.resolve();
  private readonly store: ProvisioningStore;
  private readonly log: Logger;

  constructor(store: ProvisioningStore, log: Logger) {
    this.store = store;
    this.log = log;
  }

  record(entry: AuditEntry): void {
    this.buffer.push({ ...entry, at: entry.at ?? new Date() });
    if (this.buffer.length >= MAX_BUFFERED) void this.flush();
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

  async query(q: AuditQuery): Promise<AuditRecord[]> {
    await this.flush();
    return this.store.audit(q);
  }
}
