/**
 * Settlement: drains the credit buffer, sums the pending credits of each due account and adds
 * the sums to balances.
 *
 * Invariant: every successful payment row is credited exactly once. A chunk of accounts is
 * settled in one transaction that (1) stamps the chunk's pending payment rows with a new
 * settlement id, (2) sums exactly the rows it stamped, per account, and (3) adds those sums to
 * the balances. A crash or a failure anywhere rolls all three back together, and a row once
 * stamped is never credited again, whichever settler, process or retry comes next. The buffer
 * only tells which accounts to look at; when it may have lost accounts, the orders table is
 * swept for them. Statements per settlement grow with the accounts touched, not with the
 * payments.
 *
 * One account never holds up the others: a chunk whose transaction fails is settled again
 * account by account, each in a transaction of its own with the same three steps. An account
 * that fails alone (its balance would pass the ceiling's CHECK, or a fault) is logged with the
 * cause and skipped: its rows stay unstamped, so its credit stays pending (GetBalance shows it)
 * and is settled exactly once by whichever later run succeeds; this process settles it alone
 * from then on, so its former chunk-mates settle together again. When no account of a chunk
 * settles alone and the database does not answer, the run stops with the error instead, as
 * before: nothing of it is lost either.
 */
import type { Knex } from "knex";
import { toFen, inTransaction, sqlInt, type Database } from "../shared/storage/database.js";
import type { BusinessClock } from "../shared/orders/time.js";
import type { Logger } from "../shared/observability/logger.js";
import type { CreditBuffer } from "./creditBuffer.js";
import type { SettlementLease } from "./settlementLease.js";

export interface SettlementResult {
  ran: boolean;
  accountsSettled: number;
  creditsApplied: bigint;
  amountSettled: bigint;
  swept: boolean;
  durationMs: number;
  /** Accounts that failed alone and were skipped; their credit stays pending. */
  accountsSkipped: number;
}

/** Points where tests make a settlement fail, to prove that a failure there loses nothing. */
export interface SettlementFaults {
  afterDrain?: () => Promise<void>;
  /** Inside each settlement transaction, with the accounts it settles. */
  beforeCommit?: (trx: Knex.Transaction, accounts: readonly string[]) => Promise<void>;
  afterCommit?: () => Promise<void>;
}

/** Told of every run and of every committed chunk (metrics, logs). */
export interface SettlementObserver {
  /** A run ended; `result` is undefined when it failed with `err`. */
  finished(result: SettlementResult | undefined, err: unknown, durationMs: number): void;
  /** A chunk's settlement committed at `finishedTime` (business time); awaited before the run goes on. */
  committed(settlementId: bigint, finishedTime: string): Promise<void>;
}

export interface SettlementOptions {
  /** Accounts per transaction. */
  chunkSize: number;
  /** Sweep the orders table for due accounts every this many runs (also when the buffer lost data). */
  sweepEvery: number;
  leaseMs: number;
  faults?: SettlementFaults;
  observer?: SettlementObserver | undefined;
}

/**
 * The transactions of one run: the due accounts in saler_id order, `chunkSize` to a transaction,
 * then each account that failed alone before (`unsettleable`, due or not) in one of its own.
 */
export function planChunks(due: Iterable<string>, unsettleable: ReadonlySet<string>, chunkSize: number): string[][] {
  const accounts = [...new Set([...due, ...unsettleable])].sort();
  const together = accounts.filter((a) => !unsettleable.has(a));
  const chunks: string[][] = [];
  for (let i = 0; i < together.length; i += chunkSize) chunks.push(together.slice(i, i + chunkSize));
  for (const a of accounts) if (unsettleable.has(a)) chunks.push([a]);
  return chunks;
}

export class Settlement {
  private runs = 0;
  private sweepRequested = true;
  /** Accounts that failed alone: retried by every run, each in a transaction of its own. */
  private readonly unsettleable = new Set<string>();

  constructor(
    private readonly db: Database,
    private readonly buffer: CreditBuffer,
    private readonly clock: BusinessClock,
    private readonly logger: Logger,
    private readonly options: SettlementOptions,
  ) {}

  /** Asks the next run to sweep the orders table (e.g. after the buffer could not be written). */
  requestSweep(): void {
    this.sweepRequested = true;
  }

  async run(request: { fullSweep?: boolean } = {}): Promise<SettlementResult> {
    const started = Date.now();
    try {
      const result = await this.runOnce(request);
      this.options.observer?.finished(result, undefined, result.durationMs);
      return result;
    } catch (err) {
      this.options.observer?.finished(undefined, err, Date.now() - started);
      throw err;
    }
  }

  private async runOnce(request: { fullSweep?: boolean }): Promise<SettlementResult> {
    const started = Date.now();
    const lease = await this.buffer.acquireLease(this.options.leaseMs);
    if (!lease) {
      return { ran: false, accountsSettled: 0, creditsApplied: 0n, amountSettled: 0n, swept: false, durationMs: Date.now() - started, accountsSkipped: 0 };
    }
    let swept = false;
    try {
      this.runs++;
      swept =
        request.fullSweep === true ||
        this.sweepRequested ||
        this.runs % this.options.sweepEvery === 0 ||
        !(await this.buffer.isIntact());
      // Clear the request first: a failure of the buffer during this run asks again.
      if (swept) this.sweepRequested = false;
      const due = new Set(await this.buffer.beginDrain());
      await this.options.faults?.afterDrain?.();
      if (swept) {
        // Marked before the table is read: should the buffer lose data from here on, the marker
        // goes with it and the next run sweeps again.
        await this.buffer.markRebuilt();
        for (const salerId of await this.accountsWithPendingCredit()) due.add(salerId);
      }
      const chunks = planChunks(due, this.unsettleable, this.options.chunkSize);
      let accountsSettled = 0;
      let accountsSkipped = 0;
      let creditsApplied = 0n;
      let amountSettled = 0n;
      for (const chunk of chunks) {
        const { sums, skipped } = await this.settleIsolated(chunk, lease);
        await this.options.faults?.afterCommit?.();
        await this.buffer.finishDrain(
          new Map([...sums].map(([a, s]) => [a, s.amount])),
          chunk.filter((a) => !skipped.has(a)),
        );
        accountsSkipped += skipped.size;
        for (const s of sums.values()) {
          accountsSettled++;
          creditsApplied += s.count;
          amountSettled += s.amount;
        }
        if (!(await lease.renew())) {
          this.logger.warn("settlement lease lost; stopping this run");
          // Accounts found by the sweep and not settled yet are known only to this run.
          if (swept) await this.buffer.invalidate();
          break;
        }
      }
      const result = { ran: true, accountsSettled, creditsApplied, amountSettled, swept, durationMs: Date.now() - started, accountsSkipped };
      if (accountsSettled > 0 || accountsSkipped > 0) {
        this.logger.info({ ...result, creditsApplied: String(creditsApplied), amountSettled: String(amountSettled) }, "settled");
      }
      return result;
    } catch (err) {
      this.sweepRequested = true;
      // Other processes sweep too: the accounts this sweep found may not all be settled.
      if (swept) await this.buffer.invalidate().catch(() => {});
      throw err;
    } finally {
      await lease.release().catch(() => {});
    }
  }

  private async accountsWithPendingCredit(): Promise<string[]> {
    const rows = (await this.db.knex("payment_orders").distinct("saler_id").whereNull("settlement_id")) as { saler_id: string }[];
    return rows.map((r) => r.saler_id);
  }

  /**
   * Settles a chunk in one transaction; when that fails, each of its accounts in a transaction
   * of its own. Answers what was settled and which accounts failed alone (logged, left pending).
   */
  private async settleIsolated(
    chunk: string[],
    lease: SettlementLease,
  ): Promise<{ sums: Map<string, { amount: bigint; count: bigint }>; skipped: Set<string> }> {
    const failed = new Map<string, unknown>();
    const sums = new Map<string, { amount: bigint; count: bigint }>();
    try {
      for (const [a, s] of await this.settleChunk(chunk)) sums.set(a, s);
    } catch (err) {
      if (chunk.length === 1) failed.set(chunk[0]!, err);
      else {
        this.logger.warn({ err, accounts: chunk.length, first: chunk[0] }, "settlement chunk failed; settling its accounts one by one");
        for (const salerId of chunk) {
          try {
            for (const [a, s] of await this.settleChunk([salerId])) sums.set(a, s);
          } catch (alone) {
            failed.set(salerId, alone);
          }
          // One transaction per account takes longer than one per chunk: keep the lease (the
          // run's loop notices a lost one after the chunk).
          await lease.renew();
        }
      }
    }
    if (failed.size > 0 && failed.size === chunk.length) {
      // Not one account of the chunk settled: when the database itself does not answer, the
      // failure is not these accounts', and the run stops with it.
      await this.db.knex.raw("SELECT 1");
    }
    for (const [salerId, err] of failed) {
      this.logger.error({ err, salerId }, "account not settled; its credit stays pending and later runs retry it alone");
      if (this.unsettleable.size < 100_000) this.unsettleable.add(salerId);
    }
    for (const salerId of chunk) if (!failed.has(salerId)) this.unsettleable.delete(salerId);
    return { sums, skipped: new Set(failed.keys()) };
  }

  private async settleChunk(chunk: string[]): Promise<Map<string, { amount: bigint; count: bigint }>> {
    const now = this.clock.current();
    let committedId = 0n;
    const committed = await inTransaction(this.db, async (trx) => {
      const [id] = (await trx("settlements").insert({ started_time: now })) as number[];
      const settlementId = BigInt(id!);
      committedId = settlementId;
      const stamped = await trx("payment_orders")
        .whereIn("saler_id", chunk)
        .whereNull("settlement_id")
        .update({ settlement_id: settlementId });
      const sums = new Map<string, { amount: bigint; count: bigint }>();
      if (stamped > 0) {
        const rows = (await trx("payment_orders")
          .select("saler_id")
          .sum({ amount: "total_fee" })
          .count({ n: "*" })
          .where({ settlement_id: settlementId })
          .groupBy("saler_id")
          .orderBy("saler_id")) as { saler_id: string; amount: unknown; n: unknown }[];
        for (const r of rows) sums.set(r.saler_id, { amount: toFen(r.amount), count: toFen(r.n) });
        await this.addToBalances(trx, sums, now);
      }
      let credits = 0n;
      let amount = 0n;
      for (const s of sums.values()) {
        credits += s.count;
        amount += s.amount;
      }
      await trx("settlements")
        .where({ id: settlementId })
        .update({ finished_time: now, accounts: sums.size, credits, amount });
      await this.options.faults?.beforeCommit?.(trx, chunk);
      return sums;
    });
    if (committed.size > 0) await this.options.observer?.committed(committedId, this.clock.current());
    return committed;
  }

  /** One upsert for the whole chunk, rows in saler_id order so concurrent settlers lock alike. */
  private async addToBalances(trx: Knex.Transaction, sums: Map<string, { amount: bigint }>, now: string): Promise<void> {
    const values: Knex.Value[] = [];
    const tuples: string[] = [];
    for (const [salerId, s] of sums) {
      tuples.push("(?, ?, ?, ?)");
      values.push(salerId, sqlInt(s.amount), now, now);
    }
    const insert = `INSERT INTO accounts (saler_id, balance, created_time, updated_time) VALUES ${tuples.join(", ")}`;
    if (this.db.dialect === "mysql") {
      await trx.raw(`${insert} ON DUPLICATE KEY UPDATE balance = balance + VALUES(balance), updated_time = VALUES(updated_time)`, values);
    } else {
      await trx.raw(
        `${insert} ON CONFLICT (saler_id) DO UPDATE SET balance = accounts.balance + excluded.balance, updated_time = excluded.updated_time`,
        values,
      );
    }
  }
}
