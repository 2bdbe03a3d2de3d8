/**
 * The reconciliation system's own figures, next to the call metrics of ServiceMetrics: runs by
 * kind, source and outcome, their duration, and the rows of each diff type (reconciliation) or
 * account result (audit) they found. Also writes one log line per run with its figures.
 */
import { Counter, Histogram } from "prom-client";
import { Code, ConnectError } from "@connectrpc/connect";
import { RunKind, type Run } from "../../gen/recon/v1/recon_pb.js";
import type { ServiceMetrics } from "../shared/observability/metrics.js";
import type { Logger } from "../shared/observability/logger.js";
import { OrderType } from "../../gen/order/v1/order_pb.js";

export class ReconMetrics {
  private readonly runs;
  private readonly duration;
  private readonly diffRows;
  private readonly auditAccounts;

  constructor(readonly metrics: ServiceMetrics) {
    const registers = [metrics.registry];
    this.runs = new Counter({
      name: "recon_runs_total",
      help: "Runs by kind (reconciliation, audit), source (live, files) and outcome (balanced, unbalanced, failed).",
      labelNames: ["kind", "source", "outcome"],
      registers,
    });
    this.duration = new Histogram({
      name: "recon_run_duration_seconds",
      help: "Duration of runs, by kind and source.",
      labelNames: ["kind", "source"],
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600],
      registers,
    });
    this.diffRows = new Counter({
      name: "recon_diff_rows_total",
      help: "Compared orders found by reconciliation runs, by order type and diff type (F000, F113, F114, F115).",
      labelNames: ["order_type", "diff_type"],
      registers,
    });
    this.auditAccounts = new Counter({
      name: "recon_audit_accounts_total",
      help: "Accounts checked by audit runs, by result (success, fail, merchant_only, payment_only).",
      labelNames: ["result"],
      registers,
    });
  }

  /** Counts and logs a run that ended with `run`, or failed with `err` after `durationMs`. */
  runFinished(logger: Logger, kind: "reconciliation" | "audit", source: "live" | "files", run: Run | undefined, err: unknown, durationMs: number): void {
    if (!run) {
      // A refused request is not a run.
      if (err instanceof ConnectError && err.code === Code.InvalidArgument) return;
      this.runs.inc({ kind, source, outcome: "failed" });
      this.duration.observe({ kind, source }, durationMs / 1000);
      logger.warn({ kind, source, durationMs, err: err instanceof Error ? err.message : String(err) }, "run failed");
      return;
    }
    this.runs.inc({ kind, source, outcome: run.balanced ? "balanced" : "unbalanced" });
    this.duration.observe({ kind, source }, Number(run.durationMs) / 1000);
    const figures: Record<string, unknown> = {};
    if (run.kind === RunKind.RECONCILIATION) {
      for (const d of run.diffs) {
        const orderType = d.orderType === OrderType.WITHDRAWAL ? "WITHDRAWAL" : d.orderType === OrderType.REFUND ? "REFUND" : "PAYMENT";
        const counts = { F000: d.f000Count, F113: d.f113Count, F114: d.f114Count, F115: d.f115Count };
        for (const [diffType, n] of Object.entries(counts)) this.diffRows.inc({ order_type: orderType, diff_type: diffType }, Number(n));
        figures[orderType] = {
          merchantRows: String(d.merchantRows),
          paymentRows: String(d.paymentRows),
          ...Object.fromEntries(Object.entries(counts).map(([k, v]) => [k, String(v)])),
          F113Amount: String(d.f113Amount),
          F114Amount: String(d.f114Amount),
          F115Amount: String(d.f115Amount),
        };
      }
    } else if (run.audit) {
      const a = run.audit;
      const results = { success: a.success, fail: a.fail, merchant_only: a.merchantOnly, payment_only: a.paymentOnly };
      for (const [result, n] of Object.entries(results)) this.auditAccounts.inc({ result }, Number(n));
      Object.assign(figures, { accounts: String(a.accounts), ...Object.fromEntries(Object.entries(results).map(([k, v]) => [k, String(v)])) });
    }
    logger.info(
      { runId: run.runId, kind, source, cutoffTime: run.cutoffTime, balanced: run.balanced, durationMs: Number(run.durationMs), ...figures },
      "run finished",
    );
  }
}
