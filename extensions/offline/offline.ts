/**
 * Offline messages: normal and chat messages for an account that has no resource able to take
 * them are stored (durably, in order, with a per-user quota) and delivered when a resource next
 * sends available presence with a non-negative priority.
 * References: XEP-0160 §2 (process flow), §3 (message types), §4 ("msgoffline" disco feature);
 * XEP-0203 (delay stamps); RFC 6121 §8.5.2.2.1, §8.5.3.2.1 (where offline storage hooks in);
 * RFC 6120 §8.3.3.18 (resource-constraint).
 *
 * Hooks: messages to "bare" and "full" targets at priority 100 (a message must not overtake stored
 * ones), the router's "offline" target at 0, a policy on client presence (priority 0, it only
 * observes) and the "session-available"/"session-ended" events. See delivery.ts for the ordering
 * and at-least-once rules.
 */
import type { EventEmitter } from "node:events";
import { z } from "zod";
import type { LocalSession, Module, ModuleApi } from "../../server/modules/module.ts";
import { type BlockingCheck, OfflineDelivery } from "./delivery.ts";
import { OfflineStore, offlineMigrations } from "./store.ts";

/** XEP-0160 §4 */
export const NS_MSGOFFLINE = "msgoffline";

const configSchema = z
  .object({
    /** Messages stored per user; the sender of one more gets `quota_error`. */
    max_messages: z.number().int().positive().default(5000),
    /**
     * Bytes stored per user. Kept below the 16 MiB of unread output after which a client stream is
     * closed, so one flush can never overrun a slow reader's buffer.
     */
    max_bytes: z
      .number()
      .int()
      .positive()
      .default(8 * 1024 * 1024),
    /** Messages read from the database and handed over per step of a flush. */
    batch_size: z.number().int().positive().max(10_000).default(100),
    /**
     * The error for a full queue: XEP-0160 §2 suggests service-unavailable (it reveals nothing);
     * resource-constraint (the default) tells the sender to try again later.
     */
    quota_error: z.enum(["resource-constraint", "service-unavailable"]).default("resource-constraint"),
  })
  .strict();

type OfflineConfig = z.infer<typeof configSchema>;

/** Service "offline": what other modules and operations may ask. */
export interface OfflineService {
  count(username: string): Promise<number>;
}

function optionalService<T>(api: ModuleApi, name: string): T | undefined {
  try {
    return api.use<T>(name);
  } catch {
    return undefined;
  }
}

/** Each started instance (one per broker in this process), so stop() can wait for its work. */
const running = new Set<OfflineDelivery>();

export const offlineModule: Module = {
  name: "offline",
  xeps: ["0160", "0203"],
  migrations: offlineMigrations,
  configSchema,
  start(api) {
    const config = api.config<OfflineConfig>();
    const store = new OfflineStore(api.db);
    const delivery = new OfflineDelivery(
      api,
      store,
      {
        quota: { maxMessages: config.max_messages, maxBytes: config.max_bytes },
        batchSize: config.batch_size,
        quotaError: config.quota_error,
      },
      // Looked up when needed: the blocking module may start after this one, or not be loaded.
      () => optionalService<BlockingCheck>(api, "blocking"),
    );
    running.add(delivery);
    api.feature(NS_MSGOFFLINE);
    api.provide<OfflineService>("offline", { count: (username) => store.count(username) });

    api.on("message", "bare", (event) => delivery.onBare(event), 100);
    api.on("message", "full", (event) => delivery.onFull(event), 100);
    api.on("message", "offline", (event) => delivery.onOffline(event), 0);

    // XEP-0160 §2: "when the recipient next sends non-negative available presence". The c2s
    // stream has applied availability and priority before the policies run; this also catches a
    // priority raised from negative later in the session, which is no initial presence.
    api.policy((event) => {
      const session = event.origin.session;
      if (event.kind === "presence" && session && !event.stanza.attrs.to) delivery.sessionChanged(session);
      return undefined;
    }, 0);
    const events = api.use<EventEmitter>("session-events");
    events.on("session-available", (session: LocalSession) => delivery.sessionChanged(session));
    events.on("session-ended", (session: LocalSession) => delivery.sessionEnded(session));
  },
  async stop() {
    // Streams are closed by now, so flushes end at their next step; stores handed back by
    // ending sessions finish before the database closes.
    for (const delivery of running) await delivery.idle();
  },
};
