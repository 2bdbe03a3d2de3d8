/**
 * Balance audit (seed step 5): per account, the merchant's successful payments (positive) plus
 * successful withdrawals (negative), summed, against the payment system's balance.
 *
 * Input files are read as streams; memory grows with the number of accounts, never with the
 * number of orders. Accounts on only one side are reported too: an account the payment system
 * does not know has balance 0, an account without merchant orders has audit amount 0.
 */
import { CsvFileWriter, CsvFormatError } from "./csv.js";
import { AMOUNT_COLUMNS, columnsOf, parseFen } from "./orderFiles.js";

export interface AuditTotals {
  accounts: bigint;
  success: bigint;
  fail: bigint;
  merchantOnly: bigint;
  paymentOnly: bigint;
}

export const AUDIT_HEADER = ["saler_id", "balance", "result", "audit_amount", "in_merchant", "in_payment"];

/** Adds each row's amount (times sign) to its account. */
export async function sumByAccount(file: string, batches: AsyncIterable<string[][]>, sign: 1n | -1n, into: Map<string, bigint>): Promise<void> {
  let cols: Map<string, number> | undefined;
  let salerAt = -1;
  let amountAt = -1;
  let record = 0;
  for await (const batch of batches) {
    for (const row of batch) {
      record++;
      if (!cols) {
        cols = columnsOf(file, row, ["saler_id", AMOUNT_COLUMNS.join("|")]);
        salerAt = cols.get("saler_id")!;
        amountAt = AMOUNT_COLUMNS.map((c) => cols!.get(c)).find((i) => i !== undefined)!;
        continue;
      }
      const saler = (row[salerAt] ?? "").trim();
      if (saler === "") throw new CsvFormatError(file, record, "saler_id is empty");
      const amount = parseFen(file, record, "amount", row[amountAt] ?? "");
      into.set(saler, (into.get(saler) ?? 0n) + sign * amount);
    }
  }
  if (!cols) throw new CsvFormatError(file, 1, "the file is empty: it needs at least a header row");
}

/** saler_id -> balance from a balances file (saler_id,balance). */
export async function readBalances(file: string, batches: AsyncIterable<string[][]>): Promise<Map<string, bigint>> {
  const balances = new Map<string, bigint>();
  let cols: Map<string, number> | undefined;
  let record = 0;
  for await (const batch of batches) {
    for (const row of batch) {
      record++;
      if (!cols) {
        cols = columnsOf(file, row, ["saler_id", "balance"]);
        continue;
      }
      const saler = (row[cols.get("saler_id")!] ?? "").trim();
      if (saler === "") throw new CsvFormatError(file, record, "saler_id is empty");
      if (balances.has(saler)) throw new CsvFormatError(file, record, `duplicate account ${saler}`);
      balances.set(saler, parseFen(file, record, "balance", row[cols.get("balance")!] ?? ""));
    }
  }
  if (!cols) throw new CsvFormatError(file, 1, "the file is empty: it needs at least a header row");
  return balances;
}

export async function writeAudit(path: string, merchant: Map<string, bigint>, balances: Map<string, bigint>): Promise<AuditTotals> {
  const accounts = [...new Set([...merchant.keys(), ...balances.keys()])].sort();
  const t: AuditTotals = { accounts: 0n, success: 0n, fail: 0n, merchantOnly: 0n, paymentOnly: 0n };
  const w = new CsvFileWriter(path, AUDIT_HEADER);
  for (const salerId of accounts) {
    const inMerchant = merchant.has(salerId);
    const inPayment = balances.has(salerId);
    const balance = balances.get(salerId) ?? 0n;
    const auditAmount = merchant.get(salerId) ?? 0n;
    const ok = balance === auditAmount;
    t.accounts++;
    if (ok) t.success++;
    else t.fail++;
    if (!inPayment) t.merchantOnly++;
    if (!inMerchant) t.paymentOnly++;
    const p = w.write([salerId, balance.toString(), ok ? "SUCCESS" : "FAIL", auditAmount.toString(), String(inMerchant), String(inPayment)]);
    if (p) await p;
  }
  await w.close();
  return t;
}
