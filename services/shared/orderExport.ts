/** What both order-keeping systems export for reconciliation. */
import { idPrefix } from "./time.js";

/** One successful order; amount is total_fee or withdraw_money, in fen. */
export interface ExportRow {
  requestId: string;
  responseId: string;
  salerId: string;
  amount: bigint;
  requestTime: string;
  responseTime: string;
}

/**
 * The largest response_id answered at or before a business time. Response ids start with their
 * response time, so "answered by the cut-off" is a range of the unique response_id index.
 */
export function lastIdAt(cutoffTime: string): string {
  return `${idPrefix(cutoffTime)}999999`;
}
