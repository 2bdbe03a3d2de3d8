/**
 * The merchant gives up on an order only through the payment system: an order stored and then
 * held back before its send (a stalled process, a long pause) is closed at the payment system by
 * the resolver, and the late send that follows moves no money. Both sides then agree on every
 * order, and reconciliation finds nothing.
 */
import { expect } from "chai";
import { type Order as MerchantOrder } from "../../gen/merchant/v1/merchant_pb.js";
import { MSG_CLOSED } from "../../services/merchant/orderSender.js";
import { MSG_PAYMENT_CLOSED } from "../../services/payment/payments.js";
import { MSG_WITHDRAWAL_CLOSED } from "../../services/payment/withdrawals.js";
import { backends, startPlatform, type Platform } from "../harness.js";
import { countRows, storedBalance } from "../payment/fixtures.js";
import { OrderType } from "../../gen/order/v1/order_pb.js";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

for (const backend of backends()) {
  describe(`closing an order that is sent late [${backend.name}]`, () => {
    let p: Platform;
    /** Sends of these accounts wait until released. */
    const held = new Map<string, { reached: () => void; release: Promise<void> }>();

    function hold(salerId: string): { reached: Promise<void>; release: () => void } {
      let reached!: () => void;
      let release!: () => void;
      const reachedP = new Promise<void>((resolve) => (reached = resolve));
      const releaseP = new Promise<void>((resolve) => (release = resolve));
      held.set(salerId, { reached, release: releaseP });
      return { reached: reachedP, release };
    }

    beforeEach(async () => {
      held.clear();
      p = await startPlatform(backend, {
        merchant: { closeUnknownAfterSeconds: 1, resolveInitAfterSeconds: 1 },
        senderFaults: {
          async beforeSend(order) {
            const h = held.get(order.salerId);
            if (!h) return;
            h.reached();
            await h.release;
          },
        },
      });
    });
    afterEach(async () => {
      await p?.close();
    });

    async function stateOf(requestId: string): Promise<MerchantOrder> {
      return (await p.merchantClient.getOrder({ requestId })).order!;
    }

    it("a payment held past the close age is closed, and its late send answers FAIL and credits nothing", async () => {
      // An honest payment alongside, to show the rest of the platform carries on.
      expect((await p.merchantClient.pay({ salerId: "honest", totalFee: 250n })).order?.state).to.equal("SUCCESS");
      const pay = hold("late-pay");
      const withdraw = hold("late-wd");
      const paying = p.merchantClient.pay({ salerId: "late-pay", totalFee: 500n });
      const withdrawing = p.merchantClient.withdraw({ salerId: "late-wd", withdrawMoney: 70n });
      await Promise.all([pay.reached, withdraw.reached]);
      const [stored] = await p.merchant.db.knex("merchant_orders").where({ saler_id: "late-pay" }).select("request_id");
      const [storedW] = await p.merchant.db.knex("merchant_orders").where({ saler_id: "late-wd" }).select("request_id");
      const requestId = (stored as { request_id: string }).request_id;
      const withdrawalId = (storedW as { request_id: string }).request_id;
      expect((await stateOf(requestId)).state).to.equal("INIT");

      // Older than the close age (request times have whole seconds): the resolver closes both.
      await sleep(2_100);
      const resolved = await p.merchantClient.resolveUnknownOrders({ initOlderThanSeconds: 1 });
      expect(resolved).to.include({ examined: 2, failed: 2, succeeded: 0, stillUnknown: 0 });
      expect(await stateOf(requestId)).to.include({ state: "FAIL", responseMsg: MSG_CLOSED });
      expect(await p.paymentClient.queryOrder({ requestId })).to.include({ found: false, closed: true });

      // The held sends go out now, after the close.
      pay.release();
      withdraw.release();
      const late = (await paying).order!;
      const lateW = (await withdrawing).order!;
      expect(late).to.include({ state: "FAIL", responseCode: "FAIL", responseMsg: MSG_PAYMENT_CLOSED });
      expect(lateW).to.include({ state: "FAIL", responseCode: "FAIL", responseMsg: MSG_WITHDRAWAL_CLOSED });
      // The stored record is the close's, and the payment system recorded no payment.
      expect(await stateOf(requestId)).to.include({ state: "FAIL", responseMsg: MSG_CLOSED });
      expect(await stateOf(withdrawalId)).to.include({ state: "FAIL", responseMsg: MSG_CLOSED });
      expect(await countRows(p.payment.db.knex, "payment_orders", { response_code: "SUCCESS" })).to.equal(1);
      expect(await countRows(p.payment.db.knex, "payment_orders", { response_code: "CLOSED" })).to.equal(1);
      expect(await countRows(p.payment.db.knex, "withdrawal_orders", { response_code: "CLOSED" })).to.equal(1);

      await p.paymentClient.settle({ fullSweep: true });
      expect(await storedBalance(p.payment.db.knex, "late-pay")).to.equal(0n);
      expect(await storedBalance(p.payment.db.knex, "honest")).to.equal(250n);

      const { run } = await p.reconClient.reconcile({});
      expect(run!.balanced, JSON.stringify(run!.diffs, (_k, v: unknown) => (typeof v === "bigint" ? String(v) : v))).to.equal(true);
      for (const d of run!.diffs) {
        expect(d.f113Count, `F113 for ${OrderType[d.orderType]}`).to.equal(0n);
        expect(d.f114Count).to.equal(0n);
        expect(d.f115Count).to.equal(0n);
      }
      const audit = (await p.reconClient.audit({})).run!;
      expect(audit.balanced).to.equal(true);
    });
  });
}
