/**
 * The payment system's own figures, next to the call metrics of ServiceMetrics: orders recorded,
 * the credit buffer's content, settlement runs and the time from a payment's acknowledgement to
 * its credit in the balance.
 */
import { Counter, Gauge, Histogram } from "prom-client";
import type { Database } from "../shared/storage/database.js";
import { toCount } from "../shared/storage/database.js";
import { businessSecondsBetween, type ServiceMetrics } from "../shared/observability/metrics.js";
import type { CreditBuffer } from "./creditBuffer.js";
import type { SettlementObserver } from "./settlement.js";

/** Seconds from a payment's answer to the settlement that credited it. */
const LAG_BUCKETS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600, 21_600, 86_400];

export class PaymentMetrics {
  private readonly ordersRecorded;
  private readonly settlementRuns;
  private readonly settlementDuration;
  private readonly creditsApplied;
  private readonly accountsSettled;
  private readonly amountSettled;
  private readonly settlementLag;
  private readonly redisErrors;

  constructor(
    readonly metrics: ServiceMetrics,
    private readonly db: Database,
    buffer: CreditBuffer,
  ) {
    const registers = [metrics.registry];
    this.ordersRecorded = new Counter({
      name: "payment_orders_recorded_total",
      help: "Orders recorded (replays of a stored answer not included), by order type and response code.",
      labelNames: ["order_type", "outcome"],
      registers,
    });
    this.settlementRuns = new Counter({
      name: "payment_settlement_runs_total",
      help: "Settlement runs by outcome: settled (credited something), idle (nothing due), skipped (another settler held the lease), failed.",
      labelNames: ["outcome"],
      registers,
    });
    this.settlementDuration = new Histogram({
      name: "payment_settlement_duration_seconds",
      help: "Duration of settlement runs that held the lease.",
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
      registers,
    });
    this.creditsApplied = new Counter({ name: "payment_settlement_credits_applied_total", help: "Payments credited to balances.", registers });
    this.accountsSettled = new Counter({ name: "payment_settlement_accounts_total", help: "Account credits applied (one per account per chunk).", registers });
    this.amountSettled = new Counter({ name: "payment_settlement_amount_fen_total", help: "Fen credited to balances.", registers });
    this.settlementLag = new Histogram({
      name: "payment_settlement_lag_seconds",
      help: "Seconds from a payment's acknowledgement (response_time) to the commit that credited it to the balance.",
      buckets: LAG_BUCKETS,
      registers,
    });
    this.redisErrors = new Counter({ name: "payment_redis_errors_total", help: "Errors of the credit buffer's Redis connection and commands.", registers });
    new Gauge({
      name: "payment_credit_buffer_pending_accounts",
      help: "Accounts the credit buffer holds as due for settlement or being settled.",
      registers,
      collect: async function () {
        try {
          this.set((await buffer.pending()).accounts);
        } catch {
          this.reset(); // no sample while the buffer does not answer
        }
      },
    });
    new Gauge({
      name: "payment_credit_buffer_pending_fen",
      help: "Fen the credit buffer holds as not yet settled.",
      registers,
      collect: async function () {
        try {
          this.set(Number((await buffer.pending()).fen));
        } catch {
          this.reset();
        }
      },
    });
    metrics.watchDatabasePool(db.knex);
  }

  orderRecorded(orderType: "PAYMENT" | "WITHDRAWAL" | "REFUND", responseCode: string): void {
    this.ordersRecorded.inc({ order_type: orderType, outcome: responseCode });
  }

  redisError(): void {
    this.redisErrors.inc();
  }

  readonly settlement: SettlementObserver = {
    finished: (result, err, durationMs) => {
      if (!result) {
        this.settlementRuns.inc({ outcome: "failed" });
        this.settlementDuration.observe(durationMs / 1000);
        return;
      }
      if (!result.ran) {
        this.settlementRuns.inc({ outcome: "skipped" });
        return;
      }
      this.settlementRuns.inc({ outcome: result.accountsSettled > 0 ? "settled" : "idle" });
      this.settlementDuration.observe(durationMs / 1000);
      this.creditsApplied.inc(Number(result.creditsApplied));
      this.accountsSettled.inc(result.accountsSettled);
      this.amountSettled.inc(Number(result.amountSettled));
      void err;
    },
    committed: async (settlementId, finishedTime) => {
      // One row per distinct acknowledgement second of the chunk, not one per payment.
      try {
        const rows = (await this.db
          .knex("payment_orders")
          .select("response_time")
          .count({ n: "*" })
          .where({ settlement_id: settlementId as unknown as number })
          .groupBy("response_time")) as { response_time: string; n: unknown }[];
        for (const r of rows) {
          const lag = Math.max(0, businessSecondsBetween(r.response_time, finishedTime));
          for (let i = toCount(r.n); i > 0; i--) this.settlementLag.observe(lag);
        }
      } catch {
        // A figure, not the settlement: a failed read leaves the histogram short.
      }
    },
  };
}
