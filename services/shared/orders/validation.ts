import { invalidField } from "../errors.js";
import { idPrefix, isBusinessTime } from "./time.js";
import { ORDER_ID_PATTERN } from "./ids.js";

/** The largest amount one order may carry: 10^12 fen (ten billion yuan). */
export const MAX_AMOUNT = 1_000_000_000_000n;
const SALER_ID = /^[A-Za-z0-9_-]{1,64}$/;

export function requireSalerId(field: string, value: string): void {
  if (value === "") throw invalidField(field, "is required");
  if (!SALER_ID.test(value)) throw invalidField(field, "must be 1 to 64 characters of A-Z a-z 0-9 _ -");
}

export function requireAmount(field: string, value: bigint): void {
  if (value <= 0n) throw invalidField(field, `must be a positive integer number of fen, got ${value}`);
  if (value > MAX_AMOUNT) throw invalidField(field, `must be at most ${MAX_AMOUNT} fen, got ${value}`);
}

export function requireBusinessTime(field: string, value: string): void {
  if (value === "") throw invalidField(field, "is required");
  if (!isBusinessTime(value)) throw invalidField(field, 'must be a real time written "yyyy-MM-dd HH:mm:ss"');
}

/** The earliest request_time accepted: no order of this system predates it. */
export const EARLIEST_REQUEST_TIME = "2000-01-01 00:00:00";

/**
 * A request_time (already a well-formed business time) between EARLIEST_REQUEST_TIME and
 * `latest`, the receiving system's business time plus the clock skew it tolerates. Business times
 * of one zone compare as text.
 */
export function requireRequestTimeInRange(field: string, value: string, latest: string): void {
  if (value < EARLIEST_REQUEST_TIME) throw invalidField(field, `must not be before ${EARLIEST_REQUEST_TIME}, got ${value}`);
  if (value > latest) throw invalidField(field, `must not be later than the payment system's clock allows (${latest}), got ${value}`);
}

/** Optional cut-off: empty or a business time. */
export function optionalBusinessTime(field: string, value: string): void {
  if (value !== "" && !isBusinessTime(value)) {
    throw invalidField(field, 'must be empty or a real time written "yyyy-MM-dd HH:mm:ss"');
  }
}

/** A request id: 20 digits whose first 14 equal the request time. */
export function requireRequestId(field: string, value: string, requestTime: string): void {
  if (value === "") throw invalidField(field, "is required");
  if (!ORDER_ID_PATTERN.test(value)) throw invalidField(field, "must be exactly 20 digits");
  if (isBusinessTime(requestTime) && value.slice(0, 14) !== idPrefix(requestTime)) {
    throw invalidField(field, `must start with request_time as yyyyMMddHHmmss (${idPrefix(requestTime)})`);
  }
}

export function requireOrderId(field: string, value: string): void {
  if (value === "") throw invalidField(field, "is required");
  if (!ORDER_ID_PATTERN.test(value)) throw invalidField(field, "must be exactly 20 digits");
}

/** Page size within [1, max], 0 meaning the default. */
export function pageSize(field: string, value: number, fallback: number, max: number): number {
  if (value < 0 || value > max) throw invalidField(field, `must be between 0 and ${max}`);
  return value === 0 ? fallback : value;
}
