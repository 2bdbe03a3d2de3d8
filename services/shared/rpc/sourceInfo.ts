/**
 * The proto comments and spans (SourceCodeInfo) of the served contracts, by file name, from the
 * gen/ `*_comments.ts` modules (scripts/protoc-gen-comments.ts). protoc-gen-es leaves them out of
 * the descriptors it embeds; server reflection puts them back.
 */
import { fromBinary } from "@bufbuild/protobuf";
import { SourceCodeInfoSchema, type SourceCodeInfo } from "@bufbuild/protobuf/wkt";
import { sourceInfo_payment_v1_payment } from "../../../gen/payment/v1/payment_comments.js";
import { sourceInfo_merchant_v1_merchant } from "../../../gen/merchant/v1/merchant_comments.js";
import { sourceInfo_recon_v1_recon } from "../../../gen/recon/v1/recon_comments.js";
import { sourceInfo_order_v1_order } from "../../../gen/order/v1/order_comments.js";

const ENCODED: readonly { file: string; base64: string }[] = [sourceInfo_payment_v1_payment, sourceInfo_merchant_v1_merchant, sourceInfo_recon_v1_recon, sourceInfo_order_v1_order];

const decoded = new Map<string, SourceCodeInfo | undefined>();

/** The SourceCodeInfo of a contract file, or undefined for a file without one. */
export function sourceCodeInfoOf(fileName: string): SourceCodeInfo | undefined {
  if (!decoded.has(fileName)) {
    const entry = ENCODED.find((e) => e.file === fileName);
    decoded.set(fileName, entry && entry.base64 !== "" ? fromBinary(SourceCodeInfoSchema, Buffer.from(entry.base64, "base64")) : undefined);
  }
  return decoded.get(fileName);
}
