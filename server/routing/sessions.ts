/**
 * The local session directory: which resources of which accounts are bound on this node.
 * References: RFC 6120 §7 (resource binding), §7.7.2.2 (conflict), RFC 6121 §8.5 (delivery
 * depends on the account's resources and their availability and priority).
 */
import type { LocalSession } from "../modules/module.ts";

export class SessionDirectory {
  private readonly byBare = new Map<string, Map<string, LocalSession>>();
  private count = 0;

  /** Adds a bound session; returns the session it replaced (same full JID), if any. */
  add(session: LocalSession): LocalSession | undefined {
    const bare = session.jid.bare;
    let resources = this.byBare.get(bare);
    if (!resources) {
      resources = new Map();
      this.byBare.set(bare, resources);
    }
    const previous = resources.get(session.jid.resource);
    resources.set(session.jid.resource, session);
    if (!previous) this.count++;
    return previous;
  }

  /** Removes the session if it is still the one bound to its full JID. */
  remove(session: LocalSession): boolean {
    const resources = this.byBare.get(session.jid.bare);
    if (resources?.get(session.jid.resource) !== session) return false;
    resources.delete(session.jid.resource);
    if (resources.size === 0) this.byBare.delete(session.jid.bare);
    this.count--;
    return true;
  }

  get(bare: string, resource: string): LocalSession | undefined {
    return this.byBare.get(bare)?.get(resource);
  }

  of(bare: string): readonly LocalSession[] {
    const resources = this.byBare.get(bare);
    return resources ? [...resources.values()] : [];
  }

  hasResource(bare: string, resource: string): boolean {
    return this.byBare.get(bare)?.has(resource) ?? false;
  }

  get size(): number {
    return this.count;
  }

  all(): IterableIterator<LocalSession> {
    const maps = this.byBare.values();
    return (function* () {
      for (const resources of maps) yield* resources.values();
    })();
  }
}
