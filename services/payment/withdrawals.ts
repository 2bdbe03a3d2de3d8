/**
 * Withdrawals (提款): money leaves an account's settled balance. Invariant: a balance never goes
 * below zero, not even for an instant; every debit is one conditional UPDATE (accounts.ts `debit`)
 * in the same transaction as the withdrawal order, so an order recorded SUCCESS has moved its
 * money and one recorded FAIL has moved none.
 */
import type { CallStop } from "../shared/rpc/callPolicy.js";
import { create } from "@bufbuild/protobuf";
import { WithdrawResponseSchema, type WithdrawRequest, type WithdrawResponse } from "../../gen/payment/v1/payment_pb.js";
import { inTransaction, type Database } from "../shared/storage/database.js";
import { requireAmount, requireBusinessTime, requireRequestId, requireSalerId } from "../shared/orders/validation.js";
import { BatchDoesNotFit, orderBatches } from "./orderBatches.js";
import { debit } from "./accounts.js";
import { CLOSED, findWithdrawal, insertWithdrawal, insertWithdrawals, markWithdrawalFailed, type WithdrawalOrder } from "./orders.js";
import { conflict, MSG_OK, recordOnce, type OrderStamps } from "./recordOnce.js";

/** The seed's answer to a withdrawal the balance does not cover, an account that does not exist included. */
export const MSG_INSUFFICIENT_BALANCE = "账户余额不足，提款失败";
export const MSG_WITHDRAWAL_CLOSED = "订单已关闭，提款失败";

export function validateWithdraw(req: WithdrawRequest): void {
  requireBusinessTime("request_time", req.requestTime);
  requireRequestId("request_id", req.requestId, req.requestTime);
  requireSalerId("saler_id", req.salerId);
  requireAmount("withdraw_money", req.withdrawMoney);
}

export function withdrawResponse(o: WithdrawalOrder): WithdrawResponse {
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

/** Same request_id again: the stored answer if the body is the same; a closed one answers FAIL. */
function replayWithdrawal(existing: WithdrawalOrder, req: WithdrawRequest): WithdrawResponse {
  if (existing.responseCode === CLOSED) {
    return withdrawResponse({ ...existing, requestTime: req.requestTime, salerId: req.salerId, withdrawMoney: req.withdrawMoney, responseCode: "FAIL", responseMsg: MSG_WITHDRAWAL_CLOSED });
  }
  if (existing.requestTime !== req.requestTime || existing.salerId !== req.salerId || existing.withdrawMoney !== req.withdrawMoney) {
    throw conflict(req.requestId);
  }
  return withdrawResponse(existing);
}

export class Withdrawals {
  constructor(
    private readonly db: Database,
    private readonly stamps: OrderStamps,
    /** Told of every withdrawal recorded (not of replayed answers). */
    private readonly onRecorded?: ((responseCode: string) => void) | undefined,
  ) {
    this.write = orderBatches<WithdrawalOrder>(this.db, {
      together: async (trx, orders) => {
        await insertWithdrawals(trx, orders);
        const totals = new Map<string, bigint>();
        for (const o of orders) totals.set(o.salerId, (totals.get(o.salerId) ?? 0n) + o.withdrawMoney);
        const now = orders.reduce((latest, o) => (o.responseTime > latest ? o.responseTime : latest), "");
        for (const salerId of [...totals.keys()].sort()) {
          // One account's balance does not cover its withdrawals in the batch as a whole.
          if (!(await debit(trx, salerId, totals.get(salerId)!, now))) throw new BatchDoesNotFit();
        }
      },
      alone: (o) => this.withdrawAlone(o),
    });
  }

  /**
   * One withdrawal in a transaction of its own: the order first and the debit last, so the
   * account's row lock is held only from the debit to the commit.
   */
  private async withdrawAlone(o: WithdrawalOrder): Promise<WithdrawalOrder> {
    return inTransaction(this.db, async (trx) => {
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
  private readonly write: (order: WithdrawalOrder, signal: CallStop) => Promise<WithdrawalOrder>;

  /** Withdraw: validated by the caller (validateWithdraw and the request_time range). */
  async withdraw(req: WithdrawRequest, signal: CallStop): Promise<WithdrawResponse> {
    const outcome = await recordOnce(this.stamps, {
      signal,
      order: ({ now, responseId }): WithdrawalOrder => ({
        requestId: req.requestId,
        requestTime: req.requestTime,
        salerId: req.salerId,
        withdrawMoney: req.withdrawMoney,
        responseId,
        responseTime: now,
        responseCode: "SUCCESS",
        responseMsg: MSG_OK,
      }),
      // A request_id seen before fails as a duplicate (its transaction, debit included, rolls back).
      write: (order) => this.write(order, signal),
      replay: async () => {
        const existing = await findWithdrawal(this.db.knex, req.requestId);
        return existing && replayWithdrawal(existing, req);
      },
    });
    if ("replayed" in outcome) return outcome.replayed;
    this.onRecorded?.(outcome.recorded.responseCode);
    return withdrawResponse(outcome.recorded);
  }
}
