/**
 * The balance ceiling: no account holds more than 10^15 fen (10 trillion yuan). The database
 * enforces it (a CHECK on accounts.balance, both backends: migrations/20261129_0002), far below
 * the int64 limit, so no sum of credits can overflow. Pay refuses at the door a payment that
 * would take the account's settled balance plus its pending credit past it, so settlement does
 * not meet it.
 *
 * The check costs one round trip per batch of payments: the balances and pending sums of the
 * batch's accounts, read together (the pending sum from the index alone), and compared with the
 * batch's own amounts grouped by account. What it guarantees:
 * - One instance: exact. Amounts this instance admitted and has not finished writing are
 *   counted too, and kept counted until no check that began before they were written is still
 *   running, so two of its own batches cannot both take the same headroom.
 * - Several instances: payments that other instances admit at the same moment, and have not
 *   committed when this read happens, are not seen; such concurrent payments to one account near
 *   the ceiling can together pass it by at most their own sum. Nothing is lost then: the CHECK
 *   refuses that account's settlement, which settles every other account (settlement.ts), and
 *   the account's credit stays pending, visible in GetBalance, until an operator acts.
 * A request_id that is already recorded is never refused here: it gets its stored answer.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type { Knex } from "knex";
import { toFen } from "../shared/storage/database.js";
import type { PaymentOrder } from "./orders.js";

export const BALANCE_CEILING = 10n ** 15n;

export function ceilingRefusal(o: PaymentOrder): ConnectError {
  return new ConnectError(
    `total_fee: ${o.totalFee} fen would take account ${o.salerId} past the balance ceiling of ${BALANCE_CEILING} fen ` +
      "(settled balance plus pending credit plus this payment); the payment is refused and nothing was recorded",
    Code.FailedPrecondition,
  );
}

/** Settled balance plus pending credit of each of these accounts (0 when it has neither). */
export async function balancePlusPending(db: Knex, salerIds: readonly string[]): Promise<Map<string, bigint>> {
  const ids = [...salerIds];
  const marks = ids.map(() => "?").join(", ");
  const result = await db.raw(
    `SELECT saler_id, balance AS amount FROM accounts WHERE saler_id IN (${marks}) ` +
      `UNION ALL SELECT saler_id, SUM(total_fee) AS amount FROM payment_orders WHERE saler_id IN (${marks}) AND settlement_id IS NULL GROUP BY saler_id`,
    [...ids, ...ids],
  );
  // mysql2 answers [rows, fields]; better-sqlite3 answers the rows.
  const rows = (Array.isArray(result[0]) ? result[0] : result) as { saler_id: string; amount: unknown }[];
  const totals = new Map<string, bigint>(ids.map((id) => [id, 0n]));
  for (const r of rows) totals.set(r.saler_id, (totals.get(r.saler_id) ?? 0n) + toFen(r.amount));
  return totals;
}

export interface Admission {
  admitted: PaymentOrder[];
  refused: Map<PaymentOrder, ConnectError>;
  /** The admitted orders are written (or failed): their amounts stop being reserved. */
  release(): void;
}

/** The ceiling check of one payment instance. */
export class CeilingGuard {
  private readonly reserved = new Map<string, bigint>();
  private checking = 0;
  private releases: Map<string, bigint>[] = [];

  constructor(private readonly db: Knex) {}

  async admit(orders: readonly PaymentOrder[]): Promise<Admission> {
    const refused = new Map<PaymentOrder, ConnectError>();
    if (orders.length === 0) return { admitted: [], refused, release: () => {} };
    this.checking++;
    let admitted: PaymentOrder[];
    const taken = new Map<string, bigint>();
    try {
      const totals = await balancePlusPending(this.db, [...new Set(orders.map((o) => o.salerId))]);
      const over: PaymentOrder[] = [];
      for (const o of orders) {
        const used = totals.get(o.salerId)! + (this.reserved.get(o.salerId) ?? 0n) + (taken.get(o.salerId) ?? 0n);
        if (used + o.totalFee > BALANCE_CEILING) over.push(o);
        else taken.set(o.salerId, (taken.get(o.salerId) ?? 0n) + o.totalFee);
      }
      for (const [salerId, amount] of taken) this.reserved.set(salerId, (this.reserved.get(salerId) ?? 0n) + amount);
      if (over.length > 0) {
        // A retry of a recorded request is answered from the record, whatever the balance now.
        const stored = new Set(
          ((await this.db("payment_orders").whereIn("request_id", over.map((o) => o.requestId)).select("request_id")) as { request_id: string }[]).map(
            (r) => r.request_id,
          ),
        );
        for (const o of over) if (!stored.has(o.requestId)) refused.set(o, ceilingRefusal(o));
      }
      admitted = orders.filter((o) => !refused.has(o));
    } catch (err) {
      this.releases.push(taken);
      throw err;
    } finally {
      this.checking--;
      this.applyReleases();
    }
    let released = false;
    return {
      admitted,
      refused,
      release: () => {
        if (released) return;
        released = true;
        this.releases.push(taken);
        this.applyReleases();
      },
    };
  }

  /** Reservations end only when no check that could have missed their rows is running. */
  private applyReleases(): void {
    if (this.checking > 0) return;
    for (const taken of this.releases) {
      for (const [salerId, amount] of taken) {
        const left = (this.reserved.get(salerId) ?? 0n) - amount;
        if (left > 0n) this.reserved.set(salerId, left);
        else this.reserved.delete(salerId);
      }
    }
    this.releases = [];
  }
}
