/**
 * Order files written from export messages as they arrive over gRPC: a message still holding
 * its wire bytes is written from them (exportCodec.ts orderFileLines), and the file is byte for
 * byte the one written from the orders themselves, whatever the text, the amounts, or the mix
 * of messages.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import { decodeExportOrdersResponse, encodeExportOrdersResponse, orderFileLines } from "../../services/shared/orders/exportCodec.js";
import { writeOrderFile } from "../../services/recon/orderFiles.js";
import type { ExportRow } from "../../services/shared/orders/orderExport.js";
import { seededRng } from "../support/random.js";

const PLAIN_TEXTS = ["", "a", "20261126000000000001", "saler1", "2026-11-26 00:00:00", "x".repeat(127), "x".repeat(128), "\r alone", "tab\there", "\u0000nul"];
const QUOTED_TEXTS = ["a,b", "line\nfeed", 'say "hi"', "商户甲", "é", "😀"];
const PLAIN_AMOUNTS = [0n, 1n, 9n, 10n, 127n, 128n, 16_383n, 16_384n, 10n ** 12n, 2n ** 49n - 1n];
const OTHER_AMOUNTS = [2n ** 49n, 2n ** 53n + 1n, 2n ** 63n - 1n, -1n, -(2n ** 63n)];

function randomOrders(rng: () => number, n: number, plain: boolean): ExportRow[] {
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(rng() * xs.length)]!;
  const text = () => (!plain && rng() < 0.05 ? pick(QUOTED_TEXTS) : rng() < 0.6 ? pick(PLAIN_TEXTS) : String(Math.floor(rng() * 1e15)));
  const amount = () => (!plain && rng() < 0.05 ? pick(OTHER_AMOUNTS) : rng() < 0.5 ? pick(PLAIN_AMOUNTS) : BigInt(Math.floor(rng() * 1e12)));
  return Array.from({ length: n }, () => ({
    requestId: text(),
    responseId: text(),
    salerId: text(),
    amount: amount(),
    requestTime: text(),
    responseTime: text(),
  }));
}

async function* each<T>(items: readonly T[]): AsyncGenerator<T> {
  yield* items;
}

describe("order files written from export messages", () => {
  let dir: string;
  before(() => (dir = mkdtempSync(join(tmpdir(), "order-files-"))));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("writes a message's lines straight from its bytes, the same file as from its orders", async () => {
    const rng = seededRng(20261130);
    for (let round = 0; round < 60; round++) {
      const pages = Array.from({ length: 1 + Math.floor(rng() * 6) }, () => randomOrders(rng, Math.floor(rng() * 60), rng() < 0.5));
      const received = pages.map((orders) => decodeExportOrdersResponse(encodeExportOrdersResponse(orders)));
      const fromBytes = join(dir, `bytes-${round}.csv`);
      const fromOrders = join(dir, `orders-${round}.csv`);
      const rowsFromBytes = await writeOrderFile(fromBytes, "total_fee", each(received));
      const rowsFromOrders = await writeOrderFile(fromOrders, "total_fee", each(pages.map((orders) => ({ orders }))));
      expect(rowsFromBytes, `round ${round}`).to.equal(rowsFromOrders);
      expect(rowsFromBytes).to.equal(pages.reduce((n, p) => n + p.length, 0));
      expect(readFileSync(fromBytes).equals(readFileSync(fromOrders)), `round ${round}`).to.equal(true);
    }
  });

  it("takes the bytes' path for plain orders and the orders' path for anything the writer quotes or that is out of range", () => {
    const rng = seededRng(5);
    for (let round = 0; round < 200; round++) {
      const orders = randomOrders(rng, 1 + Math.floor(rng() * 30), true);
      const lines = orderFileLines(decodeExportOrdersResponse(encodeExportOrdersResponse(orders)));
      expect(lines, `round ${round}`).to.not.equal(undefined);
      expect(lines!.rows).to.equal(orders.length);
      const expected = orders.map((o) => [o.requestId, o.responseId, o.salerId, o.amount.toString(), o.requestTime, o.responseTime].join(",") + "\r\n").join("");
      expect(lines!.lines.toString("latin1")).to.equal(expected);
    }
    // Every combination of fields left out (empty strings, a zero amount are not on the wire).
    const sparse: ExportRow[] = Array.from({ length: 64 }, (_, bits) => ({
      requestId: bits & 1 ? "r1" : "",
      responseId: bits & 2 ? "s2" : "",
      salerId: bits & 4 ? "m3" : "",
      amount: bits & 8 ? 44n : 0n,
      requestTime: bits & 16 ? "t5" : "",
      responseTime: bits & 32 ? "u6" : "",
    }));
    const sparseLines = orderFileLines(decodeExportOrdersResponse(encodeExportOrdersResponse(sparse)));
    expect(sparseLines!.lines.toString("latin1").split("\r\n").slice(0, -1)).to.deep.equal(
      sparse.map((o) => [o.requestId, o.responseId, o.salerId, o.amount.toString(), o.requestTime, o.responseTime].join(",")),
    );
    const plain = { requestId: "r", responseId: "s", salerId: "m", amount: 5n, requestTime: "t", responseTime: "u" };
    for (const odd of [{ salerId: "a,b" }, { requestId: "x\ny" }, { responseTime: '"' }, { salerId: "商户" }, { amount: 2n ** 49n }, { amount: -5n }]) {
      const message = decodeExportOrdersResponse(encodeExportOrdersResponse([plain, { ...plain, ...odd }]));
      expect(orderFileLines(message), JSON.stringify(odd, (_, v) => (typeof v === "bigint" ? String(v) : v))).to.equal(undefined);
    }
    expect(orderFileLines({ orders: [plain] })).to.equal(undefined);
    expect(orderFileLines(decodeExportOrdersResponse(new Uint8Array(0)))).to.deep.equal({ lines: Buffer.alloc(0), rows: 0 });
  });

  it("writes a message whose orders were read or replaced from those orders, not from its bytes", async () => {
    const plain = { requestId: "r", responseId: "s", salerId: "m", amount: 5n, requestTime: "t", responseTime: "u" };
    const read = decodeExportOrdersResponse(encodeExportOrdersResponse([plain]));
    read.orders[0]!.amount = 6n;
    expect(orderFileLines(read)).to.equal(undefined);
    const replaced = decodeExportOrdersResponse(encodeExportOrdersResponse([plain]));
    replaced.orders = [];
    expect(orderFileLines(replaced)).to.equal(undefined);
    const path = join(dir, "changed.csv");
    expect(await writeOrderFile(path, "total_fee", each([read, replaced]))).to.equal(1);
    expect(readFileSync(path, "utf8")).to.equal("\ufeffrequest_id,response_id,saler_id,total_fee,request_time,response_time\r\nr,s,m,6,t,u\r\n");
  });
});
