/**
 * Audit retention: the operator keeps the trail for `audit_retention_days` (0 = forever). A
 * periodic job deletes older rows through prov_audit_prune, the one path the append-only trigger
 * lets through (migrations.ts 002), in batches so one run never holds a long transaction. The
 * pruning is itself logged and recorded in the trail (how many rows, the cut-off).
 * References: docs/protocol/provisioning-questions.md §Audit trail (retention).
 */
import type { Logger } from "../server/observability/logger.ts";
import type { AuditLog } from "./audit.ts";
import type { ProvisioningStore } from "./store.ts";

/** Rows deleted per statement. */
const PRUNE_BATCH = 10_000;
const DAY_MS = 86_400_000;

export interface RetentionDeps {
  readonly store: ProvisioningStore;
  readonly audit: AuditLog;
  readonly log: Logger;
  /** Who the pruning entry names as actor (the service's JID). */
  readonly actor: string;
  readonly retentionDays: number;
  readonly now?: () => Date;
}

/** One run of the job: deletes what is older than the retention; returns how many rows. */
export async function pruneAudit(deps: RetentionDeps): Promise<number> {
  if (deps.retentionDays === 0) return 0; // keep forever
  const now = deps.now?.() ?? new Date();
  const cutoff = new Date(now.getTime() - deps.retentionDays * DAY_MS);
  let deleted = 0;
  for (;;) {
    const n = await deps.store.pruneAudit(cutoff, PRUNE_BATCH);
    deleted += n;
    if (n < PRUNE_BATCH) break;
  }
  if (deleted === 0) return 0; // nothing to report: an empty run adds no row either
  deps.log.info({ deleted, cutoff: cutoff.toISOString() }, "provisioning audit trail pruned");
  await deps.audit.write({
    actor: deps.actor,
    action: "audit-pruned",
    detail: { deleted, before: cutoff.toISOString(), retentionDays: deps.retentionDays },
  });
  return deleted;
}

/** The periodic job's body: never two runs at once (a slow run is not overtaken by the next). */
export function retentionJob(deps: RetentionDeps): () => Promise<void> {
  let running: Promise<unknown> | undefined;
  return async () => {
    if (running) return;
    running = pruneAudit(deps).finally(() => {
      running = undefined;
    });
    await running;
  };
}
