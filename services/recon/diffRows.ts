/**
 * ListDiffRows: pages through a reconciliation run's stored diff file of one order type, with
 * optional filters on diff_type and saler_id. A page reads the file from where the previous one
 * stopped (the page token holds that byte offset), so paging through any number of rows reads
 * the file once in all, and memory holds one page.
 *
 * The file is read by its header: request_id, response_id, an amount column (total_fee,
 * withdraw_money, refund_fee or amount) and diff_type are looked up by name; saler_id, merchant_amount,
 * payment_amount, request_time and response_time are used when present.
 */
import { createHash } from "node:crypto";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { type DiffRow, type ListDiffRowsRequest, type Run } from "../../gen/recon/v1/recon_pb.js";
import { invalidField } from "../shared/errors.js";
import { pageSize } from "../shared/orders/validation.js";
import { csvRecordsFrom, isRecordBoundary } from "./csvOffsets.js";
import { DIFF_TYPES, isDiffType } from "./diffTypes.js";
import { OrderType } from "../../gen/order/v1/order_pb.js";

const AMOUNT_COLUMNS = ["total_fee", "withdraw_money", "refund_fee", "amount"];
const MAX_SALER_ID = 256;

export interface DiffRowsPage {
  rows: DiffRow[];
  nextPageToken: string;
  rowOffset: bigint;
}

/** The diff file of one order type of a run. */
export function diffFileName(orderType: OrderType): string {
  return orderType === OrderType.WITHDRAWAL ? "withdrawal_diff.csv" : orderType === OrderType.REFUND ? "refund_diff.csv" : "payment_diff.csv";
}

/** Ties a token to its run and filter, so a token is never read against another file or filter. */
function filterTag(runId: string, orderType: OrderType, diffTypes: readonly string[], salerId: string): string {
  return createHash("sha256")
    .update(JSON.stringify([runId, orderType, [...diffTypes].sort(), salerId]))
    .digest("hex")
    .slice(0, 12);
}

interface Token {
  offset: number;
  rowOffset: bigint;
}

function encodeToken(tag: string, t: Token): string {
  return Buffer.from(`${tag}.${t.offset}.${t.rowOffset}`, "utf8").toString("base64url");
}

function decodeToken(tag: string, token: string): Token {
  const refuse = () => invalidField("page_token", "is not a token this service issued for this run and filter");
  if (token.length > 200) throw refuse();
  const m = /^([0-9a-f]{12})\.(\d{1,15})\.(\d{1,15})$/.exec(Buffer.from(token, "base64url").toString("utf8"));
  if (!m || m[1] !== tag) throw refuse();
  return { offset: Number(m[2]), rowOffset: BigInt(m[3]!) };
}

function fen(file: string, column: string, text: string): bigint {
  if (text === "") return 0n;
  if (!/^-?\d{1,19}$/.test(text)) throw new ConnectError(`${file}: ${column} "${text.slice(0, 40)}" is not an integer number of fen`, Code.DataLoss);
  return BigInt(text);
}

export async function listDiffRows(run: Run, req: ListDiffRowsRequest, signal?: AbortSignal): Promise<DiffRowsPage> {
  if (req.orderType !== OrderType.PAYMENT && req.orderType !== OrderType.WITHDRAWAL && req.orderType !== OrderType.REFUND) {
    throw invalidField("order_type", "must be ORDER_TYPE_PAYMENT, ORDER_TYPE_WITHDRAWAL or ORDER_TYPE_REFUND");
  }
  for (const t of req.diffTypes) {
    if (!isDiffType(t)) throw invalidField("diff_types", `"${t.slice(0, 20)}" is not one of ${DIFF_TYPES.join(", ")}`);
  }
  if (req.salerId.length > MAX_SALER_ID) throw invalidField("saler_id", `must be at most ${MAX_SALER_ID} characters`);
  const limit = pageSize("page_size", req.pageSize, 50, 1000);
  if (!run.diffs.some((d) => d.orderType === req.orderType)) {
    throw invalidField("order_type", `run ${run.runId} has no ${req.orderType === OrderType.WITHDRAWAL ? "withdrawal" : "payment"} rows`);
  }
  const name = diffFileName(req.orderType);
  const path = join(run.directory, name);
  const tag = filterTag(run.runId, req.orderType, req.diffTypes, req.salerId);
  const from = req.pageToken === "" ? undefined : decodeToken(tag, req.pageToken);

  // The header, always from the start of the file.
  let header: { fields: string[]; end: number } | undefined;
  for await (const r of csvRecordsFrom(path, 0)) {
    header = r;
    break;
  }
  if (!header) throw new ConnectError(`${name}: the file is empty`, Code.DataLoss);
  const col = new Map(header.fields.map((h, i) => [h.trim(), i]));
  const amountColumn = AMOUNT_COLUMNS.find((c) => col.has(c));
  for (const required of ["request_id", "response_id", "diff_type"]) {
    if (!col.has(required)) throw new ConnectError(`${name}: the header has no ${required} column`, Code.DataLoss);
  }
  if (!amountColumn) throw new ConnectError(`${name}: the header has no amount column (${AMOUNT_COLUMNS.join(", ")})`, Code.DataLoss);

  let start = header.end;
  if (from) {
    if (from.offset < header.end || !(await isRecordBoundary(path, from.offset))) {
      throw invalidField("page_token", "is not a token this service issued for this run and filter");
    }
    start = from.offset;
  }
  const rowOffset = from?.rowOffset ?? 0n;
  const wanted = req.diffTypes.length > 0 ? new Set(req.diffTypes) : undefined;
  const index = (c: string) => col.get(c) ?? -1;
  const iDiff = index("diff_type");
  const iSaler = index("saler_id");
  const rows: DiffRow[] = [];
  let next = "";
  for await (const r of csvRecordsFrom(path, start, signal)) {
    const f = r.fields;
    if (f.length === 1 && f[0] === "") continue; // a blank line
    const diffType = f[iDiff] ?? "";
    if (wanted && !wanted.has(diffType)) continue;
    if (req.salerId !== "" && (f[iSaler] ?? "") !== req.salerId) continue;
    if (rows.length === limit) {
      // One more matching row exists: the next page starts with it.
      next = encodeToken(tag, { offset: r.start, rowOffset: rowOffset + BigInt(rows.length) });
      break;
    }
    const at = (c: string) => f[index(c)] ?? "";
    const amount = fen(name, amountColumn, at(amountColumn));
    const hasSides = col.has("merchant_amount") && col.has("payment_amount");
    rows.push({
        $typeName: "recon.v1.DiffRow",
        orderType: req.orderType,
        diffType,
        requestId: at("request_id"),
        responseId: at("response_id"),
        salerId: at("saler_id"),
        amount,
        merchantAmount: hasSides ? fen(name, "merchant_amount", at("merchant_amount")) : diffType === "F113" ? 0n : amount,
        paymentAmount: hasSides ? fen(name, "payment_amount", at("payment_amount")) : diffType === "F114" ? 0n : amount,
        requestTime: at("request_time"),
        responseTime: at("response_time"),
      });
  }
  if (signal?.aborted) throw new ConnectError("the call was cancelled", Code.Canceled);
  return { rows, nextPageToken: next, rowOffset };
}
