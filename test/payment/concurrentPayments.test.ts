import { expect } from "chai";
import { backends, startPlatform, type Platform } from "../harness.js";
import { amountFor, countRows, inParallel, settleLoop, sumBy } from "./fixtures.js";

type PaymentRow = { request_id: string; response_id: string; saler_id: string; total_fee: unknown; response_code: string; settlement_id: unknown };
type MerchantRow = { request_id: string; response_id: string | null; saler_id: string; amount: unknown; state: string; order_type: string };

/** Every balance equals its payments, nothing pending, and both sides hold the same orders. */
async function expectSettledAndMatched(p: Platform, expected: Map<string, bigint>): Promise<void> {
  const payments = (await p.payment.db.knex("payment_orders").select("*")) as PaymentRow[];
  const merchant = (await p.merchant.db.knex("merchant_orders").select("*")) as MerchantRow[];
  expect(merchant.filter((m) => m.state !== "SUCCESS"), "merchant orders not SUCCESS").to.deep.equal([]);
  expect(payments.length).to.equal(merchant.length);

  const byRequest = new Map(payments.map((r) => [r.request_id, r]));
  for (const m of merchant) {
    const r = byRequest.get(m.request_id);
    expect(r, `payment order for merchant order ${m.request_id}`).to.not.equal(undefined);
    expect(r!.response_id).to.equal(m.response_id);
    expect(r!.saler_id).to.equal(m.saler_id);
    expect(BigInt(String(r!.total_fee))).to.equal(BigInt(String(m.amount)));
    expect(r!.response_code).to.equal("SUCCESS");
    byRequest.delete(m.request_id);
  }
  expect([...byRequest.keys()], "payment orders the merchant does not have").to.deep.equal([]);
  expect(payments.filter((r) => r.settlement_id === null).length, "pending payment rows").to.equal(0);

  for (const [salerId, sum] of expected) {
    const { account } = await p.paymentClient.getBalance({ salerId });
    expect(account?.balance, salerId).to.equal(sum);
    expect(account?.pending, salerId).to.equal(0n);
    expect(account?.pendingCount, salerId).to.equal(0n);
  }
  expect(await countRows(p.payment.db.knex, "accounts")).to.equal(expected.size);
}

for (const backend of backends()) {
  describe(`concurrent payments [${backend.name}]`, () => {
    let p: Platform;
    beforeEach(async () => {
      p = await startPlatform(backend);
    });
    afterEach(async () => p?.close());

    it("1,000 payments over 20 accounts through the merchant, settled while they flow, credit every account to the fen", async () => {
      const count = 1000;
      const salerOf = (i: number) => `acct${String((i * 7) % 20).padStart(2, "0")}`;
      const settling = settleLoop((r) => p.paymentClient.settle(r));
      const orders = await inParallel(count, 64, async (i) => {
        const { order } = await p.merchantClient.pay({ salerId: salerOf(i), totalFee: amountFor(i) });
        return order!;
      });
      const during = await settling.stop();
      const final = await p.paymentClient.settle({});

      expect(orders.filter((o) => o.state !== "SUCCESS")).to.deep.equal([]);
      expect(new Set(orders.map((o) => o.requestId)).size).to.equal(count);
      expect(new Set(orders.map((o) => o.responseId)).size).to.equal(count);
      const expected = sumBy(orders, (o) => o.salerId, (o) => o.amount);
      expect(expected.size).to.equal(20);
      const total = [...expected.values()].reduce((a, b) => a + b, 0n);
      // Each credit applied by exactly one settlement run.
      expect(during.amount + final.amountSettled).to.equal(total);
      expect(during.credits + final.creditsApplied).to.equal(BigInt(count));
      await expectSettledAndMatched(p, expected);

      const again = await p.paymentClient.settle({ fullSweep: true });
      expect(again.amountSettled).to.equal(0n);
      await expectSettledAndMatched(p, expected);
    });

    it("a hot account taking every payment of a simulation settles to the exact sum", async () => {
      const settling = settleLoop((r) => p.paymentClient.settle(r));
      const report = await p.merchantClient.simulate({
        count: 1000,
        concurrency: 64,
        accounts: 1,
        accountPrefix: "hot",
        minAmount: 1n,
        maxAmount: 1_000_000n,
        seed: 20190829n,
      });
      const during = await settling.stop();
      const final = await p.paymentClient.settle({});
      expect(report.requested).to.equal(1000);
      expect(report.succeeded).to.equal(1000);
      expect(report.failed + report.unknown).to.equal(0);

      const rows = (await p.merchant.db.knex("merchant_orders").select("amount", "saler_id")) as { amount: unknown; saler_id: string }[];
      const merchantSum = rows.reduce((a, r) => a + BigInt(String(r.amount)), 0n);
      expect(rows.every((r) => r.saler_id === "hot1")).to.equal(true);
      expect(merchantSum).to.equal(report.amountSucceeded);
      expect(during.amount + final.amountSettled).to.equal(merchantSum);
      await expectSettledAndMatched(p, new Map([["hot1", merchantSum]]));
    });

    it("a hot account hammered directly at high concurrency while settlements run back to back", async () => {
      const settling = settleLoop((r) => p.paymentClient.settle(r));
      const responses = await inParallel(2000, 128, async (i) => {
        const r = await p.merchantClient.pay({ salerId: "hot", totalFee: amountFor(i, 999) });
        return r.order!;
      });
      await settling.stop();
      await p.paymentClient.settle({});
      const total = responses.reduce((a, o) => a + o.amount, 0n);
      await expectSettledAndMatched(p, new Map([["hot", total]]));
    });
  });
}
