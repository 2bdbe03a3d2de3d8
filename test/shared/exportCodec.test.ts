/**
 * The export's own codec gives exactly what @bufbuild/protobuf gives: the same bytes for every
 * response it encodes, the same message for every byte string it decodes (or the same refusal).
 */
import { expect } from "chai";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { ExportOrdersResponseSchema, ExportedOrderSchema } from "../../gen/order/v1/order_pb.js";
import { decodeExportOrdersResponse, encodeExportOrdersResponse, encodeExportOrdersResponseMessage } from "../../services/shared/orders/exportCodec.js";
import { seededRng } from "../support/random.js";

const INT64_MAX = 2n ** 63n - 1n;
const AMOUNTS = [0n, 1n, 127n, 128n, 16_383n, 16_384n, 10n ** 12n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 53n + 1n, INT64_MAX, -1n, -(2n ** 63n), -(10n ** 12n)];
const TEXTS = ["", "a", "20261126000000000001", "saler1", "商户甲", "2026-11-26 00:00:00", "😀 emoji", "\ud800 lone surrogate", "x".repeat(127), "x".repeat(128), "é".repeat(200), "\u0000nul", "\r\n,\"quoted\""];

const ASCII_TEXTS = TEXTS.filter((t) => /^[\x00-\x7f]*$/.test(t));

/** Orders with random fields; `ascii` keeps every string ASCII (the codec's fast path). */
function randomOrders(rng: () => number, n: number, ascii = false) {
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(rng() * xs.length)]!;
  const text = () => (rng() < 0.7 ? pick(ascii ? ASCII_TEXTS : TEXTS) : String(Math.floor(rng() * 1e15)));
  return Array.from({ length: n }, () => ({
    requestId: text(),
    responseId: text(),
    salerId: text(),
    amount: rng() < 0.7 ? pick(AMOUNTS) : BigInt(Math.floor(rng() * 1e12)),
    requestTime: text(),
    responseTime: text(),
  }));
}

describe("the export codec", () => {
  it("encodes every response byte for byte as toBinary does", () => {
    const rng = seededRng(20261130);
    for (let round = 0; round < 800; round++) {
      const orders = randomOrders(rng, Math.floor(rng() * 40), round % 2 === 0);
      const expected = toBinary(ExportOrdersResponseSchema, create(ExportOrdersResponseSchema, { orders: orders.map((o) => create(ExportedOrderSchema, o)) }));
      expect(Buffer.from(encodeExportOrdersResponse(orders)).equals(Buffer.from(expected)), `round ${round}`).to.equal(true);
    }
  });

  it("encodes what create() takes as create() and toBinary do, fields left out included", () => {
    const inits: unknown[] = [
      {},
      { orders: [] },
      { orders: [{ requestId: "a" }] },
      { orders: [{ requestId: "a", responseId: "b", salerId: "s", amount: 5n, requestTime: "t", responseTime: "u" }, { amount: 7n }] },
      create(ExportOrdersResponseSchema, { orders: [create(ExportedOrderSchema, { salerId: "商户", amount: -3n })] }),
    ];
    for (const init of inits) {
      const expected = toBinary(ExportOrdersResponseSchema, create(ExportOrdersResponseSchema, init as never));
      expect(encodeExportOrdersResponseMessage(init).equals(Buffer.from(expected)), JSON.stringify(init, (_, v) => (typeof v === "bigint" ? String(v) : v))).to.equal(true);
    }
  });

  it("decodes every response as fromBinary does", () => {
    const rng = seededRng(7);
    for (let round = 0; round < 400; round++) {
      const orders = randomOrders(rng, Math.floor(rng() * 40));
      const bytes = toBinary(ExportOrdersResponseSchema, create(ExportOrdersResponseSchema, { orders: orders.map((o) => create(ExportedOrderSchema, o)) }));
      expect(decodeExportOrdersResponse(bytes)).to.deep.equal(fromBinary(ExportOrdersResponseSchema, bytes));
    }
  });

  it("reads hostile bytes as fromBinary does: the same message or the same refusal", () => {
    const rng = seededRng(99);
    const valid = Buffer.from(encodeExportOrdersResponse(randomOrders(rng, 5)));
    const cases: Buffer[] = [
      Buffer.from([0x0a, 0x02, 0x0a, 0xc3]), // a cut string
      Buffer.from([0x0a, 0x04, 0x0a, 0x02, 0xff, 0xfe]), // invalid UTF-8
      Buffer.from([0x0a, 0x03, 0x0a, 0x02, 0xc3]), // a string longer than its order
      Buffer.from([0x0a, 0x05, 0x20, 0xff, 0xff, 0xff, 0xff]), // a cut varint
      Buffer.from([0x0a, 0x03, 0x3a, 0x01, 0x41]), // an unknown field (7)
      Buffer.from([0x12, 0x01, 0x41]), // an unknown field of the response
      Buffer.from([0x0a, 0x03, 0x8a, 0x00, 0x00]), // a tag written in two bytes
      Buffer.from([0x0a, 0x04, 0x0a, 0x01, 0x41, 0x0a, 0x00]).subarray(0, 6), // a cut order
      Buffer.concat([valid, valid]), // the same orders twice
      Buffer.from([0x0a, 0x04, 0x0a, 0x01, 0x41, 0x0a, 0x01, 0x42]).subarray(0, 7),
    ];
    for (let i = 0; i < 2000; i++) {
      const b = Buffer.from(valid);
      for (let k = 0; k < 1 + Math.floor(rng() * 3); k++) b[Math.floor(rng() * b.length)] = Math.floor(rng() * 256);
      cases.push(b.subarray(0, Math.floor(rng() * (b.length + 1))));
    }
    for (const bytes of cases) {
      let want: unknown;
      let got: unknown;
      try {
        want = fromBinary(ExportOrdersResponseSchema, bytes);
      } catch (err) {
        want = `refused: ${(err as Error).message}`;
      }
      try {
        got = decodeExportOrdersResponse(bytes);
      } catch (err) {
        got = `refused: ${(err as Error).message}`;
      }
      expect(got, bytes.toString("hex")).to.deep.equal(want);
    }
  });
});
