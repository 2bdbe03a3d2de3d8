/**
 * Order-by-order comparison of two order streams sorted by the same key.
 *
 * Every order gets exactly one diff_type: F000 on both sides with the same amount, F113 only in
 * the payment system, F114 only in the merchant system, F115 on both sides with different
 * amounts (the row carries the payment side's amount). Rows come out in the seed's order: the
 * payment side's orders in key order, then the merchant-only orders, which are held in a
 * temporary file meanwhile, so memory stays flat however many orders there are.
 */
import { createReadStream } from "node:fs";
import { rm } from "node:fs/promises";
import { once } from "node:events";
import { CsvFileWriter } from "./csv.js";
import type { OrderCursor, OrderRecord } from "./orderFiles.js";

export type DiffType = "F000" | "F113" | "F114" | "F115";

export interface DiffTotals {
  merchantRows: bigint;
  paymentRows: bigint;
  f000Count: bigint;
  f000Amount: bigint;
  f113Count: bigint;
  f113Amount: bigint;
  f114Count: bigint;
  f114Amount: bigint;
  f115Count: bigint;
  f115Amount: bigint;
}

export function diffFileHeader(amountColumn: string): string[] {
  return ["request_id", "response_id", "saler_id", amountColumn, "diff_type", "merchant_amount", "payment_amount", "request_time", "response_time"];
}

function row(r: OrderRecord, type: DiffType, merchant: bigint | undefined, payment: bigint | undefined): string[] {
  return [
    r.requestId,
    r.responseId,
    r.salerId,
    (payment ?? merchant ?? 0n).toString(),
    type,
    merchant === undefined ? "" : merchant.toString(),
    payment === undefined ? "" : payment.toString(),
    r.requestTime,
    r.responseTime,
  ];
}

export async function compareOrders(merchant: OrderCursor, payment: OrderCursor, outPath: string, amountColumn: string): Promise<DiffTotals> {
  const t: DiffTotals = {
    merchantRows: 0n,
    paymentRows: 0n,
    f000Count: 0n,
    f000Amount: 0n,
    f113Count: 0n,
    f113Amount: 0n,
    f114Count: 0n,
    f114Amount: 0n,
    f115Count: 0n,
    f115Amount: 0n,
  };
  const header = diffFileHeader(amountColumn);
  const out = new CsvFileWriter(outPath, header);
  const onlyMerchantPath = `${outPath}.f114.tmp`;
  const onlyMerchant = new CsvFileWriter(onlyMerchantPath, header);
  try {
    for (;;) {
      const m = merchant.current;
      const p = payment.current;
      if (!m && !p) break;
      let wait: Promise<void> | undefined;
      if (p && (!m || p.key < m.key)) {
        t.f113Count++;
        t.f113Amount += p.amount;
        wait = out.write(row(p, "F113", undefined, p.amount));
        const a = payment.advance();
        if (a) await a;
      } else if (m && (!p || m.key < p.key)) {
        t.f114Count++;
        t.f114Amount += m.amount;
        wait = onlyMerchant.write(row(m, "F114", m.amount, undefined));
        const a = merchant.advance();
        if (a) await a;
      } else {
        // Same order on both sides: the payment side's fields, the merchant's where it has none.
        const base = p!.salerId && p!.requestId && p!.responseId ? p! : { ...p!, salerId: p!.salerId || m!.salerId, requestId: p!.requestId || m!.requestId, responseId: p!.responseId || m!.responseId };
        if (m!.amount === p!.amount) {
          t.f000Count++;
          t.f000Amount += p!.amount;
          wait = out.write(row(base, "F000", m!.amount, p!.amount));
        } else {
          t.f115Count++;
          t.f115Amount += p!.amount;
          wait = out.write(row(base, "F115", m!.amount, p!.amount));
        }
        const a = merchant.advance();
        if (a) await a;
        const b = payment.advance();
        if (b) await b;
      }
      if (wait) await wait;
    }
    t.merchantRows = BigInt(merchant.count);
    t.paymentRows = BigInt(payment.count);
    await onlyMerchant.close();
    await out.flush();
    await appendBody(onlyMerchantPath, out);
  } finally {
    await onlyMerchant.close().catch(() => {});
    await out.close();
    await rm(onlyMerchantPath, { force: true });
  }
  return t;
}

/** Copies a CSV file written by CsvFileWriter, minus its BOM and header line, onto `out`. */
async function appendBody(path: string, out: CsvFileWriter): Promise<void> {
  let skipping = true;
  for await (const chunk of createReadStream(path, { encoding: "utf8", highWaterMark: 32 * 1024 })) {
    let text = chunk as string;
    if (skipping) {
      const nl = text.indexOf("\n");
      if (nl === -1) continue;
      text = text.slice(nl + 1);
      skipping = false;
    }
    if (text.length > 0 && !out.writeRaw(text)) await once(out.stream, "drain");
  }
}
