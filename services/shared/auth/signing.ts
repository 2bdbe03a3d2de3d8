/**
 * Merchant request signatures, shared by the signing merchant and the verifying payment system.
 *
 * A signed call carries three headers (gRPC metadata or HTTP headers, so the JSON body stays the
 * message itself):
 *   x-merchant-id   the merchant's id
 *   x-signature     lowercase hex HMAC-SHA256(merchant key, canonical string)
 *   x-request-time  only for messages without a request_time field (QueryOrder): the business
 *                   time of the call, signed as if it were the field request_time
 *
 * The canonical string is every field of the request message (proto field names, default values
 * included, int64 as decimal, enums by name, nested values as their JSON) plus `merchant_id` and
 * `rpc` (the method path), sorted by name, written `name=value` and joined by `&`; each value is
 * percent-encoded as RFC 3986 asks (every UTF-8 byte outside A-Z a-z 0-9 - . _ ~ becomes %XX), so
 * no value can shift a field boundary. The seed's payment by merchant1 signs:
 *   merchant_id=merchant1&request_id=20190829171520123456&request_time=2019-08-29%2017%3A15%3A20
 *   &rpc=%2Fpayment.v1.PaymentService%2FPay&saler_id=saler2&total_fee=100      (one line)
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import { toJson, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { ConfigError } from "../errors.js";

export const MERCHANT_ID_HEADER = "x-merchant-id";
export const SIGNATURE_HEADER = "x-signature";
export const REQUEST_TIME_HEADER = "x-request-time";

const MERCHANT_ID = /^[A-Za-z0-9_-]{1,64}$/;
const MIN_KEY_BYTES = 16;

export interface MerchantCredentials {
  merchantId: string;
  key: Buffer;
}

/** RFC 3986 percent-encoding: only unreserved characters stay as they are. */
export function percentEncode(value: string): string {
  return encodeURIComponent(value).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

function fieldText(value: unknown): string {
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  return JSON.stringify(value ?? null);
}

/** True when the message type carries its own request_time field. */
export function hasRequestTime(schema: DescMessage): boolean {
  return schema.fields.some((f) => f.name === "request_time");
}

/** The string a merchant signs for one call. `requestTime` is used only when the message has none. */
export function canonicalString<Desc extends DescMessage>(
  rpc: string,
  merchantId: string,
  schema: Desc,
  message: MessageShape<Desc>,
  requestTime?: string,
): string {
  const json = toJson(schema, message, { useProtoFieldName: true, alwaysEmitImplicit: true }) as Record<string, unknown>;
  const fields = new Map<string, string>();
  for (const [name, value] of Object.entries(json)) fields.set(name, fieldText(value));
  if (!hasRequestTime(schema)) fields.set("request_time", requestTime ?? "");
  for (const name of ["merchant_id", "rpc"]) {
    if (fields.has(name)) throw new Error(`${schema.typeName} has a field ${name}, which the canonical string reserves`);
  }
  fields.set("merchant_id", merchantId);
  fields.set("rpc", rpc);
  return [...fields.keys()]
    .sort()
    .map((name) => `${name}=${percentEncode(fields.get(name)!)}`)
    .join("&");
}

export function signCanonical(key: Buffer, canonical: string): string {
  return createHmac("sha256", key).update(canonical, "utf8").digest("hex");
}

/** Headers that sign one call as the given merchant. */
export function signatureHeaders<Desc extends DescMessage>(
  credentials: MerchantCredentials,
  rpc: string,
  schema: Desc,
  message: MessageShape<Desc>,
  now: string,
): Record<string, string> {
  const own = hasRequestTime(schema);
  const canonical = canonicalString(rpc, credentials.merchantId, schema, message, own ? undefined : now);
  return {
    [MERCHANT_ID_HEADER]: credentials.merchantId,
    [SIGNATURE_HEADER]: signCanonical(credentials.key, canonical),
    ...(own ? {} : { [REQUEST_TIME_HEADER]: now }),
  };
}

function unauthenticated(message: string): ConnectError {
  return new ConnectError(message, Code.Unauthenticated);
}

/** Printable, bounded echo of a header value in an error message. */
function shown(value: string): string {
  const clean = value.replace(/[^\x20-\x7e]/g, "?");
  return clean.length > 64 ? `${clean.slice(0, 64)}…` : clean;
}

export interface VerifiedCall {
  merchantId: string;
  /** The signed request_time: the message's field, or the x-request-time header. */
  requestTime: string;
}

/**
 * Checks the signature headers of a call against the configured merchant keys; throws
 * UNAUTHENTICATED naming what is wrong. The canonical string is quoted on a mismatch: it holds
 * only what the caller sent, and shows an implementer what to sign.
 */
export function verifySignature<Desc extends DescMessage>(
  keys: ReadonlyMap<string, Buffer>,
  rpc: string,
  schema: Desc,
  message: MessageShape<Desc>,
  header: Headers,
): VerifiedCall {
  const merchantId = header.get(MERCHANT_ID_HEADER);
  if (merchantId === null || merchantId === "") {
    throw unauthenticated(`${MERCHANT_ID_HEADER} header is required: this payment system accepts signed requests from known merchants only`);
  }
  const key = keys.get(merchantId);
  if (!key) throw unauthenticated(`${MERCHANT_ID_HEADER}: unknown merchant "${shown(merchantId)}"`);
  const signature = header.get(SIGNATURE_HEADER);
  if (signature === null || signature === "") {
    throw unauthenticated(`${SIGNATURE_HEADER} header is required: hex HMAC-SHA256 of the canonical request under the merchant's key`);
  }
  if (!/^[0-9a-fA-F]{64}$/.test(signature)) {
    throw unauthenticated(`${SIGNATURE_HEADER}: must be 64 hex digits (HMAC-SHA256), got "${shown(signature)}"`);
  }
  let requestTime: string;
  const own = schema.fields.find((f) => f.name === "request_time");
  if (own) {
    requestTime = String((message as Record<string, unknown>)[own.localName] ?? "");
  } else {
    const t = header.get(REQUEST_TIME_HEADER);
    if (t === null || t === "") throw unauthenticated(`${REQUEST_TIME_HEADER} header is required on ${rpc}: the signed business time of the call`);
    requestTime = t;
  }
  const canonical = canonicalString(rpc, merchantId, schema, message, requestTime);
  const expected = Buffer.from(signCanonical(key, canonical), "hex");
  if (!timingSafeEqual(expected, Buffer.from(signature, "hex"))) {
    throw unauthenticated(`${SIGNATURE_HEADER}: does not match the request; the signed string must be: ${canonical.slice(0, 512)}`);
  }
  return { merchantId, requestTime };
}

/** A secret written as hex or base64, optionally prefixed "hex:" or "base64:". */
export function parseKey(variable: string, text: string): Buffer {
  let key: Buffer;
  if (text.startsWith("hex:") || (!text.startsWith("base64:") && /^([0-9a-fA-F]{2})+$/.test(text))) {
    const hex = text.replace(/^hex:/, "");
    if (!/^([0-9a-fA-F]{2})+$/.test(hex)) throw new ConfigError(variable, "a hex key must be an even number of hex digits");
    key = Buffer.from(hex, "hex");
  } else {
    const b64 = text.replace(/^base64:/, "");
    if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(b64)) throw new ConfigError(variable, "a key must be hex or base64");
    key = Buffer.from(b64, "base64");
  }
  if (key.length < MIN_KEY_BYTES) throw new ConfigError(variable, `a key must be at least ${MIN_KEY_BYTES} bytes (${MIN_KEY_BYTES * 2} hex digits)`);
  return key;
}

export function parseMerchantId(variable: string, id: string): string {
  if (!MERCHANT_ID.test(id)) throw new ConfigError(variable, `merchant id must be 1 to 64 characters of A-Z a-z 0-9 _ -, got "${shown(id)}"`);
  return id;
}

/** "merchant1:<key>,merchant2:<key>" → id → key. */
export function parseMerchantKeys(variable: string, text: string): Map<string, Buffer> {
  const keys = new Map<string, Buffer>();
  for (const entry of text.split(",").map((e) => e.trim()).filter((e) => e !== "")) {
    const colon = entry.indexOf(":");
    if (colon <= 0) throw new ConfigError(variable, "must be merchant_id:key pairs separated by commas");
    const id = parseMerchantId(variable, entry.slice(0, colon));
    if (keys.has(id)) throw new ConfigError(variable, `merchant ${id} is listed twice`);
    keys.set(id, parseKey(variable, entry.slice(colon + 1)));
  }
  if (keys.size === 0) throw new ConfigError(variable, "lists no merchant");
  return keys;
}
