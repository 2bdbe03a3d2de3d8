/**
 * Seeded generators of malformed requests for every RPC of the three services and of the order
 * export they share (order.v1.OrderExportService): JSON bodies for
 * the Connect gateway and raw protobuf bytes for gRPC. Every generated request is invalid by
 * construction (it cannot decode, or one field breaks a rule the service documents), so the only
 * right answer is an error: INVALID_ARGUMENT, or RESOURCE_EXHAUSTED when it is over the size limit.
 */
import { fromJson, ScalarType, toBinary, type DescField, type DescMessage, type DescMethod, type DescService, type JsonObject, type JsonValue } from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { PaymentService } from "../../gen/payment/v1/payment_pb.js";
import { MerchantService } from "../../gen/merchant/v1/merchant_pb.js";
import { ReconService } from "../../gen/recon/v1/recon_pb.js";
import { OrderExportService } from "../../gen/order/v1/order_pb.js";
import { BusinessClock, idPrefix } from "../../services/shared/orders/time.js";
import { seededRng, type Rng } from "../support/random.js";

export const SERVICES: DescService[] = [PaymentService, MerchantService, ReconService, OrderExportService];

const pick = <T>(rng: Rng, items: readonly T[]): T => items[Math.floor(rng() * items.length)]!;
const between = (rng: Rng, min: number, max: number) => min + Math.floor(rng() * (max - min + 1));

/** Connect code names; "unimplemented" only for broken gRPC framing, which grpc-js answers itself. */
export type Expected = "invalid_argument" | "resource_exhausted" | "unimplemented";

export interface MalformedCase {
  rpc: string;
  service: DescService;
  method: DescMethod;
  /** What was done to the request, for the tallies and for failure reports. */
  kind: string;
  /** JSON body (gateway) or protobuf bytes (gRPC). */
  body: Uint8Array;
  expected: Expected;
}

const REMOVE = Symbol("remove the field");
type Bad = JsonValue | typeof REMOVE;

const BAD_SALER: Bad[] = ["", "a b", "中文账户", "x".repeat(65), "y".repeat(10_000), "a/b", "a.b", "'; DROP TABLE accounts; --", "\u0000", "😀", "é", "saler\n1"];
const BAD_TIME: Bad[] = [
  "",
  "2019-13-01 00:00:00",
  "2019-02-29 10:00:00",
  "2019-08-29T17:15:20",
  "2019-08-29 17:15:60",
  "2019-08-29 24:00:00",
  "2019-8-29 17:15:20",
  "1969-12-31 23:59:59",
  "２０１９-08-29 17:15:20",
  "yesterday",
  "2019-08-29 17:15:20 ",
  "t".repeat(5000),
  "0000-00-00 00:00:00",
];
const BAD_CUTOFF = BAD_TIME.filter((t) => t !== ""); // an empty cut-off is allowed
const BAD_ORDER_ID: Bad[] = ["", "1".repeat(19), "1".repeat(21), "2019082917152012345a", "-2019082917152012345", " 2019082917152012345", "２０１９０８２９１７１５２０１２３４５６", "1' OR '1'='1", "9".repeat(10_000)];
/**
 * Integers written in JSON in a notation other than plain decimal. protobuf-es reads them (BigInt()
 * and Number() take "0x10" as 16), so they cannot be carried by protobuf: JSON-only damage.
 */
export const NOT_DECIMAL: string[] = ["0x10", "0X1F", "0b11", "0B1", "0o17", "0O7", " 100", "100 ", "\t100", "100\n", "\n100", "+100", "0100", "00", "1E3", "1e2"];
const BAD_AMOUNT: Bad[] = [
  "0", 0, "-0", "-1", -1, "-100", "-9223372036854775808", "1000000000001", "9223372036854775807",
  "1.5", 1.5, "100.01", 0.5, "abc", "", "1e3", 1e30, "1e30", "9223372036854775808", "-9223372036854775809",
  true, false, {}, [], ["100"], "１００", "NaN", "Infinity", "十", REMOVE,
  ...NOT_DECIMAL, ...NOT_DECIMAL,
];
// Not "1e3": proto3 JSON reads exponent notation, and 1000 is a page size.
const BAD_PAGE_SIZE: Bad[] = [-1, 1001, 2147483647, -2147483648, "abc", 1.5, 2147483648, true, "1e4", "0x10", " 10", "010", "0b1"];
const BAD_RUN_ID: Bad[] = ["", "x", "../../etc/passwd", "20190829171520000-recon-zzzz/..", "r".repeat(5000), "中文", "20190829171520000-bogus-0000"];
const BAD_ENUM: Bad[] = ["NOPE", 1.5, true, {}, "ORDER_TYPE_payment"];

const CSV_ORDERS = "request_id,response_id,saler_id,total_fee\n20190829171520123456,20190829171521000001,saler1,100\n";
const BAD_CSV_SOURCE: Bad[] = [
  REMOVE,
  {},
  { path: "../../../etc/passwd" },
  { path: "/etc/passwd" },
  { path: "missing.csv" },
  { content: "no,header\n1,2\n" },
  { content: "request_id,response_id,saler_id,total_fee\n20190829171520123456,20190829171521000001,s1,1.5\n" },
  { path: "a.csv", content: "both" },
  "x",
  5,
];

interface MethodTable {
  /** A well-formed request that is valid apart from the one field each case breaks. */
  base(): JsonObject;
  /** Field → values of which each alone makes the request invalid. */
  invalid: Record<string, Bad[]>;
  /** Whole-request changes that are invalid together. */
  combos?: JsonObject[];
  /** Top-level string fields whose validation refuses any text but their own format. */
  strict: string[];
}

function orderIdentity(clock: BusinessClock, rng: Rng): { request_time: string; request_id: string } {
  const t = clock.current();
  return { request_time: t, request_id: `${idPrefix(t)}${String(between(rng, 0, 999_999)).padStart(6, "0")}` };
}

function tables(clock: BusinessClock, rng: Rng): Record<string, MethodTable> {
  const pay = (amount: string): MethodTable => ({
    base: () => ({ ...orderIdentity(clock, rng), saler_id: "fuzz1", [amount]: "100" }),
    invalid: {
      // Well-formed times outside the accepted range: before 2000, or far ahead of the clock.
      request_time: [...BAD_TIME, REMOVE, "9999-12-31 23:59:59", "1970-01-01 00:00:00", "1999-12-31 23:59:59"],
      request_id: [...BAD_ORDER_ID, REMOVE, "19700101000000123456"],
      saler_id: [...BAD_SALER, REMOVE],
      [amount]: BAD_AMOUNT,
    },
    strict: ["request_time", "request_id", "saler_id"],
  });
  return {
    "payment.v1.PaymentService/Pay": pay("total_fee"),
    "payment.v1.PaymentService/Withdraw": pay("withdraw_money"),
    "payment.v1.PaymentService/QueryOrder": {
      base: () => ({ request_id: orderIdentity(clock, rng).request_id, order_type: "ORDER_TYPE_PAYMENT" }),
      invalid: { request_id: [...BAD_ORDER_ID, REMOVE], order_type: BAD_ENUM },
      strict: ["request_id"],
    },
    "payment.v1.PaymentService/Refund": {
      base: () => ({ ...orderIdentity(clock, rng), saler_id: "fuzz1", payment_response_id: orderIdentity(clock, rng).request_id, refund_fee: "100" }),
      invalid: {
        request_time: [...BAD_TIME, REMOVE, "9999-12-31 23:59:59", "1999-12-31 23:59:59"],
        request_id: [...BAD_ORDER_ID, REMOVE],
        saler_id: [...BAD_SALER, REMOVE],
        payment_response_id: [...BAD_ORDER_ID, REMOVE],
        refund_fee: BAD_AMOUNT,
      },
      strict: ["request_time", "request_id", "saler_id", "payment_response_id"],
    },
    "payment.v1.PaymentService/CloseOrder": {
      base: () => ({ request_id: orderIdentity(clock, rng).request_id, order_type: "ORDER_TYPE_PAYMENT" }),
      invalid: { request_id: [...BAD_ORDER_ID, REMOVE], order_type: ["ORDER_TYPE_UNSPECIFIED", 0, REMOVE, ...BAD_ENUM] },
      strict: ["request_id"],
    },
    "payment.v1.PaymentService/GetBalance": { base: () => ({ saler_id: "fuzz1" }), invalid: { saler_id: [...BAD_SALER, REMOVE] }, strict: ["saler_id"] },
    "payment.v1.PaymentService/ListAccounts": {
      base: () => ({ page_size: 10, page_token: "fuzz1" }),
      invalid: { page_size: BAD_PAGE_SIZE, page_token: BAD_SALER.filter((s) => s !== "") },
      strict: ["page_token"],
    },
    "payment.v1.PaymentService/Settle": { base: () => ({ full_sweep: false }), invalid: { full_sweep: ["yes", 1, 0, "true", {}, []] }, strict: [] },
    "payment.v1.PaymentService/ExportBalances": { base: () => ({ cutoff_time: "2019-08-29 17:15:20" }), invalid: { cutoff_time: BAD_CUTOFF }, strict: ["cutoff_time"] },

    "merchant.v1.MerchantService/Pay": {
      base: () => ({ saler_id: "fuzz1", total_fee: "100" }),
      invalid: { saler_id: [...BAD_SALER, REMOVE], total_fee: BAD_AMOUNT },
      strict: ["saler_id"],
    },
    "merchant.v1.MerchantService/Withdraw": {
      base: () => ({ saler_id: "fuzz1", withdraw_money: "100" }),
      invalid: { saler_id: [...BAD_SALER, REMOVE], withdraw_money: BAD_AMOUNT },
      strict: ["saler_id"],
    },
    "merchant.v1.MerchantService/Refund": {
      base: () => ({ payment_request_id: orderIdentity(clock, rng).request_id, refund_fee: "100" }),
      invalid: { payment_request_id: [...BAD_ORDER_ID, REMOVE], refund_fee: BAD_AMOUNT },
      strict: ["payment_request_id"],
    },
    "merchant.v1.MerchantService/GetOrder": { base: () => ({ request_id: orderIdentity(clock, rng).request_id }), invalid: { request_id: [...BAD_ORDER_ID, REMOVE] }, strict: ["request_id"] },
    "merchant.v1.MerchantService/ListOrders": {
      base: () => ({ order_type: "ORDER_TYPE_PAYMENT", state: "SUCCESS", saler_id: "fuzz1", page_size: 10, page_token: "12" }),
      invalid: {
        page_size: BAD_PAGE_SIZE,
        state: ["BOGUS", "success", "中文", "s".repeat(5000), 5],
        saler_id: BAD_SALER.filter((s) => s !== ""),
        page_token: ["abc", "-1", "1".repeat(20), "1 2", "١٢"],
        order_type: BAD_ENUM,
      },
      strict: ["state", "saler_id", "page_token"],
    },
    "merchant.v1.MerchantService/ResolveUnknownOrders": {
      base: () => ({ init_older_than_seconds: 30 }),
      invalid: { init_older_than_seconds: [-1, -2147483648, "abc", 1.5, 2147483648, true] },
      strict: [],
    },
    "merchant.v1.MerchantService/Simulate": {
      base: () => ({ order_type: "ORDER_TYPE_PAYMENT", count: 10, concurrency: 2, accounts: 2, account_prefix: "fz", min_amount: "1", max_amount: "10", seed: "1" }),
      invalid: {
        count: [0, -1, 1_000_001, -2147483648, REMOVE, "abc", 1.5],
        concurrency: [-1, 1025, 2.5],
        accounts: [-1, 100_001],
        account_prefix: ["a b", "中文", "p".repeat(51), "a/b", "\u0000", "😀"],
        min_amount: ["-1", "1000000000001", 1.5, "0x1", " 1", "01"],
        max_amount: ["-5", "1000000000001", "0.5", "0x10", "10 ", "0o7", "1e1"],
        faults: [{ lost_responses: -1 }, { lost_responses: 11 }, { tampered_amounts: -3 }, { merchant_only: 11 }, { lost_responses: 5, tampered_amounts: 5, merchant_only: 1 }, "x", 5],
        order_type: BAD_ENUM,
        seed: ["abc", 1.5, "0x1", " 1", "0b1"],
      },
      combos: [{ min_amount: "10", max_amount: "5" }],
      strict: ["account_prefix"],
    },
    "merchant.v1.MerchantService/CountOrders": { base: () => ({ order_type: "ORDER_TYPE_PAYMENT" }), invalid: { order_type: BAD_ENUM }, strict: [] },
    "order.v1.OrderExportService/ExportOrders": {
      base: () => ({ order_type: "ORDER_TYPE_PAYMENT", key: "ORDER_KEY_RESPONSE_ID", cutoff_time: "2019-08-29 17:15:20" }),
      invalid: { order_type: ["ORDER_TYPE_UNSPECIFIED", 0, REMOVE, ...BAD_ENUM], key: BAD_ENUM, cutoff_time: BAD_CUTOFF },
      strict: ["cutoff_time"],
    },

    "recon.v1.ReconService/Reconcile": {
      base: () => ({ key: "ORDER_KEY_RESPONSE_ID", cutoff_time: "2019-08-29 17:15:20", resolve_unknown: false }),
      invalid: { cutoff_time: BAD_CUTOFF, key: BAD_ENUM, resolve_unknown: ["yes", 1] },
      strict: ["cutoff_time"],
    },
    "recon.v1.ReconService/ReconcileFiles": {
      base: () => ({ order_type: "ORDER_TYPE_PAYMENT", key: "ORDER_KEY_RESPONSE_ID", merchant: { content: CSV_ORDERS }, payment: { content: CSV_ORDERS } }),
      invalid: { order_type: ["ORDER_TYPE_UNSPECIFIED", REMOVE, ...BAD_ENUM], merchant: BAD_CSV_SOURCE, payment: BAD_CSV_SOURCE },
      strict: [],
    },
    "recon.v1.ReconService/Audit": {
      base: () => ({ cutoff_time: "2019-08-29 17:15:20", resolve_unknown: false }),
      invalid: { cutoff_time: BAD_CUTOFF, resolve_unknown: ["x", 1] },
      strict: ["cutoff_time"],
    },
    "recon.v1.ReconService/AuditFiles": {
      base: () => ({
        merchant_payments: { content: "saler_id,total_fee\nsaler1,10\n" },
        merchant_withdrawals: { content: "saler_id,withdraw_money\n" },
        balances: { content: "saler_id,balance\nsaler1,10\n" },
      }),
      invalid: {
        merchant_payments: [...BAD_CSV_SOURCE, { content: "saler_id,total_fee\ns1,abc\n" }],
        merchant_withdrawals: [...BAD_CSV_SOURCE, { content: "saler_id,withdraw_money\ns1,-\n" }],
        balances: [...BAD_CSV_SOURCE, { content: "saler_id,balance\ns1,1.5\n" }],
      },
      strict: [],
    },
    "recon.v1.ReconService/ListRuns": {
      base: () => ({ kind: "RUN_KIND_UNSPECIFIED", page_size: 10, page_token: "" }),
      invalid: { page_size: BAD_PAGE_SIZE, page_token: ["abc", "../x", "中文"], kind: BAD_ENUM },
      strict: ["page_token"],
    },
    "recon.v1.ReconService/GetRun": { base: () => ({ run_id: "x" }), invalid: { run_id: BAD_RUN_ID }, strict: ["run_id"] },
    "recon.v1.ReconService/StreamDiffRows": {
      base: () => ({ run_id: "x", diff_type: "F000" }),
      invalid: { run_id: BAD_RUN_ID, order_type: BAD_ENUM },
      strict: ["run_id"],
    },
    "recon.v1.ReconService/StreamAuditRows": { base: () => ({ run_id: "x", result: "FAIL" }), invalid: { run_id: BAD_RUN_ID }, strict: ["run_id"] },
    "recon.v1.ReconService/ListDiffRows": {
      base: () => ({ run_id: "x", order_type: "ORDER_TYPE_PAYMENT", diff_types: ["F113"], saler_id: "saler1", page_size: 10, page_token: "" }),
      invalid: { run_id: BAD_RUN_ID, order_type: BAD_ENUM, page_size: BAD_PAGE_SIZE, diff_types: [["F999"], ["f113"], [""]], page_token: ["abc", "../x", "中文"] },
      strict: ["run_id"],
    },
  };
}

/** JSON values that cannot decode into the field, whatever it means. */
function wrongTypes(field: DescField): JsonValue[] {
  if (field.fieldKind === "message") return [5, "x", true, [], [{}]];
  if (field.fieldKind === "enum") return ["NOPE", 1.5, true, {}, [], "1"];
  if (field.fieldKind === "list" || field.fieldKind === "map") return ["x", 5, true];
  switch (field.scalar) {
    case ScalarType.STRING:
      return [5, -1, 1.5, true, false, {}, [], ["x"], { a: 1 }];
    case ScalarType.BOOL:
      return ["true", "yes", 1, 0, {}, [], "false"];
    case ScalarType.INT64:
    case ScalarType.UINT64:
    case ScalarType.SINT64:
      return [true, {}, [], "abc", "1.5", 1.5, "1e3", 1e30, "9223372036854775808", "", "١٢", "NaN", "1_000", ...NOT_DECIMAL];
    default:
      return [true, {}, [], "abc", 1.5, "1.5", 2147483648, -2147483649, "", "NaN", 1e30, ...NOT_DECIMAL];
  }
}

const encoder = new TextEncoder();
/** Byte sequences that are never valid UTF-8. */
const INVALID_UTF8: number[][] = [[0xff], [0xfe, 0xff], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0x80], [0xe2, 0x82], [0xf8, 0x88, 0x80, 0x80, 0x80], [0xc3]];
const NON_ASCII = ["支付宝", "账户", "😀", "é", "Ω", "\u200b", "\u202e", "ｓａｌｅｒ"];

function withValue(base: JsonObject, field: string, value: Bad): JsonObject {
  const copy: JsonObject = { ...base };
  if (value === REMOVE) delete copy[field];
  else copy[field] = value;
  return copy;
}

/** The JSON text of `obj` with the marker string replaced by raw bytes. */
function jsonWithBytes(obj: JsonObject, marker: string, bytes: number[]): Uint8Array {
  const text = JSON.stringify(obj);
  const at = text.indexOf(marker);
  const before = encoder.encode(text.slice(0, at));
  const after = encoder.encode(text.slice(at + marker.length));
  return Uint8Array.from([...before, ...bytes, ...after]);
}

const MARKER = "@@MARK@@";

export class MalformedRequests {
  private readonly tables: Record<string, MethodTable>;
  private readonly methods: { service: DescService; method: DescMethod; rpc: string; table: MethodTable }[] = [];

  constructor(
    private readonly rng: Rng,
    /** The servers' MAX_MESSAGE_BYTES. */
    private readonly maxMessageBytes: number,
    clock = new BusinessClock("Asia/Shanghai"),
  ) {
    this.tables = tables(clock, rng);
    for (const service of SERVICES) {
      for (const method of service.methods) {
        const rpc = `${service.typeName}/${method.name}`;
        const table = this.tables[rpc];
        if (!table) throw new Error(`no malformed-request table for ${rpc}`);
        this.methods.push({ service, method, rpc: `/${rpc}`, table });
      }
    }
  }

  /** Every RPC of every service, so a run can be checked to have covered them all. */
  get rpcs(): string[] {
    return this.methods.map((m) => m.rpc);
  }

  /** `jsonOnly`: an integer written as a string that is not plain decimal, which protobuf cannot carry. */
  private semantic(table: MethodTable, schema: DescMessage): { kind: string; obj: JsonObject; jsonOnly: boolean } {
    const combos = table.combos ?? [];
    const fields = Object.keys(table.invalid);
    if (combos.length > 0 && this.rng() < 0.1) return { kind: "invalid combination", obj: { ...table.base(), ...pick(this.rng, combos) }, jsonOnly: false };
    const field = pick(this.rng, fields);
    const value = pick(this.rng, table.invalid[field]!);
    const desc = schema.fields.find((f) => f.name === field);
    const integer = desc?.fieldKind === "scalar" && ![ScalarType.STRING, ScalarType.BYTES, ScalarType.BOOL, ScalarType.DOUBLE, ScalarType.FLOAT].includes(desc.scalar);
    const jsonOnly = integer && typeof value === "string" && !/^-?(0|[1-9][0-9]*)$/.test(value);
    return { kind: value === REMOVE ? `missing ${field}` : jsonOnly ? `${field} not in decimal` : `bad ${field}`, obj: withValue(table.base(), field, value), jsonOnly };
  }

  private oversize(): number {
    return this.maxMessageBytes + between(this.rng, 1, Math.max(1, this.maxMessageBytes >> 2));
  }

  /** One malformed JSON body for the Connect gateway. */
  json(): MalformedCase {
    const m = pick(this.rng, this.methods);
    const { table, method } = m;
    const r = this.rng();
    const done = (kind: string, body: Uint8Array | string, expected: Expected = "invalid_argument"): MalformedCase => ({
      rpc: m.rpc,
      service: m.service,
      method,
      kind,
      body: typeof body === "string" ? encoder.encode(body) : body,
      expected,
    });
    if (r < 0.35) {
      const { kind, obj } = this.semantic(table, method.input);
      return done(kind, JSON.stringify(obj));
    }
    if (r < 0.5) {
      const field = pick(this.rng, method.input.fields);
      return done(`wrong type for ${field.name}`, JSON.stringify({ ...table.base(), [field.name]: pick(this.rng, wrongTypes(field)) }));
    }
    if (r < 0.57) {
      const name = pick(this.rng, ["refund_to", "x", "SalerId", "__proto__", "total-fee", "request_ids", "$typeName"]);
      return done("unknown field", JSON.stringify({ ...table.base(), [name]: pick(this.rng, [1, "x", null, {}, []]) }));
    }
    if (r < 0.67) {
      const text = JSON.stringify(table.base());
      return done("truncated JSON", text.slice(0, between(this.rng, 0, text.length - 1)));
    }
    if (r < 0.72) {
      return done("not a JSON object", pick(this.rng, ["[]", "[1,2]", '"x"', "1", "true", "null", "{}}", '{"a":}', "{,}", "{'a':1}", '{"a" 1}', "\u0000", "{"]));
    }
    if (r < 0.77) {
      // Raw bytes between tokens: never JSON, whatever they decode to.
      const text = JSON.stringify(table.base());
      const bytes = encoder.encode(text);
      const bad = pick(this.rng, INVALID_UTF8);
      return done("invalid UTF-8 between tokens", Uint8Array.from([...bytes.subarray(0, 1), ...bad, ...bytes.subarray(1)]));
    }
    if (table.strict.length > 0 && r < 0.9) {
      const field = pick(this.rng, table.strict);
      const which = this.rng();
      if (which < 0.4) {
        return done(`invalid UTF-8 in ${field}`, jsonWithBytes(withValue(table.base(), field, `ab${MARKER}`), MARKER, pick(this.rng, INVALID_UTF8)));
      }
      if (which < 0.7) {
        return done(`non-ASCII ${field}`, JSON.stringify(withValue(table.base(), field, `${pick(this.rng, NON_ASCII)}${this.rng() < 0.5 ? "1" : ""}`)));
      }
      const length = between(this.rng, 100, Math.floor(this.maxMessageBytes / 8));
      return done(`over-long ${field}`, JSON.stringify(withValue(table.base(), field, pick(this.rng, ["a", "9", "中"]).repeat(length))));
    }
    if (r < 0.95) {
      const field = pick(this.rng, method.input.fields);
      return done(`wrong type for ${field.name}`, JSON.stringify({ ...table.base(), [field.name]: pick(this.rng, wrongTypes(field)) }));
    }
    return this.oversizedJson(m);
  }

  /** A JSON body over the size limit (a string field padded past it). */
  oversizedJson(m = pick(this.rng, this.methods)): MalformedCase {
    const target = m.table.strict[0] ?? "padding";
    const body = encoder.encode(JSON.stringify({ ...m.table.base(), [target]: "z".repeat(this.oversize()) }));
    return { rpc: m.rpc, service: m.service, method: m.method, kind: "oversized body", body, expected: "resource_exhausted" };
  }

  /** A protobuf message over the size limit. */
  oversizedBinary(m = pick(this.rng, this.methods)): MalformedCase {
    return { rpc: m.rpc, service: m.service, method: m.method, kind: "oversized message", body: new Uint8Array(this.oversize()).fill(0x0a), expected: "resource_exhausted" };
  }

  /** One malformed protobuf body for gRPC. */
  binary(): MalformedCase {
    const m = pick(this.rng, this.methods);
    const { table, method } = m;
    const schema = method.input;
    const done = (kind: string, body: Uint8Array, expected: Expected = "invalid_argument"): MalformedCase => ({ rpc: m.rpc, service: m.service, method, kind, body, expected });
    const baseBytes = () => toBinary(schema, fromJson(schema, table.base()));
    const append = (extra: (w: BinaryWriter) => void) => {
      const w = new BinaryWriter();
      extra(w);
      return Uint8Array.from([...baseBytes(), ...w.finish()]);
    };
    const r = this.rng();
    if (r < 0.3) {
      // A broken rule that protobuf can carry (a JSON-only one such as 1.5 is drawn again).
      for (let i = 0; i < 20; i++) {
        const { kind, obj, jsonOnly } = this.semantic(table, schema);
        if (jsonOnly) continue;
        try {
          return done(kind, toBinary(schema, fromJson(schema, obj)));
        } catch {
          continue;
        }
      }
    }
    if (r < 0.42) {
      const no = this.rng() < 0.7 ? pick(this.rng, schema.fields).number : between(this.rng, 100, 5000);
      const declared = between(this.rng, 2, 300);
      return done("truncated length-delimited field", append((w) => {
        w.tag(no, WireType.LengthDelimited).uint32(declared);
        w.raw(new Uint8Array(between(this.rng, 0, declared - 1)).map(() => between(this.rng, 0, 255)));
      }));
    }
    if (r < 0.47) {
      return done("truncated varint", Uint8Array.from([...baseBytes(), (pick(this.rng, schema.fields).number << 3) | WireType.Varint, 0x80 | between(this.rng, 0, 127)]));
    }
    if (r < 0.57) {
      // First tag is field 0 or wire type 6/7: illegal whatever follows.
      const first = pick(this.rng, [0x00, 0x06, 0x07, (between(this.rng, 1, 15) << 3) | 6, (between(this.rng, 1, 15) << 3) | 7]);
      const rest = new Uint8Array(between(this.rng, 0, 512)).map(() => between(this.rng, 0, 255));
      return done("garbage", Uint8Array.from([first, ...rest]));
    }
    if (r < 0.7) {
      const field = pick(this.rng, schema.fields);
      const allowed = expectedWireTypes(field);
      const wrong = [WireType.Varint, WireType.Bit64, WireType.LengthDelimited, WireType.Bit32].filter((t) => !allowed.includes(t));
      const t = pick(this.rng, wrong);
      return done(`wrong wire type for ${field.name}`, append((w) => {
        w.tag(field.number, t);
        if (t === WireType.Varint) w.uint64(between(this.rng, 0, 1_000_000));
        else if (t === WireType.Bit64) w.fixed64(between(this.rng, 0, 1_000_000));
        else if (t === WireType.Bit32) w.fixed32(between(this.rng, 0, 1_000_000));
        else w.bytes(encoder.encode("A1"));
      }));
    }
    const strings = schema.fields.filter((f) => f.fieldKind === "scalar" && f.scalar === ScalarType.STRING);
    if (r < 0.82 && strings.length > 0) {
      const field = pick(this.rng, strings);
      const bad = pick(this.rng, INVALID_UTF8);
      return done(`invalid UTF-8 in ${field.name}`, append((w) => w.tag(field.number, WireType.LengthDelimited).bytes(Uint8Array.from([0x61, ...bad, 0x62]))));
    }
    const messages = schema.fields.filter((f) => f.fieldKind === "message");
    if (r < 0.87 && messages.length > 0) {
      const field = pick(this.rng, messages);
      return done(`garbage inside ${field.name}`, append((w) => w.tag(field.number, WireType.LengthDelimited).bytes(Uint8Array.from([0x00, 0x01, 0x02]))));
    }
    if (r < 0.95) {
      // On a field of another wire type the varint is refused for its wire type instead.
      const varints = schema.fields.filter((f) => expectedWireTypes(f).includes(WireType.Varint));
      const no = pick(this.rng, varints.length > 0 ? varints : schema.fields).number;
      return done("varint longer than 10 bytes", Uint8Array.from([...baseBytes(), (no << 3) | WireType.Varint, ...new Array<number>(10).fill(0xff), 0x01]));
    }
    return this.oversizedBinary(m);
  }
}

function expectedWireTypes(field: DescField): WireType[] {
  const scalar = (t: ScalarType | undefined): WireType => {
    switch (t) {
      case ScalarType.STRING:
      case ScalarType.BYTES:
        return WireType.LengthDelimited;
      case ScalarType.DOUBLE:
      case ScalarType.FIXED64:
      case ScalarType.SFIXED64:
        return WireType.Bit64;
      case ScalarType.FLOAT:
      case ScalarType.FIXED32:
      case ScalarType.SFIXED32:
        return WireType.Bit32;
      default:
        return WireType.Varint;
    }
  };
  if (field.fieldKind === "scalar") return [scalar(field.scalar)];
  if (field.fieldKind === "enum") return [WireType.Varint];
  if (field.fieldKind === "list" && field.listKind !== "message") {
    return [WireType.LengthDelimited, field.listKind === "enum" ? WireType.Varint : scalar(field.scalar)];
  }
  return [WireType.LengthDelimited];
}

export type { DescMessage };
