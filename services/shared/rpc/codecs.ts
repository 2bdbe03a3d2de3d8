/**
 * Messages written and read by a codec of their own instead of the reflective protobuf codec,
 * on both gRPC ends (grpcServer.ts, grpcClient.ts). Only the messages of a hot stream are here:
 * the order export sends every successful order of a period. Each codec gives the bytes and the
 * messages @bufbuild/protobuf gives (its tests compare them).
 */
import type { DescMessage } from "@bufbuild/protobuf";
import { ExportOrdersResponseSchema } from "../../../gen/order/v1/order_pb.js";
import { decodeExportOrdersResponse, encodeExportOrdersResponseMessage } from "../orders/exportCodec.js";

export interface MessageCodec {
  /** A message, or what create() takes for it, as bytes. */
  encode(message: unknown): Buffer;
  decode(bytes: Uint8Array): unknown;
}

const CODECS = new Map<string, MessageCodec>([
  [ExportOrdersResponseSchema.typeName, { encode: encodeExportOrdersResponseMessage, decode: decodeExportOrdersResponse }],
]);

export function codecOf(message: DescMessage): MessageCodec | undefined {
  return CODECS.get(message.typeName);
}
