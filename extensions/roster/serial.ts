/**
 * Per-key FIFO execution: tasks for one account run one after another, in the order they were
 * submitted; tasks for different accounts run concurrently.
 * References: RFC 6120 §10.1 (in-order processing), RFC 6121 §3 (each subscription stanza moves
 * the state machine from the state the previous one left).
 *
 * Why: a subscription stanza is read-modify-write on one roster row, and the stanzas that follow
 * it (presence after an approval, an unsubscribed after unavailable) must reach the contact in
 * that order. Submitting is synchronous, so the order of `run` calls is the order of execution.
 * A task must never wait for another task of the same key (it would wait for itself).
 */
export class KeyedSerial {
  private readonly tails = new Map<string, Promise<void>>();

  run<T>(key: string, task: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    const result = previous.then(task);
    const tail = result.then(
      () => {},
      () => {},
    );
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return result;
  }

  /** Resolves when every task submitted so far has finished (module stop). */
  async idle(): Promise<void> {
    while (this.tails.size > 0) await Promise.all([...this.tails.values()]);
  }

  /** Accounts with tasks queued or running (tests and metrics). */
  get busy(): number {
    return this.tails.size;
  }
}
