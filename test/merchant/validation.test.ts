import { expect } from "chai";
import { Code } from "@connectrpc/connect";
import { backends, startPlatform, type Platform } from "../harness.js";
import { countRows, expectCode, paymentRowCounts } from "../payment/fixtures.js";

const BAD_SALER_IDS: [string, string][] = [
  ["missing", ""],
  ["65 characters", "m".repeat(65)],
  ["a space", "shop 1"],
  ["a dot", "shop.1"],
  ["a percent sign", "shop%1"],
  ["Chinese characters", "商户"],
];

const BAD_AMOUNTS: [string, bigint][] = [
  ["zero", 0n],
  ["negative", -5n],
  ["above 10^12", 1_000_000_000_001n],
  ["the int64 maximum", 2n ** 63n - 1n],
];

for (const backend of backends()) {
  describe(`merchant request validation [${backend.name}]`, () => {
    let p: Platform;
    before(async () => {
      p = await startPlatform(backend);
    });
    after(async () => p?.close());

    async function nothingWritten(run: () => Promise<unknown>): Promise<void> {
      const merchantBefore = await countRows(p.merchant.db.knex, "merchant_orders");
      const paymentBefore = await paymentRowCounts(p);
      await run();
      expect(await countRows(p.merchant.db.knex, "merchant_orders")).to.equal(merchantBefore);
      expect(await paymentRowCounts(p)).to.deep.equal(paymentBefore);
    }

    for (const [title, salerId] of BAD_SALER_IDS) {
      it(`Pay and Withdraw refuse a saler_id with ${title}`, async () => {
        await nothingWritten(async () => {
          const e1 = await expectCode(p.merchantClient.pay({ salerId, totalFee: 100n }), Code.InvalidArgument);
          expect(e1.rawMessage).to.match(/^saler_id: /);
          const e2 = await expectCode(p.merchantClient.withdraw({ salerId, withdrawMoney: 100n }), Code.InvalidArgument);
          expect(e2.rawMessage).to.match(/^saler_id: /);
        });
      });
    }

    for (const [title, amount] of BAD_AMOUNTS) {
      it(`Pay refuses total_fee ${title} and Withdraw refuses withdraw_money ${title}`, async () => {
        await nothingWritten(async () => {
          const e1 = await expectCode(p.merchantClient.pay({ salerId: "shop1", totalFee: amount }), Code.InvalidArgument);
          expect(e1.rawMessage).to.match(/^total_fee: /);
          const e2 = await expectCode(p.merchantClient.withdraw({ salerId: "shop1", withdrawMoney: amount }), Code.InvalidArgument);
          expect(e2.rawMessage).to.match(/^withdraw_money: /);
        });
      });
    }

    it("builds well-formed requests: 20-digit request_id starting with request_time, distinct ids, exact amounts", async () => {
      const orders = await Promise.all(Array.from({ length: 50 }, (_, i) => p.merchantClient.pay({ salerId: "shop-ok", totalFee: BigInt(i + 1) })));
      const ids = new Set<string>();
      for (const { order } of orders) {
        expect(order?.state).to.equal("SUCCESS");
        expect(order!.requestId).to.match(/^\d{20}$/);
        expect(order!.requestId.slice(0, 14)).to.equal(order!.requestTime.replace(/[- :]/g, ""));
        ids.add(order!.requestId);
      }
      expect(ids.size).to.equal(50);
      const edge = await p.merchantClient.pay({ salerId: "m".repeat(64), totalFee: 1_000_000_000_000n });
      expect(edge.order?.state).to.equal("SUCCESS");
      expect(edge.order?.amount).to.equal(1_000_000_000_000n);
    });
  });
}
