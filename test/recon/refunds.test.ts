/**
 * Refunds are a third order type of reconciliation: both sides export their successful refunds,
 * the diff gives them F000/F113/F114/F115 like payments and withdrawals, and the audit amount is
 * payments − withdrawals − refunds.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { expect } from "chai";
import { type DiffRow } from "../../gen/recon/v1/recon_pb.js";
import { backends, startPlatform, type Platform } from "../harness.js";
import { OrderKey, OrderType } from "../../gen/order/v1/order_pb.js";

for (const backend of backends()) {
  describe(`reconciliation of refunds [${backend.name}]`, () => {
    let p: Platform;

    beforeEach(async () => {
      p = await startPlatform(backend);
    });
    afterEach(async () => {
      await p?.close();
    });

    async function pay(salerId: string, fee: bigint): Promise<string> {
      const { order } = await p.merchantClient.pay({ salerId, totalFee: fee });
      expect(order?.state).to.equal("SUCCESS");
      return order!.requestId;
    }

    async function diffRows(runId: string): Promise<DiffRow[]> {
      const rows: DiffRow[] = [];
      for await (const m of p.reconClient.streamDiffRows({ runId, orderType: OrderType.REFUND })) rows.push(...m.rows);
      return rows;
    }

    it("matches both sides' refunds as F000 and audits payments − withdrawals − refunds as SUCCESS", async () => {
      const a = await pay("rr-a", 1_000n);
      const b = await pay("rr-b", 500n);
      await p.paymentClient.settle({ fullSweep: true });
      for (const [id, fee] of [[a, 300n], [a, 200n], [b, 500n]] as const) {
        expect((await p.merchantClient.refund({ paymentRequestId: id, refundFee: fee })).order?.state).to.equal("SUCCESS");
      }
      expect((await p.merchantClient.withdraw({ salerId: "rr-a", withdrawMoney: 100n })).order?.state).to.equal("SUCCESS");

      const { run } = await p.reconClient.reconcile({});
      const refunds = run!.diffs.find((d) => d.orderType === OrderType.REFUND)!;
      expect(refunds).to.include({ merchantRows: 3n, paymentRows: 3n, f000Count: 3n, f000Amount: 1_000n, f113Count: 0n, f114Count: 0n, f115Count: 0n });
      expect(run!.balanced).to.equal(true);
      expect(run!.files.map((f) => f.name)).to.include.members(["merchant_refunds.csv", "payment_refunds.csv", "refund_diff.csv"]);
      const header = readFileSync(join(run!.directory, "refund_diff.csv"), "utf8").replace(/^\uFEFF/, "").split(/\r?\n/)[0];
      expect(header!.startsWith("request_id,response_id,refund_fee,diff_type")).to.equal(true);

      const audit = (await p.reconClient.audit({})).run!;
      expect(audit.balanced).to.equal(true);
      const rows = [];
      for await (const m of p.reconClient.streamAuditRows({ runId: audit.runId })) rows.push(...m.rows);
      expect(rows.map((r) => [r.salerId, r.balance, r.result, r.auditAmount])).to.deep.equal([
        ["rr-a", 400n, "SUCCESS", 400n],
        ["rr-b", 0n, "SUCCESS", 0n],
      ]);
    });

    it("finds a refund only at the payment system (F113), only at the merchant (F114) and with another amount (F115); the audit fails those accounts", async () => {
      const a = await pay("rr-c", 1_000n);
      const b = await pay("rr-d", 1_000n);
      await p.paymentClient.settle({ fullSweep: true });
      const lost = (await p.merchantClient.refund({ paymentRequestId: a, refundFee: 100n })).order!;
      const tampered = (await p.merchantClient.refund({ paymentRequestId: b, refundFee: 200n })).order!;
      const knex = p.merchant.db.knex;
      // The merchant loses one refund's record, records another with a wrong amount, and records a
      // refund the payment system never saw.
      await knex("merchant_orders").where({ request_id: lost.requestId }).update({ state: "UNKNOWN" });
      await knex("merchant_orders").where({ request_id: tampered.requestId }).update({ amount: 250n });
      const fakeId = `${tampered.requestId.slice(0, 14)}999999`;
      await knex("merchant_orders").insert({
        request_id: fakeId,
        order_type: "REFUND",
        saler_id: "rr-d",
        amount: 50n,
        request_time: tampered.requestTime,
        state: "SUCCESS",
        response_id: `${tampered.responseId.slice(0, 14)}999999`,
        response_time: tampered.responseTime,
        response_code: "SUCCESS",
        response_msg: "OK",
        payment_request_id: b,
        updated_time: tampered.responseTime,
      });

      const { run } = await p.reconClient.reconcile({});
      const refunds = run!.diffs.find((d) => d.orderType === OrderType.REFUND)!;
      expect(refunds).to.include({ f000Count: 0n, f113Count: 1n, f113Amount: 100n, f114Count: 1n, f114Amount: 50n, f115Count: 1n, f115Amount: 200n });
      expect(run!.balanced).to.equal(false);
      const found = (await diffRows(run!.runId)).map((r) => [r.diffType, r.requestId, r.merchantAmount, r.paymentAmount]);
      expect(found).to.have.deep.members([
        ["F113", lost.requestId, 0n, 100n],
        ["F114", fakeId, 50n, 0n],
        ["F115", tampered.requestId, 250n, 200n],
      ]);

      const audit = (await p.reconClient.audit({})).run!;
      expect(audit.balanced).to.equal(false);
      const rows = [];
      for await (const m of p.reconClient.streamAuditRows({ runId: audit.runId })) rows.push(...m.rows);
      // rr-c: the merchant misses a 100 refund (audit 1,000 against 900); rr-d: it counts 250 + 50
      // against 200 (audit 700 against 800).
      expect(rows.map((r) => [r.salerId, r.balance, r.result, r.auditAmount])).to.deep.equal([
        ["rr-c", 900n, "FAIL", 1_000n],
        ["rr-d", 800n, "FAIL", 700n],
      ]);
    });

    it("a simulated day of refunds with injected refund faults: reconciliation finds exactly them", async () => {
      const payments = await p.merchantClient.simulate({ count: 200, concurrency: 16, accounts: 5, accountPrefix: "rsim", minAmount: 100n, maxAmount: 1_000n, seed: 7n });
      expect(payments.succeeded).to.equal(200);
      await p.paymentClient.settle({ fullSweep: true });
      const refunds = await p.merchantClient.simulate({
        orderType: OrderType.REFUND,
        count: 80,
        concurrency: 16,
        accounts: 5,
        accountPrefix: "rsim",
        minAmount: 1n,
        maxAmount: 600n,
        seed: 11n,
        faults: { lostResponses: 2, tamperedAmounts: 1, merchantOnly: 1 },
      });
      expect(refunds.orderType).to.equal(OrderType.REFUND);
      expect(refunds.succeeded).to.be.greaterThan(40);
      expect(refunds.injected.every((f) => f.orderType === OrderType.REFUND)).to.equal(true);
      const expected = refunds.injected.map((f) => [f.expectedDiffType, f.requestId]);
      expect(expected.filter(([t]) => t === "F114")).to.have.length(1);
      expect(expected.filter(([t]) => t === "F115")).to.have.length(1);

      const { run } = await p.reconClient.reconcile({ key: OrderKey.REQUEST_ID });
      for (const d of run!.diffs.filter((x) => x.orderType !== OrderType.REFUND)) expect(d.f113Count + d.f114Count + d.f115Count).to.equal(0n);
      const found = (await diffRows(run!.runId)).filter((r) => r.diffType !== "F000").map((r) => [r.diffType, r.requestId]);
      expect(found).to.have.deep.members(expected);
      // The refunds the merchant recorded never exceed their payments at the payment system.
      const [over] = (await p.payment.db.knex("payment_orders").whereRaw("refunded > total_fee").count({ n: "*" })) as { n: unknown }[];
      expect(Number(over!.n)).to.equal(0);
    });

    it("audits files handed in with a refunds file, and the seed's audit example without one gives the seed's answer", async () => {
      const content = (text: string) => ({ source: { case: "content" as const, value: text } });
      const withRefunds = await p.reconClient.auditFiles({
        merchantPayments: content("saler_id,total_fee\nsaler1,10\nsaler1,40\nsaler1,20\n"),
        merchantWithdrawals: content("saler_id,withdraw_money\nsaler1,10\n"),
        merchantRefunds: content("saler_id,refund_fee\nsaler1,15\n"),
        balances: content("saler_id,balance\nsaler1,45\n"),
      });
      expect(withRefunds.run!.audit).to.include({ accounts: 1n, success: 1n, fail: 0n });
      const seed = await p.reconClient.auditFiles({
        merchantPayments: content("saler_id,total_fee\nsaler1,10\nsaler1,40\nsaler1,20\nsaler2,100\n"),
        merchantWithdrawals: content("saler_id,withdraw_money\nsaler1,10\nsaler2,10\nsaler2,5\nsaler2,5\n"),
        balances: content("saler_id,balance\nsaler1,60\nsaler2,100\n"),
      });
      const rows = [];
      for await (const m of p.reconClient.streamAuditRows({ runId: seed.run!.runId })) rows.push(...m.rows);
      expect(rows.map((r) => [r.salerId, r.balance, r.result, r.auditAmount])).to.deep.equal([
        ["saler1", 60n, "SUCCESS", 60n],
        ["saler2", 100n, "FAIL", 80n],
      ]);
    });
  });
}
