/** Reconciliation and audit of CSV files handed in: the seed's examples and file edge cases. */
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { expect } from "chai";
import { Code, ConnectError } from "@connectrpc/connect";
import { type DiffRow } from "../../gen/recon/v1/recon_pb.js";
import { startPlatform, type Platform } from "../harness.js";
import { OrderKey, OrderType } from "../../gen/order/v1/order_pb.js";

const SEED_MERCHANT = "request_id,response_id,total_fee\nrequest_id_1,response_id_1,10\nrequest_id_2,response_id_2,20\nrequest_id_3,response_id_3,3\n";
const SEED_PAYMENT = "request_id,response_id,total_fee\nrequest_id_1,response_id_1,10\nrequest_id_3,response_id_3,4\nrequest_id_4,response_id_4,40\n";

async function diffRows(p: Platform, runId: string): Promise<DiffRow[]> {
  const rows: DiffRow[] = [];
  for await (const m of p.reconClient.streamDiffRows({ runId })) rows.push(...m.rows);
  return rows;
}

async function refusal(promise: Promise<unknown>): Promise<ConnectError> {
  try {
    await promise;
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error("expected the call to be refused");
}

describe("reconciliation of files handed in [embedded]", () => {
  let p: Platform;
  before(async () => {
    p = await startPlatform({ name: "embedded" });
  });
  after(async () => p?.close());

  const reconcile = (merchant: string, payment: string, key = OrderKey.RESPONSE_ID) =>
    p.reconClient.reconcileFiles({
      orderType: OrderType.PAYMENT,
      key,
      merchant: { source: { case: "content", value: merchant } },
      payment: { source: { case: "content", value: payment } },
    });

  it("gives the seed's example exactly: 1 F000 10, 3 F115 4, 4 F113 40, 2 F114 20", async () => {
    const { run } = await reconcile(SEED_MERCHANT, SEED_PAYMENT);
    const rows = await diffRows(p, run!.runId);
    expect(rows.map((r) => [r.requestId, r.responseId, r.amount, r.diffType])).to.deep.equal([
      ["request_id_1", "response_id_1", 10n, "F000"],
      ["request_id_3", "response_id_3", 4n, "F115"],
      ["request_id_4", "response_id_4", 40n, "F113"],
      ["request_id_2", "response_id_2", 20n, "F114"],
    ]);
    const d = run!.diffs[0]!;
    expect([d.f000Count, d.f113Count, d.f114Count, d.f115Count]).to.deep.equal([1n, 1n, 1n, 1n]);
    expect([d.f000Amount, d.f113Amount, d.f114Amount, d.f115Amount]).to.deep.equal([10n, 40n, 20n, 4n]);
    expect(run!.balanced).to.equal(false);
    // The diff file itself: BOM for Excel, the seed's columns first, integer fen.
    const text = await readFile(join(run!.directory, "payment_diff.csv"), "utf8");
    expect(text.charCodeAt(0)).to.equal(0xfeff);
    const lines = text.slice(1).trim().split("\r\n");
    expect(lines[0]).to.equal("request_id,response_id,total_fee,diff_type,saler_id,merchant_amount,payment_amount,request_time,response_time");
    expect(lines.slice(1).map((l) => l.split(",").slice(0, 4).join(","))).to.deep.equal([
      "request_id_1,response_id_1,10,F000",
      "request_id_3,response_id_3,4,F115",
      "request_id_4,response_id_4,40,F113",
      "request_id_2,response_id_2,20,F114",
    ]);
  });

  it("matches on request_id when asked, with the same result", async () => {
    const { run } = await reconcile(SEED_MERCHANT, SEED_PAYMENT, OrderKey.REQUEST_ID);
    const rows = await diffRows(p, run!.runId);
    expect(rows.map((r) => `${r.requestId}:${r.diffType}`)).to.deep.equal([
      "request_id_1:F000",
      "request_id_3:F115",
      "request_id_4:F113",
      "request_id_2:F114",
    ]);
  });

  it("gives the seed's audit example exactly: saler1 60 SUCCESS 60, saler2 100 FAIL 80", async () => {
    const { run } = await p.reconClient.auditFiles({
      merchantPayments: { source: { case: "content", value: "saler_id,total_fee\nsaler1,10\nsaler2,100\nsaler1,40\nsaler1,20\n" } },
      merchantWithdrawals: { source: { case: "content", value: "saler_id,withdraw_money\nsaler1,10\nsaler2,10\nsaler2,5\nsaler2,5\n" } },
      balances: { source: { case: "content", value: "saler_id,balance\nsaler1,60\nsaler2,100\n" } },
    });
    const rows = [];
    for await (const m of p.reconClient.streamAuditRows({ runId: run!.runId })) rows.push(...m.rows);
    expect(rows.map((r) => [r.salerId, r.balance, r.result, r.auditAmount])).to.deep.equal([
      ["saler1", 60n, "SUCCESS", 60n],
      ["saler2", 100n, "FAIL", 80n],
    ]);
    expect(run!.audit).to.include({ accounts: 2n, success: 1n, fail: 1n });
    const text = await readFile(join(run!.directory, "audit.csv"), "utf8");
    expect(text.slice(1).split("\r\n").slice(0, 3)).to.deep.equal([
      "saler_id,balance,result,audit_amount,in_merchant,in_payment",
      "saler1,60,SUCCESS,60,true,true",
      "saler2,100,FAIL,80,true,true",
    ]);
  });

  it("reports accounts present on only one side", async () => {
    const { run } = await p.reconClient.auditFiles({
      merchantPayments: { source: { case: "content", value: "saler_id,total_fee\nonlyMerchant,5\n" } },
      merchantWithdrawals: { source: { case: "content", value: "saler_id,withdraw_money\n" } },
      balances: { source: { case: "content", value: "saler_id,balance\nonlyPayment,7\n" } },
    });
    expect(run!.audit).to.include({ accounts: 2n, fail: 2n, merchantOnly: 1n, paymentOnly: 1n });
  });

  it("handles an empty side: every order of the other side is F113 or F114", async () => {
    const header = "request_id,response_id,total_fee\n";
    let { run } = await reconcile(header, SEED_PAYMENT);
    expect(run!.diffs[0]).to.include({ f113Count: 3n, f113Amount: 54n, f114Count: 0n, merchantRows: 0n });
    ({ run } = await reconcile(SEED_MERCHANT, header));
    expect(run!.diffs[0]).to.include({ f114Count: 3n, f114Amount: 33n, f113Count: 0n, paymentRows: 0n });
  });

  it("reads CRLF line endings, a UTF-8 BOM and quoted fields", async () => {
    const merchant = '\ufeffrequest_id,response_id,total_fee,note\r\n"request_id_1","response_id_1","10","say ""hi"", twice"\r\nrequest_id_2,response_id_2,20,"line one\r\nline two"\r\n';
    const payment = "request_id,response_id,total_fee\r\nrequest_id_1,response_id_1,10\r\nrequest_id_2,response_id_2,20";
    const { run } = await reconcile(merchant, payment);
    expect(run!.diffs[0]).to.include({ f000Count: 2n, f000Amount: 30n, merchantRows: 2n, paymentRows: 2n });
    expect(run!.balanced).to.equal(true);
  });

  it("sorts files that are not in key order", async () => {
    const merchant = "response_id,total_fee\nc,3\na,1\nb,2\n";
    const payment = "response_id,total_fee\nb,2\nc,30\nd,4\n";
    const { run } = await reconcile(merchant, payment);
    const rows = await diffRows(p, run!.runId);
    expect(rows.map((r) => `${r.responseId}:${r.diffType}:${r.amount}`)).to.deep.equal(["b:F000:2", "c:F115:30", "d:F113:4", "a:F114:1"]);
  });

  it("refuses a duplicate order number within one file, naming file and both lines", async () => {
    const e = await refusal(reconcile("response_id,total_fee\na,1\na,1\n", "response_id,total_fee\na,1\n"));
    expect(e.code).to.equal(Code.InvalidArgument);
    expect(e.rawMessage).to.equal('merchant_payments.csv, line 3, column response_id: duplicate response_id "a": also on line 2');
  });

  it("refuses a fractional or non-numeric amount, a missing key column, an unclosed quote, and an empty file", async () => {
    let e = await refusal(reconcile("response_id,total_fee\na,1.5\n", "response_id,total_fee\n"));
    expect(e.code).to.equal(Code.InvalidArgument);
    expect(e.rawMessage).to.equal('merchant_payments.csv, line 2, column total_fee: the amount must be an integer number of fen from 0 to 1000000000000, got "1.5"');
    e = await refusal(reconcile("response_id,total_fee\na,ten\n", "response_id,total_fee\n"));
    expect(e.rawMessage).to.match(/integer number of fen from 0 to 1000000000000, got "ten"/);
    e = await refusal(reconcile("request_id,total_fee\na,1\n", "response_id,total_fee\n"));
    expect(e.rawMessage).to.match(/has no response_id column/);
    e = await refusal(reconcile('response_id,total_fee\n"a,1\n', "response_id,total_fee\n"));
    expect(e.rawMessage).to.match(/quoted field is not closed/);
    e = await refusal(reconcile("", "response_id,total_fee\n"));
    expect(e.rawMessage).to.match(/empty: it needs at least a header row/);
  });

  it("reads a file by path only from under the input directory", async () => {
    await writeFile(join(p.reconDir, "bill.csv"), SEED_PAYMENT);
    const { run } = await p.reconClient.reconcileFiles({
      orderType: OrderType.PAYMENT,
      merchant: { source: { case: "content", value: SEED_MERCHANT } },
      payment: { source: { case: "path", value: "bill.csv" } },
    });
    expect(run!.diffs[0]).to.include({ f000Count: 1n, f113Count: 1n, f114Count: 1n, f115Count: 1n });
    const e = await refusal(
      p.reconClient.reconcileFiles({
        orderType: OrderType.PAYMENT,
        merchant: { source: { case: "content", value: SEED_MERCHANT } },
        payment: { source: { case: "path", value: "/etc/passwd" } },
      }),
    );
    expect(e.code).to.equal(Code.InvalidArgument);
    expect(e.rawMessage).to.match(/^payment\.path: /);
  });

  it("keeps every run: listed newest first and fetched by id", async () => {
    const { run } = await reconcile(SEED_MERCHANT, SEED_PAYMENT);
    const { runs } = await p.reconClient.listRuns({ pageSize: 2 });
    expect(runs[0]!.runId).to.equal(run!.runId);
    const got = await p.reconClient.getRun({ runId: run!.runId });
    expect(got.run!.diffs[0]!.f115Amount).to.equal(4n);
    expect(got.run!.files.map((f) => f.name)).to.include.members(["merchant_payments.csv", "payment_payments.csv", "payment_diff.csv"]);
    const missing = await refusal(p.reconClient.getRun({ runId: "20000101000000000-recon-0000" }));
    expect(missing.code).to.equal(Code.NotFound);
  });
});
