/**
 * PaymentService: maps each call to its capability (payments.ts, withdrawals.ts, refunds.ts,
 * orderOutcomes.ts, accounts.ts, settlement.ts, exports.ts). Transport-free, served by grpc-js
 * and connect-node alike (shared/rpc/server.ts).
 */
import type { ServiceImpl } from "@connectrpc/connect";
import { PaymentService } from "../../gen/payment/v1/payment_pb.js";
import type { Database } from "../shared/storage/database.js";
import { callStop } from "../shared/rpc/grpcServer.js";
import { invalidField } from "../shared/errors.js";
import type { Logger } from "../shared/observability/logger.js";
import type { OutageLog } from "../shared/observability/readiness.js";
import type { BusinessClock } from "../shared/orders/time.js";
import { optionalBusinessTime, requireRequestTimeInRange } from "../shared/orders/validation.js";
import { accountPage, balanceOf } from "./accounts.js";
import type { CreditBuffer } from "./creditBuffer.js";
import { exportBalances } from "./exports.js";
import { OrderOutcomes } from "./orderOutcomes.js";
import { Payments, validatePay } from "./payments.js";
import { OrderStamps } from "./recordOnce.js";
import { Refunds, validateRefund } from "./refunds.js";
import type { Settlement } from "./settlement.js";
import { validateWithdraw, Withdrawals } from "./withdrawals.js";
import { OrderType } from "../../gen/order/v1/order_pb.js";

export interface PaymentDeps {
  db: Database;
  buffer: CreditBuffer;
  settlement: Settlement;
  clock: BusinessClock;
  logger: Logger;
  exportBatchSize: number;
  /** How far ahead of this system's clock a request_time may lie (clock skew); 300 when absent. */
  requestTimeMaxAheadSeconds: number;
  /** Logs the credit buffer's write failures once per outage (else one warning per payment). */
  bufferOutage?: OutageLog | undefined;
  /** Told of every order recorded (not of replayed answers): metrics. */
  onRecorded?: ((orderType: "PAYMENT" | "WITHDRAWAL" | "REFUND", responseCode: string) => void) | undefined;
}

export function createPaymentService(deps: PaymentDeps): ServiceImpl<typeof PaymentService> {
  const { db, settlement, clock, onRecorded } = deps;
  const stamps = new OrderStamps(clock);
  const payments = new Payments({ ...deps, stamps, onRecorded: (code) => onRecorded?.("PAYMENT", code) });
  const withdrawals = new Withdrawals(db, stamps, (code) => onRecorded?.("WITHDRAWAL", code));
  const refunds = new Refunds(db, stamps, (code) => onRecorded?.("REFUND", code));
  const outcomes = new OrderOutcomes(db, stamps, deps.logger);
  const maxAheadSeconds = deps.requestTimeMaxAheadSeconds;
  /** A request_time from before the system's floor or from the future (beyond clock skew) is refused. */
  const requireCurrentRequestTime = (requestTime: string) =>
    requireRequestTimeInRange("request_time", requestTime, clock.secondsAhead(maxAheadSeconds));

  return {
    async pay(req, ctx) {
      validatePay(req);
      requireCurrentRequestTime(req.requestTime);
      return payments.pay(req, callStop(ctx));
    },

    async withdraw(req, ctx) {
      validateWithdraw(req);
      requireCurrentRequestTime(req.requestTime);
      return withdrawals.withdraw(req, callStop(ctx));
    },

    async refund(req, ctx) {
      validateRefund(req);
      requireCurrentRequestTime(req.requestTime);
      return refunds.refund(req, callStop(ctx));
    },

    queryOrder: (req) => outcomes.query(req),

    closeOrder: (req) => outcomes.close(req),

    async getBalance(req) {
      return { account: await balanceOf(db.knex, req.salerId) };
    },

    listAccounts: (req) => accountPage(db.knex, req),

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

    async *exportBalances(req, ctx) {
      optionalBusinessTime("cutoff_time", req.cutoffTime);
      for await (const balances of exportBalances(db, req.cutoffTime, deps.exportBatchSize)) {
        if (ctx.signal.aborted) return;
        yield { balances };
      }
    },
  };
}
