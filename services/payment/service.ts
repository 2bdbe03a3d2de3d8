/** PaymentService handlers: transport-free, served by grpc-js and connect-node alike. */
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import {
  OrderKey,
  OrderType,
  PaymentService,
  PayResponseSchema,
  RefundResponseSchema,
  WithdrawResponseSchema,
  CloseOrderResponseSchema,
  type CloseOrderResponse,
  type PayRequest,
  type PayResponse,
  type RefundRequest,
  type RefundResponse,
  type WithdrawRequest,
  type WithdrawResponse,
} from "../../gen/payment/v1/payment_pb.js";
import { inTransaction, type Database } from "../shared/database.js";
import { isDuplicateKeyError, isRetryableTransactionError } from "../shared/errors.js";
import { invalidField } from "../shared/errors.js";
import { OrderIdSequence } from "../shared/ids.js";
import type { BusinessClock } from "../shared/time.js";
import type { Logger } from "../shared/logger.js";
import type { OutageLog } from "../shared/readiness.js";
import {
  optionalBusinessTime,
  pageSize,
  requireAmount,
  requireBusinessTime,
  requireOrderId,
  requireRequestTimeInRange,
  requireRequestId,
  requireSalerId,
} from "../shared/validation.js";
import type { Credit, CreditBuffer } from "./creditBuffer.js";
import { WriteBatcher } from "../shared/writeBatcher.js";
import {
  CLOSED,
  insertClosed,
  accountViews,
  debit,
  ensureAccount,
  findPayment,
  findWithdrawal,
  insertPayment,
  insertPayments,
  insertWithdrawal,
  insertWithdrawals,
  markWithdrawalFailed,
  type PaymentOrder,
  type WithdrawalOrder,
} from "./orders.js";
import type { Settlement } from "./settlement.js";
import { CeilingGuard } from "./ceiling.js";
import { exportBalances, exportOrders } from "./exports.js";
import { findRefund, insertClosedRefund, MSG_REFUND_CLOSED, recordRefund, type RefundOrder } from "./refunds.js";

export const MSG_OK = "OK";
/** The seed's answer to a withdrawal the balance does not cover, an account that does not exist included. */
export const MSG_INSUFFICIENT_BALANCE = "账户余额不足，提款失败";
export const MSG_PAYMENT_CLOSED = "订单已关闭，支付失败";
export const MSG_WITHDRAWAL_CLOSED = "订单已关闭，提款失败";

export interface PaymentDeps {
  db: Database;
  buffer: CreditBuffer;
  settlement: Settlement;
  clock: BusinessClock;
  logger: Logger;
  exportBatchSize: number;
  /** How far ahead of this system's clock a request_time may lie (clock skew); 300 when absent. */
  requestTimeMaxAheadSeconds?: number | undefined;
  /** Logs the credit buffer's write failures once per outage (else one warning per payment). */
  bufferOutage?: OutageLog | undefined;
  /** Told of every order recorded (not of replayed answers): metrics. */
  onRecorded?: ((orderType: "PAYMENT" | "WITHDRAWAL" | "REFUND", responseCode: string) => void) | undefined;
}

function payResponse(o: PaymentOrder): PayResponse {
  return create(PayResponseSchema, {
    responseTime: o.responseTime,
    requestId: o.requestId,
    responseId: o.responseId,
    salerId: o.salerId,
    totalFee: o.totalFee,
    responseCode: o.responseCode,
    responseMsg: o.responseMsg,
  });
}

function withdrawResponse(o: WithdrawalOrder): WithdrawResponse {
  return create(WithdrawResponseSchema, {
    responseTime: o.responseTime,
    requestTime: o.requestTime,
    requestId: o.requestId,
    withdrawMoney: o.withdrawMoney,
    salerId: o.salerId,
    responseId: o.responseId,
    responseCode: o.responseCode,
    responseMsg: o.responseMsg,
  });
}

function refundResponse(o: RefundOrder): RefundResponse {
  return create(RefundResponseSchema, {
    responseTime: o.responseTime,
    requestTime: o.requestTime,
    requestId: o.requestId,
    salerId: o.salerId,
    paymentResponseId: o.paymentResponseId,
    refundFee: o.refundFee,
    responseId: o.responseId,
    responseCode: o.responseCode,
    responseMsg: o.responseMsg,
  });
}

function conflict(requestId: string): ConnectError {
  return new ConnectError(
    `request_id: ${requestId} was already used for a request with a different body`,
    Code.AlreadyExists,
  );
}

const ID_ATTEMPTS = 8;

/**
 * A caller that gave up (deadline passed, call cancelled) has recorded the order as UNKNOWN and
 * will ask later; an order not yet written is then not written at all, so a request cannot land
 * long after the merchant stopped waiting for it.
 */
function abandonedByCaller(signal: AbortSignal): void {
  if (signal.aborted) throw abandoned();
}

/** A batch of withdrawals that one account's balance does not cover as a whole. */
class BatchNotCovered extends Error {}

function abandoned(): ConnectError {
  return new ConnectError("the caller stopped waiting before the order was recorded", Code.DeadlineExceeded);
}

export function validatePay(req: PayRequest): void {
  requireBusinessTime("request_time", req.requestTime);
  requireRequestId("request_id", req.requestId, req.requestTime);
  requireSalerId("saler_id", req.salerId);
  requireAmount("total_fee", req.totalFee);
}

export function validateWithdraw(req: WithdrawRequest): void {
  requireBusinessTime("request_time", req.requestTime);
  requireRequestId("request_id", req.requestId, req.requestTime);
  requireSalerId("saler_id", req.salerId);
  requireAmount("withdraw_money", req.withdrawMoney);
}

export function validateRefund(req: RefundRequest): void {
  requireBusinessTime("request_time", req.requestTime);
  requireRequestId("request_id", req.requestId, req.requestTime);
  requireSalerId("saler_id", req.salerId);
  requireOrderId("payment_response_id", req.paymentResponseId);
  requireAmount("refund_fee", req.refundFee);
}

export function createPaymentService(deps: PaymentDeps): ServiceImpl<typeof PaymentService> {
  const { db, buffer, settlement, clock, logger } = deps;
  const ids = new OrderIdSequence();
  const knownAccounts = new Set<string>();
  const ceiling = new CeilingGuard(db.knex);
  const maxAheadSeconds = deps.requestTimeMaxAheadSeconds ?? 300;
  /** A request_time from before the system's floor or from the future (beyond clock skew) is refused. */
  const requireCurrentRequestTime = (requestTime: string) =>
    requireRequestTimeInRange("request_time", requestTime, clock.secondsAhead(maxAheadSeconds));

  const responseId = (time: string): string => {
    const id = ids.idFor(time);
    if (id === undefined) throw new ConnectError("too many orders this second; retry", Code.ResourceExhausted);
    return id;
  };

  /** After the order committed: a failure here is logged, never the caller's answer. */
  async function rememberAccount(salerId: string, now: string): Promise<void> {
    if (knownAccounts.has(salerId)) return;
    try {
      await ensureAccount(db.knex, salerId, now);
    } catch (err) {
      logger.warn({ err, salerId }, "account not created yet; the first settlement of its credit creates it");
      return;
    }
    if (knownAccounts.size > 100_000) knownAccounts.clear();
    knownAccounts.add(salerId);
  }

  /**
   * Same request_id again: the stored answer if the body is the same, else a refusal. A closed
   * request_id answers FAIL whatever the body: nothing was ever recorded under it.
   */
  function replayPayment(existing: PaymentOrder, req: PayRequest): PayResponse {
    if (existing.responseCode === CLOSED) {
      return payResponse({ ...existing, requestTime: req.requestTime, salerId: req.salerId, totalFee: req.totalFee, responseCode: "FAIL", responseMsg: MSG_PAYMENT_CLOSED });
    }
    if (existing.requestTime !== req.requestTime || existing.salerId !== req.salerId || existing.totalFee !== req.totalFee) {
      throw conflict(req.requestId);
    }
    return payResponse(existing);
  }

  function replayWithdrawal(existing: WithdrawalOrder, req: WithdrawRequest): WithdrawResponse {
    if (existing.responseCode === CLOSED) {
      return withdrawResponse({ ...existing, requestTime: req.requestTime, salerId: req.salerId, withdrawMoney: req.withdrawMoney, responseCode: "FAIL", responseMsg: MSG_WITHDRAWAL_CLOSED });
    }
    if (existing.requestTime !== req.requestTime || existing.salerId !== req.salerId || existing.withdrawMoney !== req.withdrawMoney) {
      throw conflict(req.requestId);
    }
    return withdrawResponse(existing);
  }

  function replayRefund(existing: RefundOrder, req: RefundRequest): RefundResponse {
    if (existing.responseCode === CLOSED) {
      return refundResponse({
        ...existing,
        requestTime: req.requestTime,
        salerId: req.salerId,
        paymentResponseId: req.paymentResponseId,
        refundFee: req.refundFee,
        responseCode: "FAIL",
        responseMsg: MSG_REFUND_CLOSED,
      });
    }
    if (
      existing.requestTime !== req.requestTime ||
      existing.salerId !== req.salerId ||
      existing.paymentResponseId !== req.paymentResponseId ||
      existing.refundFee !== req.refundFee
    ) {
      throw conflict(req.requestId);
    }
    return refundResponse(existing);
  }

  /** What a request_id already holds, for CloseOrder: the close, the order, or nothing yet. */
  async function closeOutcome(type: OrderType, requestId: string): Promise<CloseOrderResponse | undefined> {
    if (type === OrderType.REFUND) {
      const r = await findRefund(db.knex, requestId);
      if (!r) return undefined;
      return create(CloseOrderResponseSchema, r.responseCode === CLOSED ? { closed: true, closeTime: r.responseTime } : { order: { case: "refund", value: refundResponse(r) } });
    }
    if (type === OrderType.PAYMENT) {
      const p = await findPayment(db.knex, requestId);
      if (!p) return undefined;
      return create(CloseOrderResponseSchema, p.responseCode === CLOSED ? { closed: true, closeTime: p.responseTime } : { order: { case: "payment", value: payResponse(p) } });
    }
    const w = await findWithdrawal(db.knex, requestId);
    if (!w) return undefined;
    return create(CloseOrderResponseSchema, w.responseCode === CLOSED ? { closed: true, closeTime: w.responseTime } : { order: { case: "withdrawal", value: withdrawResponse(w) } });
  }

  /**
   * Orders of concurrent Pay calls are inserted together. A batch that meets a duplicate
   * request_id or response_id, or lock contention that outlasts its retries (a deadlock with
   * another instance inserting the same request_ids), is not recorded at all (one statement),
   * and is then inserted order by order, each retried on contention, so that each call learns
   * its own outcome and none fails for another's; an order whose caller gave up while it waited
   * is left out, and one that would take its account past the balance ceiling is refused
   * (FAILED_PRECONDITION naming total_fee) and not written. The answer per order: undefined when
   * recorded, else its error.
   */
  const paymentWrites = new WriteBatcher<{ order: PaymentOrder; signal: AbortSignal }, unknown>(
    async (items) => {
      // The balance ceiling, checked once per batch (ceiling.ts); a refused order's answer is its refusal.
      const admission = await ceiling.admit(items.filter((i) => !i.signal.aborted).map((i) => i.order));
      const live = admission.admitted;
      const one = (o: PaymentOrder) => insertPayment(db.knex, o).then(() => undefined, (err: unknown) => err);
      const outcomes: Map<PaymentOrder, unknown> = new Map(admission.refused);
      try {
        if (live.length <= 1) {
          for (const o of live) outcomes.set(o, await one(o));
        } else {
          try {
            await insertPayments(db.knex, live);
            for (const o of live) outcomes.set(o, undefined);
          } catch (err) {
            if (!isDuplicateKeyError(err) && !isRetryableTransactionError(err)) throw err;
            for (const [o, r] of await Promise.all(live.map(async (o) => [o, await one(o)] as const))) outcomes.set(o, r);
          }
        }
      } finally {
        admission.release();
      }
      return items.map((i) => (outcomes.has(i.order) ? outcomes.get(i.order) : abandoned()));
    },
    { maxInFlight: 4, maxBatch: 500 },
  );
  /**
   * One withdrawal in a transaction of its own: the order first and the debit last, so the
   * account's row lock is held only from the debit to the commit.
   */
  async function withdrawAlone(o: WithdrawalOrder): Promise<WithdrawalOrder> {
    return inTransaction(db, async (trx) => {
      const order = { ...o };
      await insertWithdrawal(trx, order);
      if (!(await debit(trx, order.salerId, order.withdrawMoney, order.responseTime))) {
        order.responseCode = "FAIL";
        // An account that does not exist has nothing to withdraw: the same answer, and none is created.
        order.responseMsg = MSG_INSUFFICIENT_BALANCE;
        await markWithdrawalFailed(trx, order.requestId, order.responseMsg);
      }
      return order;
    });
  }

  /**
   * Withdrawals of concurrent calls share a transaction: their orders in one INSERT, then one
   * conditional debit of each account's total, accounts in saler_id order. When every account
   * covers its total they all succeed together, one row lock per account held from its debit to
   * the commit. When one does not, an order is a duplicate, or contention outlasts the
   * transaction's retries, it rolls back and each withdrawal runs alone (retried on contention
   * too) and gets the answer it would have got alone. Either way every
   * debit is one conditional UPDATE, so no balance goes below zero even for an instant.
   */
  const withdrawalWrites = new WriteBatcher<{ order: WithdrawalOrder; signal: AbortSignal }, WithdrawalOrder | { failed: unknown }>(
    async (items) => {
      const live = items.filter((i) => !i.signal.aborted).map((i) => i.order);
      const alone = () =>
        Promise.all(live.map((o) => withdrawAlone(o).then((r): WithdrawalOrder | { failed: unknown } => r, (failed: unknown) => ({ failed }))));
      let outcomes: (WithdrawalOrder | { failed: unknown })[];
      if (live.length <= 1) outcomes = await alone();
      else {
        try {
          await inTransaction(db, async (trx) => {
            await insertWithdrawals(trx, live);
            const totals = new Map<string, bigint>();
            for (const o of live) totals.set(o.salerId, (totals.get(o.salerId) ?? 0n) + o.withdrawMoney);
            const now = live.reduce((latest, o) => (o.responseTime > latest ? o.responseTime : latest), "");
            for (const salerId of [...totals.keys()].sort()) {
              if (!(await debit(trx, salerId, totals.get(salerId)!, now))) throw new BatchNotCovered();
            }
          });
          outcomes = live;
        } catch (err) {
          if (!(err instanceof BatchNotCovered) && !isDuplicateKeyError(err) && !isRetryableTransactionError(err)) throw err;
          outcomes = await alone();
        }
      }
      const byOrder = new Map(live.map((o, i) => [o, outcomes[i]!]));
      return items.map((i) => byOrder.get(i.order) ?? { failed: abandoned() });
    },
    { maxInFlight: 4, maxBatch: 500 },
  );

  /** Credits of recorded orders reach the buffer together, one round trip per batch. */
  const creditWrites = new WriteBatcher<Credit, void>(
    async (credits) => {
      await buffer.addAll(credits);
      return credits.map(() => undefined);
    },
    { maxInFlight: 2, maxBatch: 1000 },
  );

  return {
    async pay(req, ctx) {
      validatePay(req);
      requireCurrentRequestTime(req.requestTime);
      for (let attempt = 1; ; attempt++) {
        const now = clock.current();
        const order: PaymentOrder = {
          requestId: req.requestId,
          requestTime: req.requestTime,
          salerId: req.salerId,
          totalFee: req.totalFee,
          responseId: responseId(now),
          responseTime: now,
          responseCode: "SUCCESS",
          responseMsg: MSG_OK,
        };
        abandonedByCaller(ctx.signal);
        // A request_id seen before fails as a duplicate here, and the stored answer is replayed:
        // no look-up first, since nearly every request is new.
        const failed = await paymentWrites.submit({ order, signal: ctx.signal });
        if (failed !== undefined) {
          if (!isDuplicateKeyError(failed)) throw failed;
          const existing = await findPayment(db.knex, req.requestId);
          if (existing) return replayPayment(existing, req);
          if (attempt >= ID_ATTEMPTS) throw failed;
          continue; // the response_id clashed with another instance's: take another
        }
        // Committed: from here the credit is owed whatever happens to the buffer.
        deps.onRecorded?.("PAYMENT", order.responseCode);
        try {
          await creditWrites.submit({ salerId: order.salerId, amount: order.totalFee });
          deps.bufferOutage?.succeeded();
        } catch (err) {
          if (deps.bufferOutage) deps.bufferOutage.failed(err, { requestId: order.requestId });
          else logger.warn({ err, requestId: order.requestId }, "credit buffer unavailable; settlement will sweep the orders table");
          settlement.requestSweep();
        }
        // Only once this request won its request_id: a refused body must not leave an account
        // behind. Should this fail, the first settlement of the credit creates the account.
        await rememberAccount(req.salerId, now);
        return payResponse(order);
      }
    },

    async withdraw(req, ctx) {
      validateWithdraw(req);
      requireCurrentRequestTime(req.requestTime);
      for (let attempt = 1; ; attempt++) {
        const now = clock.current();
        const order: WithdrawalOrder = {
          requestId: req.requestId,
          requestTime: req.requestTime,
          salerId: req.salerId,
          withdrawMoney: req.withdrawMoney,
          responseId: responseId(now),
          responseTime: now,
          responseCode: "SUCCESS",
          responseMsg: MSG_OK,
        };
        abandonedByCaller(ctx.signal);
        // A request_id seen before fails as a duplicate (its transaction, debit included, rolls
        // back) and the stored answer is replayed.
        const outcome = await withdrawalWrites.submit({ order, signal: ctx.signal });
        if ("failed" in outcome) {
          if (!isDuplicateKeyError(outcome.failed)) throw outcome.failed;
          const existing = await findWithdrawal(db.knex, req.requestId);
          if (existing) return replayWithdrawal(existing, req);
          if (attempt >= ID_ATTEMPTS) throw outcome.failed;
          continue; // the response_id clashed with another instance's: take another
        }
        deps.onRecorded?.("WITHDRAWAL", outcome.responseCode);
        return withdrawResponse(outcome);
      }
    },

    async refund(req, ctx) {
      validateRefund(req);
      requireCurrentRequestTime(req.requestTime);
      for (let attempt = 1; ; attempt++) {
        const now = clock.current();
        const order: RefundOrder = {
          requestId: req.requestId,
          requestTime: req.requestTime,
          salerId: req.salerId,
          paymentResponseId: req.paymentResponseId,
          refundFee: req.refundFee,
          responseId: responseId(now),
          responseTime: now,
          responseCode: "SUCCESS",
          responseMsg: MSG_OK,
        };
        abandonedByCaller(ctx.signal);
        try {
          // A request_id seen before fails as a duplicate (its transaction rolls back) and the
          // stored answer is replayed.
          const recorded = await inTransaction(db, (trx) => recordRefund(trx, order));
          deps.onRecorded?.("REFUND", recorded.responseCode);
          return refundResponse(recorded);
        } catch (err) {
          if (!isDuplicateKeyError(err)) throw err;
          const existing = await findRefund(db.knex, req.requestId);
          if (existing) return replayRefund(existing, req);
          if (attempt >= ID_ATTEMPTS) throw err;
        }
      }
    },

    async queryOrder(req) {
      requireOrderId("request_id", req.requestId);
      let closed: { closeTime: string; orderType: OrderType } | undefined;
      if (req.orderType === OrderType.UNSPECIFIED || req.orderType === OrderType.PAYMENT) {
        const p = await findPayment(db.knex, req.requestId);
        if (p?.responseCode === CLOSED) closed = { closeTime: p.responseTime, orderType: OrderType.PAYMENT };
        else if (p) return { found: true, orderType: OrderType.PAYMENT, order: { case: "payment", value: payResponse(p) } };
      }
      if (req.orderType === OrderType.UNSPECIFIED || req.orderType === OrderType.WITHDRAWAL) {
        const w = await findWithdrawal(db.knex, req.requestId);
        if (w?.responseCode === CLOSED) closed ??= { closeTime: w.responseTime, orderType: OrderType.WITHDRAWAL };
        else if (w) return { found: true, orderType: OrderType.WITHDRAWAL, order: { case: "withdrawal", value: withdrawResponse(w) } };
      }
      if (req.orderType === OrderType.UNSPECIFIED || req.orderType === OrderType.REFUND) {
        const r = await findRefund(db.knex, req.requestId);
        if (r?.responseCode === CLOSED) closed ??= { closeTime: r.responseTime, orderType: OrderType.REFUND };
        else if (r) return { found: true, orderType: OrderType.REFUND, order: { case: "refund", value: refundResponse(r) } };
      }
      return closed ? { found: false, closed: true, ...closed } : { found: false };
    },

    async closeOrder(req) {
      requireOrderId("request_id", req.requestId);
      if (req.orderType !== OrderType.PAYMENT && req.orderType !== OrderType.WITHDRAWAL && req.orderType !== OrderType.REFUND) {
        throw invalidField("order_type", "must be ORDER_TYPE_PAYMENT, ORDER_TYPE_WITHDRAWAL or ORDER_TYPE_REFUND");
      }
      for (let attempt = 1; ; attempt++) {
        const now = clock.current();
        try {
          if (req.orderType === OrderType.REFUND) await insertClosedRefund(db.knex, req.requestId, responseId(now), now);
          else await insertClosed(db.knex, req.orderType === OrderType.PAYMENT ? "payment_orders" : "withdrawal_orders", req.requestId, responseId(now), now);
          logger.info({ requestId: req.requestId, orderType: OrderType[req.orderType] }, "request closed");
          return { closed: true, closeTime: now };
        } catch (err) {
          if (!isDuplicateKeyError(err)) throw err;
          // Either the request_id is taken (an order, or an earlier close) or the response_id clashed.
          const answer = await closeOutcome(req.orderType, req.requestId);
          if (answer) return answer;
          if (attempt >= ID_ATTEMPTS) throw err;
        }
      }
    },

    async getBalance(req) {
      requireSalerId("saler_id", req.salerId);
      const [view] = await accountViews(db.knex, { salerId: req.salerId, limit: 1 });
      if (!view) throw new ConnectError(`saler_id: account ${req.salerId} does not exist`, Code.NotFound);
      return { account: view };
    },

    async listAccounts(req) {
      const limit = pageSize("page_size", req.pageSize, 100, 1000);
      if (req.pageToken !== "") requireSalerId("page_token", req.pageToken);
      const views = await accountViews(db.knex, { limit: limit + 1, ...(req.pageToken ? { after: req.pageToken } : {}) });
      const page = views.slice(0, limit);
      return {
        accounts: page,
        nextPageToken: views.length > limit ? page[page.length - 1]!.salerId : "",
      };
    },

    async settle(req) {
      const r = await settlement.run({ fullSweep: req.fullSweep });
      return {
        ran: r.ran,
        accountsSettled: r.accountsSettled,
        creditsApplied: r.creditsApplied,
        amountSettled: r.amountSettled,
        swept: r.swept,
        durationMs: BigInt(r.durationMs),
      };
    },

    async *exportOrders(req, ctx) {
      if (req.orderType === OrderType.UNSPECIFIED) throw invalidField("order_type", "must be ORDER_TYPE_PAYMENT, ORDER_TYPE_WITHDRAWAL or ORDER_TYPE_REFUND");
      optionalBusinessTime("cutoff_time", req.cutoffTime);
      const key = req.key === OrderKey.REQUEST_ID ? "request_id" : "response_id";
      for await (const orders of exportOrders(db.knex, req.orderType, key, req.cutoffTime, deps.exportBatchSize)) {
        if (ctx.signal.aborted) return;
        yield { orders };
      }
    },

    async *exportBalances(req, ctx) {
      optionalBusinessTime("cutoff_time", req.cutoffTime);
      for await (const balances of exportBalances(db, req.cutoffTime, deps.exportBatchSize)) {
        if (ctx.signal.aborted) return;
        yield { balances };
      }
    },
  };
}
