/**
 * Money-moving orders of concurrent calls (withdrawals, refunds) written together: one
 * transaction for a batch, and each order alone when the batch cannot be taken as a whole.
 */
import type { Knex } from "knex";
import type { CallStop } from "../shared/rpc/callPolicy.js";
import { inTransaction, type Database } from "../shared/storage/database.js";
import { WriteBatcher } from "../shared/storage/writeBatcher.js";
import { isDuplicateKeyError, isRetryableTransactionError } from "../shared/errors.js";
import { abandoned } from "./recordOnce.js";

/** Thrown by `together` when a condition of the batch as a whole fails (the transaction rolls back). */
export class BatchDoesNotFit extends Error {}

/** An order of the batch that was not written, and why. */
class Failed {
  constructor(readonly reason: unknown) {}
}

type Outcome<O> = O | Failed;

/**
 * Writes an order with those of concurrent calls. An order whose caller stopped waiting before
 * its batch ran is left out (DEADLINE_EXCEEDED, nothing written). The others, when there are two
 * or more and `sharable` allows, are written in one transaction by `together`, all SUCCESS. When
 * that throws BatchDoesNotFit, meets a duplicate key, or contention outlasts the transaction's
 * retries, it has rolled back and each order runs `alone` (which retries contention itself) and
 * gets the answer it would have got alone.
 */
export function orderBatches<O>(
  db: Database,
  steps: {
    together(trx: Knex.Transaction, orders: readonly O[]): Promise<void>;
    alone(order: O): Promise<O>;
    sharable?(orders: readonly O[]): boolean;
  },
): (order: O, signal: CallStop) => Promise<O> {
  const batcher = new WriteBatcher<{ order: O; signal: CallStop }, Outcome<O>>(
    async (items) => {
      const live = items.filter((i) => !i.signal.aborted).map((i) => i.order);
      const alone = () => Promise.all(live.map((o) => steps.alone(o).then((r): Outcome<O> => r, (reason: unknown) => new Failed(reason))));
      let outcomes: Outcome<O>[];
      if (live.length <= 1 || (steps.sharable && !steps.sharable(live))) outcomes = await alone();
      else {
        try {
          await inTransaction(db, (trx) => steps.together(trx, live));
          outcomes = live;
        } catch (err) {
          if (!(err instanceof BatchDoesNotFit) && !isDuplicateKeyError(err) && !isRetryableTransactionError(err)) throw err;
          outcomes = await alone();
        }
      }
      const byOrder = new Map(live.map((o, i) => [o, outcomes[i]!]));
      return items.map((i) => byOrder.get(i.order) ?? new Failed(abandoned()));
    },
    // At most 32 orders a batch: callers in one batch all wait for its transaction, then all
    // answer and send their next calls at once, so with every caller in one batch the database
    // and the serving of calls take turns. Two or more batches overlap them; on one account they
    // still serialize on its row lock, but one batch's calls are served while the next commits.
    { maxInFlight: 4, maxBatch: 32 },
  );
  return async (order, signal) => {
    const written = await batcher.submit({ order, signal });
    if (written instanceof Failed) throw written.reason;
    return written;
  };
}
