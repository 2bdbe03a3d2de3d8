/** Data access for the payment system's payment and withdrawal orders. Takes a knex or a transaction. */
import type { Knex } from "knex";
import { toFen, valuesList } from "../shared/storage/database.js";
import { writeWithRetry } from "../shared/storage/contention.js";

export interface PaymentOrder {
  requestId: string;
  requestTime: string;
  salerId: string;
  totalFee: bigint;
  responseId: string;
  responseTime: string;
  responseCode: string;
  responseMsg: string;
}

export interface WithdrawalOrder {
  requestId: string;
  requestTime: string;
  salerId: string;
  withdrawMoney: bigint;
  responseId: string;
  responseTime: string;
  responseCode: string;
  responseMsg: string;
}

interface OrderRow {
  request_id: string;
  request_time: string;
  saler_id: string;
  response_id: string;
  response_time: string;
  response_code: string;
  response_msg: string;
}

/** In the query builder's spelling, as lock-wait probes of the process list look for it. */
const PAYMENT_INSERT =
  "insert into `payment_orders` (`request_id`, `request_time`, `saler_id`, `total_fee`, `response_id`, `response_time`, `response_code`, `response_msg`, `settlement_id`) values ";
/** A new payment is pending: no settlement yet. */
const PAYMENT_VALUES = "(?, ?, ?, ?, ?, ?, ?, ?, NULL)";

export async function insertPayment(db: Knex, o: PaymentOrder): Promise<void> {
  await insertPayments(db, [o]);
}

/**
 * One statement for several orders: all of them are recorded, or (on any duplicate, or when
 * contention outlasts its retries) none.
 */
export async function insertPayments(db: Knex, orders: readonly PaymentOrder[]): Promise<void> {
  const bindings: unknown[] = [];
  for (const o of orders) bindings.push(o.requestId, o.requestTime, o.salerId, o.totalFee, o.responseId, o.responseTime, o.responseCode, o.responseMsg);
  const sql = PAYMENT_INSERT + valuesList(PAYMENT_VALUES, orders.length);
  await writeWithRetry(db, () => db.raw(sql, bindings as Knex.RawBinding[]));
}

/**
 * A request_id closed by CloseOrder is a row of its order table with response_code CLOSED, no
 * account and no amount. The unique request_id index decides in one statement whether an order
 * or the close came first, on every backend and across instances. A closed payment row carries
 * settlement id 0: it is never pending and never credited.
 */
export const CLOSED = "CLOSED";
export const NOTHING_TO_SETTLE = 0n;

export async function insertClosed(
  db: Knex,
  table: "payment_orders" | "withdrawal_orders",
  requestId: string,
  responseId: string,
  now: string,
): Promise<void> {
  const row = {
    request_id: requestId,
    request_time: "",
    saler_id: "",
    response_id: responseId,
    response_time: now,
    response_code: CLOSED,
    response_msg: "closed",
  };
  if (table === "payment_orders") await writeWithRetry(db, () => db(table).insert({ ...row, total_fee: 0n, settlement_id: NOTHING_TO_SETTLE }));
  else await writeWithRetry(db, () => db(table).insert({ ...row, withdraw_money: 0n }));
}

export async function findPayment(db: Knex, requestId: string): Promise<PaymentOrder | undefined> {
  const row = (await db("payment_orders").where({ request_id: requestId }).first()) as (OrderRow & { total_fee: unknown }) | undefined;
  if (!row) return undefined;
  return {
    requestId: row.request_id,
    requestTime: row.request_time,
    salerId: row.saler_id,
    totalFee: toFen(row.total_fee),
    responseId: row.response_id,
    responseTime: row.response_time,
    responseCode: row.response_code,
    responseMsg: row.response_msg,
  };
}

const WITHDRAWAL_INSERT =
  "INSERT INTO withdrawal_orders (request_id, request_time, saler_id, withdraw_money, response_id, response_time, response_code, response_msg) VALUES ";
const WITHDRAWAL_VALUES = "(?, ?, ?, ?, ?, ?, ?, ?)";

export async function insertWithdrawal(db: Knex, o: WithdrawalOrder): Promise<void> {
  await insertWithdrawals(db, [o]);
}

/** One statement for several withdrawal orders: all of them are recorded, or (on any duplicate) none. */
export async function insertWithdrawals(db: Knex, orders: readonly WithdrawalOrder[]): Promise<void> {
  const bindings: unknown[] = [];
  for (const o of orders) bindings.push(o.requestId, o.requestTime, o.salerId, o.withdrawMoney, o.responseId, o.responseTime, o.responseCode, o.responseMsg);
  await db.raw(WITHDRAWAL_INSERT + valuesList(WITHDRAWAL_VALUES, orders.length), bindings as Knex.RawBinding[]);
}

/** Turns a withdrawal recorded in this transaction into a refusal (its debit did not happen). */
export async function markWithdrawalFailed(db: Knex, requestId: string, message: string): Promise<void> {
  await db("withdrawal_orders").where({ request_id: requestId }).update({ response_code: "FAIL", response_msg: message });
}

export async function findWithdrawal(db: Knex, requestId: string): Promise<WithdrawalOrder | undefined> {
  const row = (await db("withdrawal_orders").where({ request_id: requestId }).first()) as
    | (OrderRow & { withdraw_money: unknown })
    | undefined;
  if (!row) return undefined;
  return {
    requestId: row.request_id,
    requestTime: row.request_time,
    salerId: row.saler_id,
    withdrawMoney: toFen(row.withdraw_money),
    responseId: row.response_id,
    responseTime: row.response_time,
    responseCode: row.response_code,
    responseMsg: row.response_msg,
  };
}
