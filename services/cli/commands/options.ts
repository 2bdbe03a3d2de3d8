/** What every paycli command takes and gives, and the parsing of its options into values. */
import { readFile } from "node:fs/promises";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { type CsvSourceSchema } from "../../../gen/recon/v1/recon_pb.js";
import { UsageError, type Services } from "../clients.js";
import { OrderType, OrderKey } from "../../../gen/order/v1/order_pb.js";

export type OptionValues = Record<string, string | boolean | undefined>;

export interface CommandContext {
  services: Services;
  values: OptionValues;
  positionals: string[];
  /** Progress output (stderr) wanted. */
  progress: boolean;
}

export interface Output {
  text: string;
  json: unknown;
  exitCode: number;
}

export function str(values: OptionValues, name: string): string | undefined {
  const v = values[name];
  return typeof v === "string" ? v : undefined;
}

export function required(values: OptionValues, name: string): string {
  const v = str(values, name);
  if (v === undefined || v === "") throw new UsageError(`--${name} is required`);
  return v;
}

export function intOption(values: OptionValues, name: string, fallback: number, min: number, max: number): number {
  const raw = str(values, name);
  if (raw === undefined) return fallback;
  if (!/^\d+$/.test(raw)) throw new UsageError(`--${name} must be a whole number, got "${raw}"`);
  const n = Number(raw);
  if (n < min || n > max) throw new UsageError(`--${name} must be between ${min} and ${max}, got ${n}`);
  return n;
}

/** Money and seeds: integers that may not fit a double, so read as bigint. */
export function bigintOption(values: OptionValues, name: string, fallback: bigint | undefined, min: bigint, max: bigint): bigint | undefined {
  const raw = str(values, name);
  if (raw === undefined) return fallback;
  if (!/^\d+$/.test(raw)) throw new UsageError(`--${name} must be a whole number of fen, got "${raw}"`);
  const n = BigInt(raw);
  if (n < min || n > max) throw new UsageError(`--${name} must be between ${min} and ${max}, got ${n}`);
  return n;
}

export function requiredAmount(values: OptionValues, name: string): bigint {
  const v = bigintOption(values, name, undefined, 1n, 1_000_000_000_000n);
  if (v === undefined) throw new UsageError(`--${name} is required (an integer number of fen)`);
  return v;
}

export type OrderTypeName = "payment" | "withdrawal" | "refund";
export const ORDER_TYPES: Record<OrderTypeName, OrderType> = {
  payment: OrderType.PAYMENT,
  withdrawal: OrderType.WITHDRAWAL,
  refund: OrderType.REFUND,
};

export function orderTypeOption(values: OptionValues, name: string): OrderTypeName | undefined {
  const raw = str(values, name);
  if (raw === undefined) return undefined;
  const t = raw.toLowerCase().replace(/s$/, "");
  if (!Object.hasOwn(ORDER_TYPES, t)) throw new UsageError(`--${name} must be payment, withdrawal or refund, got "${raw}"`);
  return t as OrderTypeName;
}

export function keyOption(values: OptionValues): OrderKey {
  const raw = str(values, "key") ?? "response_id";
  if (raw === "response_id") return OrderKey.RESPONSE_ID;
  if (raw === "request_id") return OrderKey.REQUEST_ID;
  throw new UsageError(`--key must be response_id or request_id, got "${raw}"`);
}

export function cutoffOption(values: OptionValues): string {
  const raw = str(values, "cutoff") ?? "";
  if (raw !== "" && !/^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/.test(raw)) {
    throw new UsageError(`--cutoff must be "yyyy-MM-dd HH:mm:ss", got "${raw}"`);
  }
  return raw;
}

export async function csvSource(values: OptionValues, name: string): Promise<MessageInitShape<typeof CsvSourceSchema> | undefined> {
  const path = str(values, name);
  if (path === undefined) return undefined;
  try {
    // Sent as content, so the file need not be readable by the reconciliation service.
    return { source: { case: "content", value: await readFile(path, "utf8") } };
  } catch (err) {
    throw new UsageError(`--${name}: cannot read ${path} (${(err as Error).message})`);
  }
}

