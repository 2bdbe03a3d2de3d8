/** ReconService handlers: transport-free, served by grpc-js and connect-node alike. */
import { join } from "node:path";
import { Code, ConnectError, type Client, type ServiceImpl } from "@connectrpc/connect";
import { MerchantService } from "../../gen/merchant/v1/merchant_pb.js";
import { ReconService, RunKind, type AuditRow, type DiffRow, type Run } from "../../gen/recon/v1/recon_pb.js";
import { invalidField } from "../shared/errors.js";
import type { BusinessClock } from "../shared/orders/time.js";
import { optionalBusinessTime, pageSize } from "../shared/orders/validation.js";
import { readCsvFile } from "./csv.js";
import { diffFileName, listDiffRows } from "./diffRows.js";
import type { Reconciler } from "./reconciler.js";
import { isRunId, type RunStore } from "./runs.js";
import { DIFF_TYPES, isDiffType } from "./diffTypes.js";
import { OrderType } from "../../gen/order/v1/order_pb.js";

export interface ReconDeps {
  reconciler: Reconciler;
  runs: RunStore;
  merchant: Client<typeof MerchantService>;
  clock: BusinessClock;
  cutoffLagSeconds: number;
}

const BATCH = 1000;

/** Column positions of a header row this service wrote. */
function columnIndex(header: string[]): Map<string, number> {
  return new Map(header.map((name, i) => [name, i]));
}

export function createReconService(deps: ReconDeps): ServiceImpl<typeof ReconService> {
  const { reconciler, runs, clock } = deps;

  /**
   * The cut-off of a live run: by default now minus the lag. An explicit one must not be later
   * than that, or calls still in flight at the cut-off would show up as false differences.
   */
  const cutoff = (field: string, value: string): string => {
    optionalBusinessTime(field, value);
    const latest = clock.secondsAgo(deps.cutoffLagSeconds);
    if (value !== "" && value > latest) {
      throw invalidField(field, `must not be later than now minus ${deps.cutoffLagSeconds} s (${latest}): orders answered after it may still be in flight`);
    }
    return value || latest;
  };

  const runOf = async (runId: string, kind: RunKind): Promise<Run> => {
    if (!isRunId(runId)) throw invalidField("run_id", "is not a run id (yyyyMMddHHmmssSSS-recon|audit-xxxx)");
    const run = await runs.get(runId);
    if (!run) throw new ConnectError(`run_id: no run ${runId}`, Code.NotFound);
    if (kind !== RunKind.UNSPECIFIED && run.kind !== kind) {
      throw invalidField("run_id", `run ${runId} is not a ${kind === RunKind.AUDIT ? "audit" : "reconciliation"} run`);
    }
    return run;
  };

  return {
    async reconcile(req) {
      const cutoffTime = cutoff("cutoff_time", req.cutoffTime);
      if (req.resolveUnknown) await deps.merchant.resolveUnknownOrders({});
      return { run: await reconciler.reconcileLive(req.key, cutoffTime) };
    },

    async reconcileFiles(req) {
      return { run: await reconciler.reconcileFiles(req.orderType, req.key, req.merchant, req.payment) };
    },

    async audit(req) {
      const cutoffTime = cutoff("cutoff_time", req.cutoffTime);
      if (req.resolveUnknown) await deps.merchant.resolveUnknownOrders({});
      return { run: await reconciler.auditLive(cutoffTime) };
    },

    async auditFiles(req) {
      return { run: await reconciler.auditFiles(req.merchantPayments, req.merchantWithdrawals, req.balances, req.merchantRefunds) };
    },

    async listRuns(req) {
      const limit = pageSize("page_size", req.pageSize, 20, 1000);
      if (req.pageToken !== "" && !isRunId(req.pageToken)) throw invalidField("page_token", "is not a token this service issued");
      const page = await runs.list(req.kind, limit + 1, req.pageToken || undefined);
      const shown = page.slice(0, limit);
      return { runs: shown, nextPageToken: page.length > limit ? shown[shown.length - 1]!.runId : "" };
    },

    async getRun(req) {
      return { run: await runOf(req.runId, RunKind.UNSPECIFIED) };
    },

    async *streamDiffRows(req, ctx) {
      const run = await runOf(req.runId, RunKind.RECONCILIATION);
      if (req.diffType !== "" && !isDiffType(req.diffType)) throw invalidField("diff_type", `must be one of ${DIFF_TYPES.join(", ")} or empty`);
      for (const summary of run.diffs) {
        if (req.orderType !== OrderType.UNSPECIFIED && summary.orderType !== req.orderType) continue;
        const name = diffFileName(summary.orderType);
        const path = join(run.directory, name);
        let cols: Map<string, number> | undefined;
        let out: DiffRow[] = [];
        for await (const batch of readCsvFile(path, name)) {
          for (const r of batch) {
            if (!cols) {
              cols = columnIndex(r);
              continue;
            }
            const at = (c: string) => r[cols!.get(c) ?? -1] ?? "";
            if (req.diffType !== "" && at("diff_type") !== req.diffType) continue;
            const amountColumn = cols.has("total_fee") ? "total_fee" : cols.has("refund_fee") ? "refund_fee" : "withdraw_money";
            out.push({
              $typeName: "recon.v1.DiffRow",
              orderType: summary.orderType,
              diffType: at("diff_type"),
              requestId: at("request_id"),
              responseId: at("response_id"),
              salerId: at("saler_id"),
              amount: BigInt(at(amountColumn) || "0"),
              merchantAmount: BigInt(at("merchant_amount") || "0"),
              paymentAmount: BigInt(at("payment_amount") || "0"),
              requestTime: at("request_time"),
              responseTime: at("response_time"),
            });
            if (out.length >= BATCH) {
              if (ctx.signal.aborted) return;
              yield { rows: out };
              out = [];
            }
          }
        }
        if (out.length > 0) yield { rows: out };
      }
    },

    async *streamAuditRows(req, ctx) {
      const run = await runOf(req.runId, RunKind.AUDIT);
      if (req.result !== "" && req.result !== "SUCCESS" && req.result !== "FAIL") throw invalidField("result", "must be SUCCESS, FAIL or empty");
      const path = join(run.directory, "audit.csv");
      let cols: Map<string, number> | undefined;
      let out: AuditRow[] = [];
      for await (const batch of readCsvFile(path, "audit.csv")) {
        for (const r of batch) {
          if (!cols) {
            cols = columnIndex(r);
            continue;
          }
          const at = (c: string) => r[cols!.get(c) ?? -1] ?? "";
          if (req.result !== "" && at("result") !== req.result) continue;
          out.push({
            $typeName: "recon.v1.AuditRow",
            salerId: at("saler_id"),
            balance: BigInt(at("balance")),
            result: at("result"),
            auditAmount: BigInt(at("audit_amount")),
            inMerchant: at("in_merchant") === "true",
            inPayment: at("in_payment") === "true",
          });
          if (out.length >= BATCH) {
            if (ctx.signal.aborted) return;
            yield { rows: out };
            out = [];
          }
        }
      }
      if (out.length > 0) yield { rows: out };
    },

    async listDiffRows(req, ctx) {
      const run = await runOf(req.runId, RunKind.RECONCILIATION);
      try {
        return await listDiffRows(run, req, ctx.signal);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ENOENT") throw new ConnectError(`run ${run.runId} has no ${diffFileName(req.orderType)}`, Code.NotFound);
        throw err;
      }
    },
  };
}
