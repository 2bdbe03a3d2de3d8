/**
 * Reconciliation and audit runs: pull both sides' exports up to a cut-off (or take files handed
 * in), write them as CSV into the run's directory, compare them, and keep the result as a run.
 *
 * The cut-off makes a run repeatable and fair to both sides: only orders answered at or before it
 * are compared, and the payment system reports balances as of it, so payments still in flight,
 * credits still buffered and payments arriving during the run never show up as differences.
 */
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import type { Client } from "@connectrpc/connect";
import { OrderExportService, OrderKey, OrderType } from "../../gen/order/v1/order_pb.js";
import { PaymentService } from "../../gen/payment/v1/payment_pb.js";
import {
  AuditSummarySchema,
  DiffSummarySchema,
  RunFileSchema,
  RunKind,
  RunSchema,
  type CsvSource,
  type Run,
  type RunFile,
} from "../../gen/recon/v1/recon_pb.js";
import { invalidField } from "../shared/errors.js";
import type { BusinessClock } from "../shared/orders/time.js";
import { CsvFileWriter } from "./csv.js";
import { diffFileName } from "./diffRows.js";
import { writeOrderFile } from "./orderFiles.js";
import { copyChecked, encodingOf, excerpt, openInput, type Source } from "./inputFiles.js";
import type { DiffTotals, ReconEngine, RunInput } from "./engine.js";
import type { RunStore } from "./runs.js";

export interface ReconcilerDeps {
  /** Each side's successful orders (order.v1.OrderExportService, served by both systems). */
  merchantOrders: Client<typeof OrderExportService>;
  paymentOrders: Client<typeof OrderExportService>;
  /** The payment system, for its balances as of a cut-off. */
  payment: Client<typeof PaymentService>;
  runs: RunStore;
  clock: BusinessClock;
  inputDir: string;
  engine: ReconEngine;
}

const KINDS = [
  { type: OrderType.PAYMENT, name: "payments", amount: "total_fee", diff: diffFileName(OrderType.PAYMENT) },
  { type: OrderType.WITHDRAWAL, name: "withdrawals", amount: "withdraw_money", diff: diffFileName(OrderType.WITHDRAWAL) },
  { type: OrderType.REFUND, name: "refunds", amount: "refund_fee", diff: diffFileName(OrderType.REFUND) },
] as const;

type KeyColumn = "response_id" | "request_id";

function keyColumn(key: OrderKey): KeyColumn {
  return key === OrderKey.REQUEST_ID ? "request_id" : "response_id";
}

export class Reconciler {
  constructor(private readonly deps: ReconcilerDeps) {}

  private async newRun(kind: RunKind, key: OrderKey, cutoffTime: string, source: "live" | "files"): Promise<Run> {
    const now = Date.now();
    const createdTime = this.deps.clock.at(now);
    const { runId, directory } = await this.deps.runs.create(kind, createdTime, now % 1000);
    return create(RunSchema, { runId, kind, createdTime, cutoffTime, key, source, directory });
  }

  /** A run that fails, for whatever reason, leaves nothing behind: its directory goes. */
  private async discardOnFailure<T>(run: Run, work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (err) {
      await rm(run.directory, { recursive: true, force: true });
      throw err;
    }
  }

  private async finish(run: Run, started: number): Promise<Run> {
    run.durationMs = BigInt(Math.round(performance.now() - started));
    await this.deps.runs.save(run);
    return run;
  }

  async reconcileLive(key: OrderKey, cutoffTime: string): Promise<Run> {
    const started = performance.now();
    const run = await this.newRun(RunKind.RECONCILIATION, key === OrderKey.UNSPECIFIED ? OrderKey.RESPONSE_ID : key, cutoffTime, "live");
    const column = keyColumn(key);
    return this.discardOnFailure(run, async () => {
      for (const kind of KINDS) {
        const merchantFile = join(run.directory, `merchant_${kind.name}.csv`);
        const paymentFile = join(run.directory, `payment_${kind.name}.csv`);
        const request = { orderType: kind.type, key: run.key, cutoffTime };
        const [merchantRows, paymentRows] = await Promise.all([
          writeOrderFile(merchantFile, kind.amount, this.deps.merchantOrders.exportOrders(request)),
          writeOrderFile(paymentFile, kind.amount, this.deps.paymentOrders.exportOrders(request)),
        ]);
        run.files.push(file(`merchant_${kind.name}.csv`, merchantFile, merchantRows), file(`payment_${kind.name}.csv`, paymentFile, paymentRows));
        const diffPath = join(run.directory, kind.diff);
        const totals = await this.deps.engine.reconcile(
          { path: merchantFile, label: `merchant_${kind.name}.csv` },
          { path: paymentFile, label: `payment_${kind.name}.csv` },
          column,
          kind.amount,
          diffPath,
        );
        run.diffs.push(create(DiffSummarySchema, { orderType: kind.type, ...totals }));
        run.files.push(file(kind.diff, diffPath, rowsIn(totals)));
      }
      run.balanced = run.diffs.every((d) => d.f113Count === 0n && d.f114Count === 0n && d.f115Count === 0n);
      return this.finish(run, started);
    });
  }

  async reconcileFiles(orderType: OrderType, key: OrderKey, merchant: CsvSource | undefined, payment: CsvSource | undefined): Promise<Run> {
    if (orderType === OrderType.UNSPECIFIED) throw invalidField("order_type", "must be ORDER_TYPE_PAYMENT, ORDER_TYPE_WITHDRAWAL or ORDER_TYPE_REFUND");
    checkSource("merchant", merchant);
    checkSource("payment", payment);
    const started = performance.now();
    const run = await this.newRun(RunKind.RECONCILIATION, key === OrderKey.UNSPECIFIED ? OrderKey.RESPONSE_ID : key, "", "files");
    const kind = KINDS.find((k) => k.type === orderType)!;
    const diffPath = join(run.directory, kind.diff);
    return this.discardOnFailure(run, async () => {
      const [m, p] = await settleAll([
        this.materialize(run, "merchant", `merchant_${kind.name}.csv`, merchant!),
        this.materialize(run, "payment", `payment_${kind.name}.csv`, payment!),
      ]);
      const totals = await this.deps.engine.reconcile(m, p, keyColumn(key), kind.amount, diffPath);
      run.files.push(file(`merchant_${kind.name}.csv`, m.path, totals.merchantRows), file(`payment_${kind.name}.csv`, p.path, totals.paymentRows));
      run.diffs.push(create(DiffSummarySchema, { orderType, ...totals }));
      run.files.push(file(kind.diff, diffPath, rowsIn(totals)));
      run.balanced = totals.f113Count === 0n && totals.f114Count === 0n && totals.f115Count === 0n;
      return this.finish(run, started);
    });
  }

  async auditLive(cutoffTime: string): Promise<Run> {
    const started = performance.now();
    const run = await this.newRun(RunKind.AUDIT, OrderKey.RESPONSE_ID, cutoffTime, "live");
    return this.discardOnFailure(run, async () => {
      const payments = join(run.directory, "merchant_payments.csv");
      const withdrawals = join(run.directory, "merchant_withdrawals.csv");
      const refunds = join(run.directory, "merchant_refunds.csv");
      const balances = join(run.directory, "payment_balances.csv");
      await Promise.all([
        writeOrderFile(payments, "total_fee", this.deps.merchantOrders.exportOrders({ orderType: OrderType.PAYMENT, cutoffTime })),
        writeOrderFile(withdrawals, "withdraw_money", this.deps.merchantOrders.exportOrders({ orderType: OrderType.WITHDRAWAL, cutoffTime })),
        writeOrderFile(refunds, "refund_fee", this.deps.merchantOrders.exportOrders({ orderType: OrderType.REFUND, cutoffTime })),
        this.writeBalances(balances, cutoffTime),
      ]);
      return this.finish(
        await this.audit(
          run,
          { path: payments, label: "merchant_payments.csv" },
          { path: withdrawals, label: "merchant_withdrawals.csv" },
          { path: refunds, label: "merchant_refunds.csv" },
          { path: balances, label: "payment_balances.csv" },
        ),
        started,
      );
    });
  }

  async auditFiles(
    payments: CsvSource | undefined,
    withdrawals: CsvSource | undefined,
    balances: CsvSource | undefined,
    refunds?: CsvSource | undefined,
  ): Promise<Run> {
    checkSource("merchant_payments", payments);
    checkSource("merchant_withdrawals", withdrawals);
    checkSource("balances", balances);
    const started = performance.now();
    const run = await this.newRun(RunKind.AUDIT, OrderKey.RESPONSE_ID, "", "files");
    return this.discardOnFailure(run, async () => {
      const [p, w, r, b] = await settleAll([
        this.materialize(run, "merchant_payments", "merchant_payments.csv", payments!),
        this.materialize(run, "merchant_withdrawals", "merchant_withdrawals.csv", withdrawals!),
        refunds?.source.case === undefined ? undefined : this.materialize(run, "merchant_refunds", "merchant_refunds.csv", refunds),
        this.materialize(run, "balances", "payment_balances.csv", balances!),
      ]);
      return this.finish(await this.audit(run, p, w, r, b), started);
    });
  }

  private async audit(run: Run, payments: RunInput, withdrawals: RunInput, refunds: RunInput | undefined, balances: RunInput): Promise<Run> {
    const auditPath = join(run.directory, "audit.csv");
    const { totals, rows } = await this.deps.engine.audit(payments, withdrawals, refunds, balances, auditPath);
    run.files.push(
      file("merchant_payments.csv", payments.path, rows[0]!),
      file("merchant_withdrawals.csv", withdrawals.path, rows[1]!),
      ...(refunds ? [file("merchant_refunds.csv", refunds.path, rows[3]!)] : []),
      file("payment_balances.csv", balances.path, rows[2]!),
    );
    run.audit = create(AuditSummarySchema, totals);
    run.files.push(file("audit.csv", auditPath, totals.accounts));
    run.balanced = totals.fail === 0n;
    return run;
  }

  private async writeBalances(path: string, cutoffTime: string): Promise<bigint> {
    const w = new CsvFileWriter(path, ["saler_id", "balance", "settled_balance", "pending"]);
    try {
      for await (const message of this.deps.payment.exportBalances({ cutoffTime })) {
        for (const b of message.balances) {
          const p = w.write([b.salerId, b.balance.toString(), b.settledBalance.toString(), b.pending.toString()]);
          if (p) await p;
        }
      }
    } finally {
      await w.close();
    }
    return BigInt(w.rows);
  }

  /**
   * A file handed in, copied into the run (transcoded to UTF-8 when it declares GB18030/GBK) and
   * checked on the way: a path must name a regular file under the input directory.
   */
  private async materialize(run: Run, field: string, name: string, source: CsvSource): Promise<RunInput> {
    const target = join(run.directory, name);
    const encoding = encodingOf(`${field}.encoding`, source.encoding);
    if (source.source.case === "content") {
      // Text in a request is already Unicode: it is written as UTF-8 whatever it declares.
      await copyChecked({ text: Buffer.from(source.source.value, "utf8") }, target, "utf-8", name);
      return { path: target, label: name };
    }
    const requested = source.source.value!;
    const handle = await openInput(this.deps.inputDir, requested, `${field}.path`);
    try {
      const input: Source = { handle };
      const label = excerpt(requested).slice(1, -1) === requested ? requested : name;
      await copyChecked(input, target, encoding, label);
      return { path: target, label };
    } finally {
      await handle.close();
    }
  }
}

/**
 * Waits for every promise, then gives their values, or throws the first one's error in list order
 * (the same error whichever failed first), so that no work is still writing into a run directory
 * when a failed run removes it.
 */
async function settleAll<T extends readonly unknown[]>(work: T): Promise<{ -readonly [K in keyof T]: Awaited<T[K]> }> {
  const settled = await Promise.allSettled(work);
  const failed = settled.find((s) => s.status === "rejected");
  if (failed) throw (failed as PromiseRejectedResult).reason;
  return settled.map((s) => (s as PromiseFulfilledResult<unknown>).value) as { -readonly [K in keyof T]: Awaited<T[K]> };
}

function checkSource(field: string, source: CsvSource | undefined): void {
  if (!source || source.source.case === undefined) throw invalidField(field, "is required: give a path or the CSV text as content");
  encodingOf(`${field}.encoding`, source.encoding);
}

function file(name: string, path: string, rows: bigint | number): RunFile {
  return create(RunFileSchema, { name, path, rows: BigInt(rows) });
}

function rowsIn(t: DiffTotals): bigint {
  return t.f000Count + t.f113Count + t.f114Count + t.f115Count;
}
