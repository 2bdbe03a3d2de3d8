/** Data access for the merchant's orders. Takes a knex or a transaction. */
import type { Knex } from "knex";
import { sqlInt, toFen, valuesList } from "../shared/storage/database.js";
import { writeWithRetry } from "../shared/storage/contention.js";

export type OrderTypeName = "PAYMENT" | "WITHDRAWAL" | "REFUND";
export const ORDER_TYPES: readonly OrderTypeName[] = ["PAYMENT", "WITHDRAWAL", "REFUND"];
export type OrderState = "INIT" | "SUCCESS" | "FAIL" | "UNKNOWN";
export const ORDER_STATES: readonly OrderState[] = ["INIT", "SUCCESS", "FAIL", "UNKNOWN"];

export interface MerchantOrder {
  id?: bigint;
  requestId: string;
  orderType: OrderTypeName;
  salerId: string;
  amount: bigint;
  requestTime: string;
  state: OrderState;
  responseId: string;
  responseTime: string;
  responseCode: string;
  responseMsg: string;
  fault?: string | null;
  /** A refund: the request_id of the payment it refunds. */
  paymentRequestId?: string | null;
}

interface Row {
  id: unknown;
  request_id: string;
  order_type: OrderTypeName;
  saler_id: string;
  amount: unknown;
  request_time: string;
  state: OrderState;
  response_id: string | null;
  response_time: string | null;
  response_code: string | null;
  response_msg: string | null;
  fault: string | null;
  payment_request_id?: string | null;
}

function fromRow(r: Row): MerchantOrder {
  return {
    id: toFen(r.id),
    requestId: r.request_id,
    orderType: r.order_type,
    salerId: r.saler_id,
    amount: toFen(r.amount),
    requestTime: r.request_time,
    state: r.state,
    responseId: r.response_id ?? "",
    responseTime: r.response_time ?? "",
    responseCode: r.response_code ?? "",
    responseMsg: r.response_msg ?? "",
    fault: r.fault,
    paymentRequestId: r.payment_request_id ?? null,
  };
}

const ORDER_INSERT =
  "INSERT INTO merchant_orders (request_id, order_type, saler_id, amount, request_time, state, response_id, response_time, response_code, " +
  "response_msg, fault, payment_request_id, simulation_id, updated_time) VALUES ";
const ORDER_VALUES = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

export async function insertOrder(db: Knex, o: MerchantOrder, now: string, simulationId?: string): Promise<void> {
  await insertOrders(db, [{ order: o, now, simulationId }]);
}

/**
 * One statement for several new orders: all of them are stored, or (on any duplicate, or when
 * contention outlasts its retries) none.
 */
export async function insertOrders(db: Knex, orders: readonly { order: MerchantOrder; now: string; simulationId?: string | undefined }[]): Promise<void> {
  const bindings: unknown[] = [];
  for (const { order: o, now, simulationId } of orders) {
    bindings.push(
      o.requestId,
      o.orderType,
      o.salerId,
      o.amount,
      o.requestTime,
      o.state,
      nullIfEmpty(o.responseId),
      nullIfEmpty(o.responseTime),
      nullIfEmpty(o.responseCode),
      nullIfEmpty(o.responseMsg),
      o.fault ?? null,
      o.paymentRequestId || null,
      simulationId ?? null,
      now,
    );
  }
  const sql = ORDER_INSERT + valuesList(ORDER_VALUES, orders.length);
  await writeWithRetry(db, () => db.raw(sql, bindings as Knex.RawBinding[]));
}

export type Outcome = Pick<MerchantOrder, "state" | "responseId" | "responseTime" | "responseCode" | "responseMsg">;

function nullIfEmpty(v: string): string | null {
  return v === "" ? null : v;
}

/**
 * Records the outcomes of several open orders (INIT or UNKNOWN) in one statement, as
 * recordOutcome does one by one; updated_time is the latest of their times.
 */
export async function recordOutcomes(db: Knex, items: readonly { requestId: string; outcome: Outcome; now: string }[]): Promise<void> {
  const cases = `CASE request_id ${valuesList("WHEN ? THEN ?", items.length).replaceAll(", ", " ")} END`;
  const bindings: unknown[] = [];
  const byRequest = (value: (o: Outcome) => string | null) => {
    for (const i of items) bindings.push(i.requestId, value(i.outcome));
  };
  byRequest((o) => o.state);
  byRequest((o) => nullIfEmpty(o.responseId));
  byRequest((o) => nullIfEmpty(o.responseTime));
  byRequest((o) => nullIfEmpty(o.responseCode));
  byRequest((o) => nullIfEmpty(o.responseMsg));
  let now = "";
  for (const i of items) if (i.now > now) now = i.now;
  bindings.push(now);
  for (const i of items) bindings.push(i.requestId);
  const sql =
    `UPDATE merchant_orders SET state = ${cases}, response_id = ${cases}, response_time = ${cases}, response_code = ${cases}, ` +
    `response_msg = ${cases}, updated_time = ? WHERE request_id IN (${valuesList("?", items.length)}) AND state IN ('INIT', 'UNKNOWN')`;
  await writeWithRetry(db, () => db.raw(sql, bindings as Knex.RawBinding[]));
}

/** Records the outcome of an order that is still open (INIT or UNKNOWN). */
export async function recordOutcome(
  db: Knex,
  requestId: string,
  outcome: Pick<MerchantOrder, "state" | "responseId" | "responseTime" | "responseCode" | "responseMsg"> & { amount?: bigint; fault?: string },
  now: string,
): Promise<boolean> {
  const changed = await writeWithRetry(db, () => db("merchant_orders")
    .where({ request_id: requestId })
    .whereIn("state", ["INIT", "UNKNOWN"])
    .update({
      state: outcome.state,
      response_id: outcome.responseId === "" ? null : outcome.responseId,
      response_time: outcome.responseTime === "" ? null : outcome.responseTime,
      response_code: outcome.responseCode === "" ? null : outcome.responseCode,
      response_msg: outcome.responseMsg === "" ? null : outcome.responseMsg,
      ...(outcome.amount === undefined ? {} : { amount: outcome.amount }),
      ...(outcome.fault === undefined ? {} : { fault: outcome.fault }),
      updated_time: now,
    }));
  return changed === 1;
}

export async function findOrder(db: Knex, requestId: string): Promise<MerchantOrder | undefined> {
  const row = (await db("merchant_orders").where({ request_id: requestId }).first()) as Row | undefined;
  return row ? fromRow(row) : undefined;
}

export async function listOrders(
  db: Knex,
  filter: { orderType?: OrderTypeName; state?: OrderState; salerId?: string; beforeId?: bigint; limit: number },
): Promise<MerchantOrder[]> {
  let q = db("merchant_orders").select("*").orderBy("id", "desc").limit(filter.limit);
  if (filter.orderType) q = q.where({ order_type: filter.orderType });
  if (filter.state) q = q.where({ state: filter.state });
  if (filter.salerId) q = q.where({ saler_id: filter.salerId });
  if (filter.beforeId !== undefined) q = q.where("id", "<", sqlInt(filter.beforeId));
  return ((await q) as Row[]).map(fromRow);
}

/** Open orders to resolve: UNKNOWN ones, and INIT ones requested at or before `initBefore`. */
export async function openOrders(db: Knex, initBefore: string, afterId: bigint, limit: number): Promise<MerchantOrder[]> {
  const rows = (await db("merchant_orders")
    .select("*")
    .where("id", ">", sqlInt(afterId))
    .whereNull("fault")
    .andWhere((w) => w.where({ state: "UNKNOWN" }).orWhere((i) => i.where({ state: "INIT" }).andWhere("request_time", "<=", initBefore)))
    .orderBy("id")
    .limit(limit)) as Row[];
  return rows.map(fromRow);
}

export interface RefundTotals {
  /** Successful refunds. */
  refunded: bigint;
  /** Refunds sent or about to be, without an answer yet (INIT, UNKNOWN). */
  inFlight: bigint;
}

/** What is left to refund of a payment of `amount`: less its refunds that succeeded or wait for an answer. */
export function refundableOf(amount: bigint, totals: RefundTotals | undefined): bigint {
  const left = amount - (totals?.refunded ?? 0n) - (totals?.inFlight ?? 0n);
  return left > 0n ? left : 0n;
}

/** The refund sums of one payment from its refund orders. */
export function sumRefunds(refunds: readonly MerchantOrder[]): RefundTotals {
  const totals: RefundTotals = { refunded: 0n, inFlight: 0n };
  for (const r of refunds) {
    if (r.state === "SUCCESS") totals.refunded += r.amount;
    else if (r.state === "INIT" || r.state === "UNKNOWN") totals.inFlight += r.amount;
  }
  return totals;
}

/** Refund sums of each of these payments (absent: none). */
export async function refundTotals(db: Knex, paymentRequestIds: readonly string[]): Promise<Map<string, RefundTotals>> {
  const totals = new Map<string, RefundTotals>();
  const rows: { payment_request_id: string; state: OrderState; s: unknown }[] = [];
  for (let i = 0; i < paymentRequestIds.length; i += 500) {
    rows.push(
      ...((await db("merchant_orders")
        .select("payment_request_id", "state")
        .sum({ s: "amount" })
        .where({ order_type: "REFUND" })
        .whereIn("payment_request_id", paymentRequestIds.slice(i, i + 500))
        .whereIn("state", ["SUCCESS", "INIT", "UNKNOWN"])
        .groupBy("payment_request_id", "state")) as typeof rows),
    );
  }
  for (const r of rows) {
    const t = totals.get(r.payment_request_id) ?? { refunded: 0n, inFlight: 0n };
    if (r.state === "SUCCESS") t.refunded += toFen(r.s);
    else t.inFlight += toFen(r.s);
    totals.set(r.payment_request_id, t);
  }
  return totals;
}

/** The refunds of one payment, oldest first. */
export async function refundsOf(db: Knex, paymentRequestId: string): Promise<MerchantOrder[]> {
  const rows = (await db("merchant_orders").select("*").where({ order_type: "REFUND", payment_request_id: paymentRequestId }).orderBy("id")) as Row[];
  return rows.map(fromRow);
}

/**
 * The successful payments of the accounts prefix1..prefixN that are not injected faults, in
 * order of storage, each with what is left of it to refund (its amount less its refunds that
 * succeeded or still wait for an answer).
 */
export async function refundablePayments(
  db: Knex,
  prefix: string,
  accounts: number,
): Promise<{ requestId: string; responseId: string; salerId: string; left: bigint }[]> {
  const names = Array.from({ length: accounts }, (_, i) => `${prefix}${i + 1}`);
  const out: { requestId: string; responseId: string; salerId: string; left: bigint }[] = [];
  for (let i = 0; i < names.length; i += 500) {
    const rows = (await db("merchant_orders")
      .select("request_id", "response_id", "saler_id", "amount")
      .where({ order_type: "PAYMENT", state: "SUCCESS" })
      .whereNull("fault")
      .whereIn("saler_id", names.slice(i, i + 500))
      .orderBy("id")) as { request_id: string; response_id: string; saler_id: string; amount: unknown }[];
    const totals = await refundTotals(db, rows.map((r) => r.request_id));
    for (const r of rows) {
      const left = refundableOf(toFen(r.amount), totals.get(r.request_id));
      if (left > 0n) out.push({ requestId: r.request_id, responseId: r.response_id, salerId: r.saler_id, left });
    }
  }
  return out;
}

/** Number and amount of orders per order type and state. */
export async function countOrders(db: Knex, orderType?: OrderTypeName): Promise<{ orderType: OrderTypeName; state: OrderState; count: bigint; amount: bigint }[]> {
  let q = db("merchant_orders").select("order_type", "state").count({ n: "*" }).sum({ total: "amount" }).groupBy("order_type", "state");
  if (orderType) q = q.where({ order_type: orderType });
  const rows = (await q) as { order_type: OrderTypeName; state: OrderState; n: unknown; total: unknown }[];
  return rows.map((r) => ({ orderType: r.order_type, state: r.state, count: toFen(r.n), amount: r.total === null ? 0n : toFen(r.total) }));
}
