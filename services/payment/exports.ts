/**
 * Exports of the payment system's successful orders and of balances as of a cut-off, in pages,
 * so memory does not grow with the number of orders (orders: see orderExport.ts).
 */
import type { Knex } from "knex";
import { inTransaction, throughIndex, toFen, type Database } from "../shared/storage/database.js";
import { exportSuccessfulOrders, lastIdAt, type ExportRow } from "../shared/orders/orderExport.js";
import type { ExportedOrderType } from "../shared/orders/exportService.js";

export function exportOrders(
  db: Database,
  type: ExportedOrderType,
  key: "request_id" | "response_id",
  cutoffTime: string,
  batchSize: number,
): AsyncGenerator<ExportRow[]> {
  const { table, amount } =
    type === "WITHDRAWAL"
      ? { table: "withdrawal_orders", amount: "withdraw_money" }
      : type === "REFUND"
        ? { table: "refund_orders", amount: "refund_fee" }
        : { table: "payment_orders", amount: "total_fee" };
  // On MySQL the statement streams every order: read in the key's unique index, the rows come
  // in order as the scan goes, where the optimizer would otherwise sort the whole table first
  // (response_code is not indexed).
  const from = throughIndex(db, table, `${table}_${key}`);
  const orders = () =>
    db.knex
      .from(from)
      .select("request_id", "response_id", "saler_id", { amount }, "request_time", "response_time")
      .where({ response_code: "SUCCESS" });
  return exportSuccessfulOrders(db, orders, key, cutoffTime, batchSize);
}

export interface BalanceRow {
  salerId: string;
  balance: bigint;
  settledBalance: bigint;
  pending: bigint;
}

type SumRow = { saler_id: string; s: unknown };

async function sums(q: Knex.QueryBuilder): Promise<Map<string, bigint>> {
  const rows = (await q) as SumRow[];
  return new Map(rows.map((r) => [r.saler_id, toFen(r.s)]));
}

/**
 * Every account's balance as of the cut-off, read from one consistent snapshot:
 * settled balance − credits settled for payments answered after the cut-off
 * + pending credits for payments answered at or before it
 * + withdrawals and refunds answered after it.
 * That is the balance a settlement of everything up to the cut-off would show, had nothing
 * happened since, so payments still flowing and credits still buffered never make it differ
 * from the merchant's records of the same period.
 */
export async function* exportBalances(db: Database, cutoffTime: string, batchSize: number): AsyncGenerator<BalanceRow[]> {
  const rows = await inTransaction(
    db,
    async (trx) => {
      const last = cutoffTime === "" ? undefined : lastIdAt(cutoffTime);
      const pendingAll = await sums(
        trx("payment_orders").select("saler_id").sum({ s: "total_fee" }).whereNull("settlement_id").groupBy("saler_id"),
      );
      let pendingUpTo = pendingAll;
      let settledAfter = new Map<string, bigint>();
      let withdrawnAfter = new Map<string, bigint>();
      let refundedAfter = new Map<string, bigint>();
      if (last !== undefined) {
        pendingUpTo = await sums(
          trx("payment_orders")
            .select("saler_id")
            .sum({ s: "total_fee" })
            .whereNull("settlement_id")
            .andWhere("response_id", "<=", last)
            .groupBy("saler_id"),
        );
        settledAfter = await sums(
          trx("payment_orders")
            .select("saler_id")
            .sum({ s: "total_fee" })
            .whereNotNull("settlement_id")
            .andWhere("response_id", ">", last)
            .groupBy("saler_id"),
        );
        withdrawnAfter = await sums(
          trx("withdrawal_orders")
            .select("saler_id")
            .sum({ s: "withdraw_money" })
            .where({ response_code: "SUCCESS" })
            .andWhere("response_id", ">", last)
            .groupBy("saler_id"),
        );
        refundedAfter = await sums(
          trx("refund_orders")
            .select("saler_id")
            .sum({ s: "refund_fee" })
            .where({ response_code: "SUCCESS" })
            .andWhere("response_id", ">", last)
            .groupBy("saler_id"),
        );
      }
      const accounts = (await trx("accounts").select("saler_id", "balance").orderBy("saler_id")) as { saler_id: string; balance: unknown }[];
      return accounts.map((a): BalanceRow => {
        const settled = toFen(a.balance);
        const id = a.saler_id;
        return {
          salerId: id,
          balance: settled - (settledAfter.get(id) ?? 0n) + (pendingUpTo.get(id) ?? 0n) + (withdrawnAfter.get(id) ?? 0n) + (refundedAfter.get(id) ?? 0n),
          settledBalance: settled,
          pending: pendingAll.get(id) ?? 0n,
        };
      });
    },
    { snapshot: true },
  );
  for (let i = 0; i < rows.length; i += batchSize) yield rows.slice(i, i + batchSize);
}
