/** How the commands print: JSON with the proto field names, business times with their zone, names of enum values. */
import { toJson, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { formatDuration } from "../progress.js";
import { OrderType, OrderKey } from "../../../gen/order/v1/order_pb.js";

const JSON_OPTIONS = { useProtoFieldName: true, alwaysEmitImplicit: true } as const;

/** The zone of the services' business times, shown next to every time printed. */
const ZONE = process.env.BUSINESS_TIME_ZONE || "Asia/Shanghai";
export const zoned = (label: string) => `${label} (${ZONE})`;

export function json<Desc extends DescMessage>(schema: Desc, message: MessageShape<Desc>): unknown {
  return toJson(schema, message, JSON_OPTIONS);
}

export const orderTypeName = (t: OrderType) =>
  t === OrderType.PAYMENT ? "payment" : t === OrderType.WITHDRAWAL ? "withdrawal" : t === OrderType.REFUND ? "refund" : "-";
export const keyName = (k: OrderKey) => (k === OrderKey.REQUEST_ID ? "request_id" : "response_id");
export const ms = (n: bigint | number) => formatDuration(Number(n) / 1000).replace(/^0s$/, `${Number(n)}ms`);
