/**
 * Reconciliation and audit runs: pull both sides' exports up to a cut-off (or take files handed
 * in), write them as CSV into the run's directory, compare them, and keep the result as a run.
 *
 * The cut-off makes a run repeatable and fair to both sides: only orders answered at or before it
 * are compared, and the payment system reports balances as of it, so payments still in flight,
 * credits still buffered and payments arriving during the run never show up as differences.
 */
import { copyFile, link, realpath, rm, writeFile } from "node:fs/promises";
import { basename, join, resolve, sep } from "node:path";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { MerchantService, OrderKey as MerchantOrderKey, OrderType as MerchantOrderType } from "../../gen/merchant/v1/merchant_pb.js";
import { PaymentService, OrderKey as PaymentOrderKey, OrderType as PaymentOrderType } from "../../gen/payment/v1/payment_pb.js";
import {
  AuditSummarySchema,
  DiffSummarySchema,
  OrderKey,
  OrderType,
  RunFileSchema,
  RunKind,
  RunSchema,
  type CsvSource,
  type Run,
  type RunFile,
} from "../../gen/recon/v1/recon_pb.js";
import type { ExportRow } from "../shared/orderExport.js";
import { invalidField } from "../shared/errors.js";
import type { BusinessClock } from "../shared/time.js";
import { CsvFileWriter, CsvFormatError, readCsvFile } from "./csv.js";
import { compareOrders, type DiffTotals } from "./compare.js";
import { externalSort, OrderCursor, orderRecords, UnsortedError, writeOrderFile, type KeyColumn } from "./orderFiles.js";
import { readBalances, sumByAccount, writeAudit } from "./audit.js";
import type { RunStore } from "./runs.js";

export interface ReconcilerDeps {
  merchant: Client<typeof MerchantService>;
  payment: Client<typeof PaymentService>;
  runs: RunStore;
  clock: BusinessClock;
  inputDir: string;
}

const KINDS = [
  { type: OrderType.PAYMENT, name: "payments", amount: "total_fee", diff: "payment_diff.csv" },
  { type: OrderType.WITHDRAWAL, name: "withdrawals", amount: "withdraw_money", diff: "withdrawal_diff.csv" },
] as const;

async function* rowsOf(stream: AsyncIterable<{ orders: ExportRow[] }>): AsyncGenerator<ExportRow[]> {
  for await (const message of stream) yield message.orders;
}

function keyColumn(key: OrderKey): KeyColumn {
  return key === OrderKey.REQUEST_ID ? "request_id" : "response_id";
}

/** A file handed in as CSV failed a rule: INVALID_ARGUMENT with the file and record named. */
function refuse(err: unknown): never {
  // Named by file name only: the run directory is the server's business.
  if (err instanceof CsvFormatError) throw new ConnectError(`${basename(err.file)}, record ${err.record}: ${err.reason}`, Code.InvalidArgument);
  throw err;
}

export class Reconciler {
  constructor(private readonly deps: ReconcilerDeps) {}

  private async newRun(kind: RunKind, key: OrderKey, cutoffTime: string, source: "live" | "files"): Promise<Run> {
    const now = Date.now();
    const createdTime = this.deps.clock.at(now);
    const { runId, directory } = await this.deps.runs.create(kind, createdTime, now % 1000);
    return create(RunSchema, { runId, kind, createdTime, cutoffTime, key, source, directory });
  }

  /** A run over files handed in that refuses them leaves no directory behind. */
  private async discardIfRefused<T>(run: Run, work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (err) {
      if (err instanceof ConnectError) await rm(run.directory, { recursive: true, force: true });
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
    for (const kind of KINDS) {
      const merchantFile = join(run.directory, `merchant_${kind.name}.csv`);
      const paymentFile = join(run.directory, `payment_${kind.name}.csv`);
      const [merchantRows, paymentRows] = await Promise.all([
        writeOrderFile(
          merchantFile,
          kind.amount,
          rowsOf(
            this.deps.merchant.exportOrders({
              orderType: kind.type === OrderType.PAYMENT ? MerchantOrderType.PAYMENT : MerchantOrderType.WITHDRAWAL,
              key: column === "request_id" ? MerchantOrderKey.REQUEST_ID : MerchantOrderKey.RESPONSE_ID,
              cutoffTime,
            }),
          ),
        ),
        writeOrderFile(
          paymentFile,
          kind.amount,
          rowsOf(
            this.deps.payment.exportOrders({
              orderType: kind.type === OrderType.PAYMENT ? PaymentOrderType.PAYMENT : PaymentOrderType.WITHDRAWAL,
              key: column === "request_id" ? PaymentOrderKey.REQUEST_ID : PaymentOrderKey.RESPONSE_ID,
              cutoffTime,
            }),
          ),
        ),
      ]);
      run.files.push(file(`merchant_${kind.name}.csv`, merchantFile, merchantRows), file(`payment_${kind.name}.csv`, paymentFile, paymentRows));
      const diffPath = join(run.directory, kind.diff);
      const totals = await this.compareFiles(merchantFile, paymentFile, column, diffPath, kind.amount, false);
      run.diffs.push(create(DiffSummarySchema, { orderType: kind.type, ...totals }));
      run.files.push(file(kind.diff, diffPath, rowsIn(totals)));
    }
    run.balanced = run.diffs.every((d) => d.f113Count === 0n && d.f114Count === 0n && d.f115Count === 0n);
    return this.finish(run, started);
  }

  async reconcileFiles(orderType: OrderType, key: OrderKey, merchant: CsvSource | undefined, payment: CsvSource | undefined): Promise<Run> {
    if (orderType === OrderType.UNSPECIFIED) throw invalidField("order_type", "must be ORDER_TYPE_PAYMENT or ORDER_TYPE_WITHDRAWAL");
    const started = performance.now();
    const run = await this.newRun(RunKind.RECONCILIATION, key === OrderKey.UNSPECIFIED ? OrderKey.RESPONSE_ID : key, "", "files");
    const kind = KINDS.find((k) => k.type === orderType)!;
    const diffPath = join(run.directory, kind.diff);
    const { merchantFile, paymentFile, totals } = await this.discardIfRefused(run, async () => {
      const merchantFile = await this.materialize(run, "merchant", `merchant_${kind.name}.csv`, merchant);
      const paymentFile = await this.materialize(run, "payment", `payment_${kind.name}.csv`, payment);
      const totals = await this.compareFiles(merchantFile, paymentFile, keyColumn(key), diffPath, kind.amount, true).catch(refuse);
      return { merchantFile, paymentFile, totals };
    });
    run.files.push(file(`merchant_${kind.name}.csv`, merchantFile, totals.merchantRows), file(`payment_${kind.name}.csv`, paymentFile, totals.paymentRows));
    run.diffs.push(create(DiffSummarySchema, { orderType, ...totals }));
    run.files.push(file(kind.diff, diffPath, rowsIn(totals)));
    run.balanced = totals.f113Count === 0n && totals.f114Count === 0n && totals.f115Count === 0n;
    return this.finish(run, started);
  }

  async auditLive(cutoffTime: string): Promise<Run> {
    const started = performance.now();
    const run = await this.newRun(RunKind.AUDIT, OrderKey.RESPONSE_ID, cutoffTime, "live");
    const payments = join(run.directory, "merchant_payments.csv");
    const withdrawals = join(run.directory, "merchant_withdrawals.csv");
    const balances = join(run.directory, "payment_balances.csv");
    const [p, w, b] = await Promise.all([
      writeOrderFile(payments, "total_fee", rowsOf(this.deps.merchant.exportOrders({ orderType: MerchantOrderType.PAYMENT, cutoffTime }))),
      writeOrderFile(withdrawals, "withdraw_money", rowsOf(this.deps.merchant.exportOrders({ orderType: MerchantOrderType.WITHDRAWAL, cutoffTime }))),
      this.writeBalances(balances, cutoffTime),
    ]);
    run.files.push(file("merchant_payments.csv", payments, p), file("merchant_withdrawals.csv", withdrawals, w), file("payment_balances.csv", balances, b));
    return this.finish(await this.audit(run, payments, withdrawals, balances), started);
  }

  async auditFiles(payments: CsvSource | undefined, withdrawals: CsvSource | undefined, balances: CsvSource | undefined): Promise<Run> {
    const started = performance.now();
    const run = await this.newRun(RunKind.AUDIT, OrderKey.RESPONSE_ID, "", "files");
    const audited = await this.discardIfRefused(run, async () => {
      const p = await this.materialize(run, "merchant_payments", "merchant_payments.csv", payments);
      const w = await this.materialize(run, "merchant_withdrawals", "merchant_withdrawals.csv", withdrawals);
      const b = await this.materialize(run, "balances", "payment_balances.csv", balances);
      for (const [name, path] of [["merchant_payments.csv", p], ["merchant_withdrawals.csv", w], ["payment_balances.csv", b]] as const) {
        run.files.push(file(name, path, 0n));
      }
      return this.audit(run, p, w, b).catch(refuse);
    });
    return this.finish(audited, started);
  }

  private async audit(run: Run, payments: string, withdrawals: string, balancesFile: string): Promise<Run> {
    const merchant = new Map<string, bigint>();
    await sumByAccount(payments, readCsvFile(payments), 1n, merchant);
    await sumByAccount(withdrawals, readCsvFile(withdrawals), -1n, merchant);
    const balances = await readBalances(balancesFile, readCsvFile(balancesFile));
    const auditPath = join(run.directory, "audit.csv");
    const totals = await writeAudit(auditPath, merchant, balances);
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
   * Compares two order files. Exports arrive sorted; a file handed in that turns out not to be
   * sorted is sorted on disk and the comparison starts over (the output file is rewritten).
   */
  private async compareFiles(merchantFile: string, paymentFile: string, key: KeyColumn, out: string, amountColumn: string, mayBeUnsorted: boolean): Promise<DiffTotals> {
    const records = (path: string) => orderRecords(path, readCsvFile(path), key);
    const attempt = async (sort: boolean) => {
      const open = (path: string) => OrderCursor.open(path, sort ? externalSort(records(path)) : records(path));
      return compareOrders(await open(merchantFile), await open(paymentFile), out, amountColumn);
    };
    try {
      return await attempt(false);
    } catch (err) {
      if (!(err instanceof UnsortedError) || !mayBeUnsorted) throw err;
      return attempt(true);
    }
  }

  /** A file handed in: its text is saved into the run; a path must lie under the input directory. */
  private async materialize(run: Run, field: string, name: string, source: CsvSource | undefined): Promise<string> {
    const target = join(run.directory, name);
    if (!source || source.source.case === undefined) throw invalidField(field, "is required: give a path or the CSV text as content");
    if (source.source.case === "content") {
      await writeFile(target, source.source.value, "utf8");
      return target;
    }
    const requested = source.source.value;
    let real: string;
    try {
      real = await realpath(resolve(this.deps.inputDir, requested));
    } catch {
      throw invalidField(`${field}.path`, `no readable file "${requested}" under the input directory`);
    }
    const root = await realpath(this.deps.inputDir).catch(() => resolve(this.deps.inputDir));
    if (!real.startsWith(root + sep)) throw invalidField(`${field}.path`, "must lie under the reconciliation input directory");
    // The run keeps its inputs: a hard link costs nothing; another file system needs a copy.
    await link(real, target).catch(() => copyFile(real, target));
    return target;
  }
}

function file(name: string, path: string, rows: bigint | number): RunFile {
  return create(RunFileSchema, { name, path, rows: BigInt(rows) });
}

function rowsIn(t: DiffTotals): bigint {
  return t.f000Count + t.f113Count + t.f114Count + t.f115Count;
}
