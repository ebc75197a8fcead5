/**
 * Keeps pglite-socket's connections from interleaving inside one protocol exchange.
 * References: PostgreSQL docs §53.2.3 (extended query: Parse/Bind/Execute up to Sync, unnamed
 * statement and portal), §53.2.2 and §53.7 (ReadyForQuery 'Z' ends every exchange; its status
 * byte is 'I' idle, 'T' in a transaction, 'E' in a failed transaction).
 *
 * Why: PGlite has a single backend. pglite-socket 0.2.17 queues protocol *messages* from all
 * connections and keeps one connection's turn only while `isInTransaction()` (an explicit
 * BEGIN). Between a Parse and its Bind, or a Bind and its Execute, another connection's message
 * can run and replace the unnamed statement or portal: we measured wrong rows and
 * 'portal "" does not exist' under concurrent postgres.js queries. The fix hands the socket
 * server a view of PGlite whose `isInTransaction()` means "the backend has not yet said
 * ReadyForQuery(idle) to the connection that spoke last", which makes pglite-socket's own
 * turn-keeping cover every exchange: extended-protocol sequences, COPY, and transactions.
 */
import type { PGlite } from "@electric-sql/pglite";

const MSG_TERMINATE = 0x58; // 'X'
const MSG_READY_FOR_QUERY = 0x5a; // 'Z'
const STATUS_IDLE = 0x49; // 'I'
const SYNC = new Uint8Array([0x53, 0, 0, 0, 4]); // 'S', length 4

/** Finds the backend's ReadyForQuery messages in its raw output, across chunk boundaries. */
class ReadyScanner {
  idle = true;
  private header = new Uint8Array(5);
  private headerLength = 0;
  private bodyLeft = 0;
  private type = 0;

  feed(chunk: Uint8Array): void {
    let i = 0;
    while (i < chunk.length) {
      if (this.bodyLeft > 0) {
        // The first body byte of 'Z' is the transaction status.
        if (this.type === MSG_READY_FOR_QUERY && this.bodyLeft === 1) this.idle = chunk[i] === STATUS_IDLE;
        const take = Math.min(this.bodyLeft, chunk.length - i);
        this.bodyLeft -= take;
        i += take;
        continue;
      }
      this.header[this.headerLength++] = chunk[i++]!;
      if (this.headerLength < 5) continue;
      this.headerLength = 0;
      this.type = this.header[0]!;
      const length = new DataView(this.header.buffer).getInt32(1);
      this.bodyLeft = length - 4;
      // Any message after a ReadyForQuery starts a new exchange.
      this.idle = false;
    }
  }
}

/**
 * Wraps `db` for `new PGLiteSocketServer({ db })`. `onBroken` is called if PGlite throws instead
 * of answering (pglite-socket would then stall every connection forever).
 */
export function withProtocolTurns(db: PGlite, onBroken: (err: unknown) => void): PGlite {
  const scanner = new ReadyScanner();
  return new Proxy(db, {
    get(target, prop) {
      switch (prop) {
        case "isInTransaction":
          return () => !scanner.idle || target.isInTransaction();
        case "execProtocolRawStream":
          return async (message: Uint8Array, opts: Parameters<PGlite["execProtocolRawStream"]>[1]) => {
            // Terminate has no answer; the connection's close is handled below.
            if (message[0] !== MSG_TERMINATE) scanner.idle = false;
            try {
              await target.execProtocolRawStream(message, {
                ...opts,
                onRawData: (data) => {
                  scanner.feed(data);
                  opts.onRawData(data);
                },
              });
            } catch (err) {
              onBroken(err);
              throw err;
            }
          };
        case "exec":
          // pglite-socket calls exec("ROLLBACK") when a connection that holds the turn goes
          // away. Its exchange may be mid-way (after a Parse, or after an error, when the
          // backend skips everything up to a Sync): finish it with a Sync first.
          return async (query: string, options?: Parameters<PGlite["exec"]>[1]) => {
            if (query === "ROLLBACK" && !scanner.idle) {
              await target.runExclusive(() => target.execProtocolRaw(SYNC));
              scanner.idle = true;
              if (!target.isInTransaction()) return [];
            }
            return target.exec(query, options);
          };
        default: {
          const value = Reflect.get(target, prop, target);
          return typeof value === "function" ? value.bind(target) : value;
        }
      }
    },
  });
}
