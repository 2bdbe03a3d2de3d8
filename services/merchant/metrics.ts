/**
 * The merchant system's own figures, next to the call metrics of ServiceMetrics: its orders by
 * type and state, how long the oldest INIT and UNKNOWN orders have waited, resolution runs and
 * simulations. The order figures are read from the database when /metrics is scraped.
 */
import { Counter, Gauge, Histogram } from "prom-client";
import type { Database } from "../shared/storage/database.js";
import { toCount } from "../shared/storage/database.js";
import { businessSecondsBetween, type ServiceMetrics } from "../shared/observability/metrics.js";
import type { BusinessClock } from "../shared/orders/time.js";
import type { ResolveResult } from "./orderSender.js";
import { ORDER_STATES } from "./orders.js";

export class MerchantMetrics {
  private readonly resolveRuns;
  private readonly resolveOrders;
  private readonly resolveDuration;
  private readonly simulations;
  private readonly simulatedOrders;

  constructor(
    readonly metrics: ServiceMetrics,
    db: Database,
    clock: BusinessClock,
  ) {
    const registers = [metrics.registry];
    new Gauge({
      name: "merchant_orders",
      help: "The merchant's orders by order type and state.",
      labelNames: ["order_type", "state"],
      registers,
      collect: async function () {
        try {
          const rows = (await db.knex("merchant_orders").select("order_type", "state").count({ n: "*" }).groupBy("order_type", "state")) as {
            order_type: string;
            state: string;
            n: unknown;
          }[];
          this.reset();
          for (const type of ["PAYMENT", "WITHDRAWAL"]) for (const state of ORDER_STATES) this.set({ order_type: type, state }, 0);
          for (const r of rows) this.set({ order_type: r.order_type, state: r.state }, toCount(r.n));
        } catch {
          this.reset(); // no sample while the database does not answer
        }
      },
    });
    new Gauge({
      name: "merchant_oldest_open_order_age_seconds",
      help: "Age (from request_time) of the oldest order still INIT or UNKNOWN; 0 when there is none.",
      labelNames: ["state"],
      registers,
      collect: async function () {
        try {
          const now = clock.current();
          for (const state of ["INIT", "UNKNOWN"]) {
            const row = (await db.knex("merchant_orders").where({ state }).min({ oldest: "request_time" }).first()) as { oldest: string | null } | undefined;
            this.set({ state }, row?.oldest ? Math.max(0, businessSecondsBetween(row.oldest, now)) : 0);
          }
        } catch {
          this.reset();
        }
      },
    });
    this.resolveRuns = new Counter({ name: "merchant_resolve_runs_total", help: "Resolution runs of open orders, by outcome (ok, failed).", labelNames: ["outcome"], registers });
    this.resolveOrders = new Counter({
      name: "merchant_resolve_orders_total",
      help: "Open orders examined by resolution runs, by result (succeeded, failed, still_unknown).",
      labelNames: ["result"],
      registers,
    });
    this.resolveDuration = new Histogram({
      name: "merchant_resolve_duration_seconds",
      help: "Duration of resolution runs.",
      buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300],
      registers,
    });
    this.simulations = new Counter({ name: "merchant_simulations_total", help: "Simulations run, by order type.", labelNames: ["order_type"], registers });
    this.simulatedOrders = new Counter({
      name: "merchant_simulated_orders_total",
      help: "Orders sent by simulations, by order type and result (succeeded, failed, unknown).",
      labelNames: ["order_type", "result"],
      registers,
    });
    metrics.watchDatabasePool(db.knex);
  }

  resolveFinished(result: ResolveResult | undefined, durationMs: number): void {
    this.resolveRuns.inc({ outcome: result ? "ok" : "failed" });
    this.resolveDuration.observe(durationMs / 1000);
    if (!result) return;
    this.resolveOrders.inc({ result: "succeeded" }, result.succeeded);
    this.resolveOrders.inc({ result: "failed" }, result.failed);
    this.resolveOrders.inc({ result: "still_unknown" }, result.stillUnknown);
  }

  simulationFinished(orderType: string, report: { succeeded: number; failed: number; unknown: number }): void {
    this.simulations.inc({ order_type: orderType });
    this.simulatedOrders.inc({ order_type: orderType, result: "succeeded" }, report.succeeded);
    this.simulatedOrders.inc({ order_type: orderType, result: "failed" }, report.failed);
    this.simulatedOrders.inc({ order_type: orderType, result: "unknown" }, report.unknown);
  }
}
