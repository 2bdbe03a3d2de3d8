/**
 * Lock contention is not a failure: a statement or transaction that the database rolled back as
 * a deadlock victim, that waited too long for a lock, or that found an SQLite file busy had no
 * effect, and is run again after a short random pause (full jitter, growing exponentially to a
 * cap), a bounded number of times. Only when every attempt met contention does the error reach
 * the caller, and then as ABORTED ("retry"), never INTERNAL (see `toClientError`).
 *
 * Inside a transaction nothing is retried statement by statement: a deadlock has already rolled
 * the whole transaction back, so the error goes up to `inTransaction`, which runs it all again.
 */
import type { Knex } from "knex";
import { isRetryableTransactionError } from "../errors.js";

export interface ContentionPolicy {
  /** Runs in all, the first included. */
  attempts: number;
  /** Upper bound of the first pause; each further pause may be twice as long, up to maxDelayMs. */
  baseDelayMs: number;
  maxDelayMs: number;
}

export const CONTENTION_POLICY: ContentionPolicy = { attempts: 8, baseDelayMs: 10, maxDelayMs: 400 };

/** The pause before attempt `attempt + 1`: uniform in [0, min(max, base * 2^(attempt-1))]. */
export function contentionDelayMs(attempt: number, policy: ContentionPolicy = CONTENTION_POLICY): number {
  return Math.random() * Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1));
}

/** Runs fn until it succeeds, fails with something other than contention, or the attempts run out. */
export async function retryOnContention<T>(fn: () => Promise<T>, policy: ContentionPolicy = CONTENTION_POLICY): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (attempt >= policy.attempts || !isRetryableTransactionError(err)) throw err;
      await new Promise((resolve) => setTimeout(resolve, contentionDelayMs(attempt, policy)));
    }
  }
}

/**
 * One write statement on `db`: retried on contention when it runs on its own (autocommit), run
 * once when `db` is a transaction, whose retry belongs to `inTransaction`.
 */
export function writeWithRetry<T>(db: Knex, fn: () => Promise<T>): Promise<T> {
  return db.isTransaction ? fn() : retryOnContention(fn);
}
