/** ListDiffRows: paging a run's diff file by byte offset, filters, file layouts, refusals. */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { DiffSummarySchema, ListDiffRowsRequestSchema, RunKind, RunSchema, type DiffRow } from "../../gen/recon/v1/recon_pb.js";
import { listDiffRows } from "../../services/recon/diffRows.js";
import { startPlatform, type Platform } from "../harness.js";
import { OrderType } from "../../gen/order/v1/order_pb.js";

async function refusal(promise: Promise<unknown>): Promise<ConnectError> {
  try {
    await promise;
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error("expected the call to be refused");
}

describe("ListDiffRows on a diff file", () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "diffrows-"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const run = create(RunSchema, {
    runId: "20261129120000000-recon-abcd",
    kind: RunKind.RECONCILIATION,
    diffs: [create(DiffSummarySchema, { orderType: OrderType.PAYMENT })],
  });

  async function all(filter: { diffTypes?: string[]; salerId?: string }, pageSize: number): Promise<{ rows: DiffRow[]; pages: number; offsets: bigint[] }> {
    const rows: DiffRow[] = [];
    const offsets: bigint[] = [];
    let pageToken = "";
    let pages = 0;
    do {
      const page = await listDiffRows(run, create(ListDiffRowsRequestSchema, { runId: run.runId, orderType: OrderType.PAYMENT, pageSize, pageToken, ...filter }));
      rows.push(...page.rows);
      offsets.push(page.rowOffset);
      pageToken = page.nextPageToken;
      pages++;
    } while (pageToken !== "");
    return { rows, pages, offsets };
  }

  it("reads columns by header name, with quoted commas, quotes and line breaks, CRLF and no BOM", async () => {
    run.directory = dir;
    // Another column order than the service writes, and fields RFC 4180 must quote.
    writeFileSync(
      join(dir, "payment_diff.csv"),
      [
        "diff_type,response_id,request_id,amount,saler_id,payment_amount,merchant_amount",
        'F000,r1,q1,10,"a,b",10,10',
        'F113,r2,q2,20,"say ""hi""",20,',
        'F115,r3,q3,31,"two\r\nlines",31,30',
        "F114,r4,q4,40,plain,,40",
        "",
      ].join("\r\n"),
    );
    const { rows } = await all({}, 2);
    expect(rows.map((r) => [r.diffType, r.requestId, r.responseId, r.salerId, r.amount, r.merchantAmount, r.paymentAmount])).to.deep.equal([
      ["F000", "q1", "r1", "a,b", 10n, 10n, 10n],
      ["F113", "q2", "r2", 'say "hi"', 20n, 0n, 20n],
      ["F115", "q3", "r3", "two\r\nlines", 31n, 30n, 31n],
      ["F114", "q4", "r4", "plain", 40n, 40n, 0n],
    ]);
  });

  it("pages through every matching row exactly once, with filters, from any page size", async () => {
    run.directory = dir;
    const lines = ["\uFEFFrequest_id,response_id,saler_id,total_fee,diff_type,merchant_amount,payment_amount"];
    const types = ["F000", "F000", "F113", "F000", "F115", "F114"];
    for (let i = 0; i < 1200; i++) {
      const t = types[i % types.length]!;
      lines.push(`${10_000_000_000_000_000_000n + BigInt(i)},${i},saler${i % 3},${i},${t},${t === "F113" ? "" : i},${t === "F114" ? "" : i}`);
    }
    writeFileSync(join(dir, "payment_diff.csv"), lines.join("\n") + "\n");
    const differing = (i: number) => ["F113", "F114", "F115"].includes(types[i % types.length]!);
    for (const size of [3, 7, 1000]) {
      const { rows, pages, offsets } = await all({ diffTypes: ["F113", "F114", "F115"] }, size);
      const expected = [...Array(1200).keys()].filter(differing);
      expect(rows.map((r) => Number(r.responseId))).to.deep.equal(expected);
      expect(pages).to.equal(Math.ceil(expected.length / size));
      expect(offsets).to.deep.equal([...Array(pages).keys()].map((p) => BigInt(p * size)));
    }
    const { rows } = await all({ diffTypes: ["F115"], salerId: "saler1" }, 50);
    expect(rows.map((r) => Number(r.responseId))).to.deep.equal([...Array(1200).keys()].filter((i) => types[i % 6] === "F115" && i % 3 === 1));
    expect(rows[0]!.requestId).to.match(/^1\d{19}$/);
  });

  it("refuses a token of another filter, a forged offset, and bad filters, naming the field", async () => {
    run.directory = dir;
    const first = await listDiffRows(run, create(ListDiffRowsRequestSchema, { runId: run.runId, orderType: OrderType.PAYMENT, pageSize: 3, diffTypes: ["F113"] }));
    expect(first.nextPageToken).to.not.equal("");
    const other = await refusal(listDiffRows(run, create(ListDiffRowsRequestSchema, { runId: run.runId, orderType: OrderType.PAYMENT, pageSize: 3, pageToken: first.nextPageToken })));
    expect(other.code).to.equal(Code.InvalidArgument);
    expect(other.rawMessage).to.match(/^page_token:/);
    const [tag, , rowOffset] = Buffer.from(first.nextPageToken, "base64url").toString().split(".");
    const forged = Buffer.from(`${tag}.5.${rowOffset}`).toString("base64url");
    const bad = await refusal(listDiffRows(run, create(ListDiffRowsRequestSchema, { runId: run.runId, orderType: OrderType.PAYMENT, diffTypes: ["F113"], pageToken: forged })));
    expect(bad.rawMessage).to.match(/^page_token:/);
    const types = await refusal(listDiffRows(run, create(ListDiffRowsRequestSchema, { runId: run.runId, orderType: OrderType.PAYMENT, diffTypes: ["F999"] })));
    expect(types.rawMessage).to.match(/^diff_types:/);
    const kind = await refusal(listDiffRows(run, create(ListDiffRowsRequestSchema, { runId: run.runId })));
    expect(kind.rawMessage).to.match(/^order_type:/);
    const size = await refusal(listDiffRows(run, create(ListDiffRowsRequestSchema, { runId: run.runId, orderType: OrderType.PAYMENT, pageSize: 1001 })));
    expect(size.rawMessage).to.match(/^page_size:/);
  });
});

describe("ListDiffRows through the service [embedded]", () => {
  let p: Platform;
  before(async () => {
    p = await startPlatform({ name: "embedded" });
  });
  after(async () => p?.close());

  it("lists a run's differing orders and refuses unknown runs and audit runs", async () => {
    const { run } = await p.reconClient.reconcileFiles({
      orderType: OrderType.PAYMENT,
      merchant: { source: { case: "content", value: "request_id,response_id,total_fee\nrequest_id_1,response_id_1,10\nrequest_id_2,response_id_2,20\nrequest_id_3,response_id_3,3\n" } },
      payment: { source: { case: "content", value: "request_id,response_id,total_fee\nrequest_id_1,response_id_1,10\nrequest_id_3,response_id_3,4\nrequest_id_4,response_id_4,40\n" } },
    });
    const page = await p.reconClient.listDiffRows({ runId: run!.runId, orderType: OrderType.PAYMENT, diffTypes: ["F113", "F114", "F115"] });
    expect(page.rows.map((r) => [r.requestId, r.diffType, r.merchantAmount, r.paymentAmount])).to.deep.equal([
      ["request_id_3", "F115", 3n, 4n],
      ["request_id_4", "F113", 0n, 40n],
      ["request_id_2", "F114", 20n, 0n],
    ]);
    expect(page.nextPageToken).to.equal("");
    const missing = await refusal(p.reconClient.listDiffRows({ runId: "20261129120000000-recon-ffff", orderType: OrderType.PAYMENT }));
    expect(missing.code).to.equal(Code.NotFound);
    const withdrawals = await refusal(p.reconClient.listDiffRows({ runId: run!.runId, orderType: OrderType.WITHDRAWAL }));
    expect(withdrawals.rawMessage).to.match(/^order_type: run .* has no withdrawal rows/);
    const audit = await p.reconClient.auditFiles({
      merchantPayments: { source: { case: "content", value: "saler_id,total_fee\nsaler1,10\n" } },
      merchantWithdrawals: { source: { case: "content", value: "saler_id,withdraw_money\n" } },
      balances: { source: { case: "content", value: "saler_id,balance\nsaler1,10\n" } },
    });
    const notRecon = await refusal(p.reconClient.listDiffRows({ runId: audit.run!.runId, orderType: OrderType.PAYMENT }));
    expect(notRecon.code).to.equal(Code.InvalidArgument);
  });

  it("counts the merchant's orders by type and state", async () => {
    await p.merchantClient.pay({ salerId: "saler1", totalFee: 100n });
    await p.merchantClient.pay({ salerId: "saler2", totalFee: 250n });
    const { counts } = await p.merchantClient.countOrders({});
    expect(counts).to.have.length(8);
    const pay = counts.find((c) => c.orderType === 1 && c.state === "SUCCESS")!;
    expect([pay.count, pay.amount]).to.deep.equal([2n, 350n]);
    expect(counts.filter((c) => c !== pay).every((c) => c.count === 0n && c.amount === 0n)).to.equal(true);
  });
});
