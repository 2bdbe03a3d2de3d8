/**
 * Payments (支付): a merchant's customer pays total_fee into the merchant's account. The order is
 * committed first and its credit is owed from then on; the credit reaches the balance through
 * settlement (settlement.ts), the credit buffer (creditBuffer.ts) only saying where to look.
 */
import type { CallStop } from "../shared/rpc/callPolicy.js";
import { create } from "@bufbuild/protobuf";
import { PayResponseSchema, type PayRequest, type PayResponse } from "../../gen/payment/v1/payment_pb.js";
import type { Database } from "../shared/storage/database.js";
import { isDuplicateKeyError, isRetryableTransactionError } from "../shared/errors.js";
import type { Logger } from "../shared/observability/logger.js";
import type { OutageLog } from "../shared/observability/readiness.js";
import { requireAmount, requireBusinessTime, requireRequestId, requireSalerId } from "../shared/orders/validation.js";
import { WriteBatcher } from "../shared/storage/writeBatcher.js";
import { KnownAccounts } from "./accounts.js";
import { CeilingGuard } from "./ceiling.js";
import type { Credit, CreditBuffer } from "./creditBuffer.js";
import { CLOSED, findPayment, insertPayment, insertPayments, type PaymentOrder } from "./orders.js";
import { abandoned, conflict, MSG_OK, recordOnce, type OrderStamps } from "./recordOnce.js";
import type { Settlement } from "./settlement.js";

export const MSG_PAYMENT_CLOSED = "订单已关闭，支付失败";

export function validatePay(req: PayRequest): void {
  requireBusinessTime("request_time", req.requestTime);
  requireRequestId("request_id", req.requestId, req.requestTime);
  requireSalerId("saler_id", req.salerId);
  requireAmount("total_fee", req.totalFee);
}

export function payResponse(o: PaymentOrder): PayResponse {
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

export interface PaymentsDeps {
  db: Database;
  buffer: CreditBuffer;
  settlement: Settlement;
  logger: Logger;
  stamps: OrderStamps;
  /** Logs the credit buffer's write failures once per outage (else one warning per payment). */
  bufferOutage?: OutageLog | undefined;
  /** Told of every payment recorded (not of replayed answers). */
  onRecorded?: ((responseCode: string) => void) | undefined;
}

export class Payments {
  private readonly accounts: KnownAccounts;
  private readonly ceiling: CeilingGuard;

  constructor(private readonly deps: PaymentsDeps) {
    this.accounts = new KnownAccounts(deps.db, deps.logger);
    this.ceiling = new CeilingGuard(deps.db.knex);
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
  private readonly writes = new WriteBatcher<{ order: PaymentOrder; signal: CallStop }, unknown>(
    async (items) => {
      const db = this.deps.db;
      // The balance ceiling, checked once per batch (ceiling.ts); a refused order's answer is its refusal.
      const admission = await this.ceiling.admit(items.filter((i) => !i.signal.aborted).map((i) => i.order));
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
    // At most 32 a batch, as the merchant's (orderSender.ts): smaller batches overlap the
    // database with the serving of calls.
    { maxInFlight: 4, maxBatch: 32 },
  );

  /** Credits of recorded orders reach the buffer together, one round trip per batch. */
  private readonly creditWrites = new WriteBatcher<Credit, void>(
    async (credits) => {
      await this.deps.buffer.addAll(credits);
      return credits.map(() => undefined);
    },
    { maxInFlight: 2, maxBatch: 1000 },
  );

  /** Pay: validated by the caller (validatePay and the request_time range). */
  async pay(req: PayRequest, signal: CallStop): Promise<PayResponse> {
    const { db, logger, settlement } = this.deps;
    const outcome = await recordOnce(this.deps.stamps, {
      signal,
      order: ({ now, responseId }): PaymentOrder => ({
        requestId: req.requestId,
        requestTime: req.requestTime,
        salerId: req.salerId,
        totalFee: req.totalFee,
        responseId,
        responseTime: now,
        responseCode: "SUCCESS",
        responseMsg: MSG_OK,
      }),
      write: async (order) => {
        const failed = await this.writes.submit({ order, signal });
        if (failed !== undefined) throw failed;
        return order;
      },
      replay: async () => {
        const existing = await findPayment(db.knex, req.requestId);
        return existing && replayPayment(existing, req);
      },
    });
    if ("replayed" in outcome) return outcome.replayed;
    const order = outcome.recorded;
    // Committed: from here the credit is owed whatever happens to the buffer.
    this.deps.onRecorded?.(order.responseCode);
    try {
      await this.creditWrites.submit({ salerId: order.salerId, amount: order.totalFee });
      this.deps.bufferOutage?.succeeded();
    } catch (err) {
      if (this.deps.bufferOutage) this.deps.bufferOutage.failed(err, { requestId: order.requestId });
      else logger.warn({ err, requestId: order.requestId }, "credit buffer unavailable; settlement will sweep the orders table");
      settlement.requestSweep();
    }
    // Only once this request won its request_id: a refused body must not leave an account
    // behind. Should this fail, the first settlement of the credit creates the account.
    await this.accounts.remember(req.salerId, order.responseTime);
    return payResponse(order);
  }
}
