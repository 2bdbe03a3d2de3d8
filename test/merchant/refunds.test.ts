/**
 * Refunds through the merchant: stored as orders of their own, sent to the payment system with
 * the payment's response_id, resolved like any order when the answer is lost, and shown on the
 * payment they refund.
 */
import { expect } from "chai";
import { Code, ConnectError } from "@connectrpc/connect";
import { MerchantService } from "../../gen/merchant/v1/merchant_pb.js";
import { MSG_CLOSED } from "../../services/merchant/orderSender.js";
import { startMerchantSystem } from "../../services/merchant/system.js";
import { MSG_REFUND_INSUFFICIENT_BALANCE } from "../../services/payment/refunds.js";
import { createGrpcClient } from "../../services/shared/rpc/grpcClient.js";
import { backends, freshStore, merchantConfig, silentLogger, startPlatform, type Platform } from "../harness.js";
import { closedAddress, inParallel, refusal, storedBalance } from "../payment/fixtures.js";
import { Relay } from "../payment/relay.js";
import { OrderType } from "../../gen/order/v1/order_pb.js";



for (const backend of backends()) {
  describe(`merchant refunds [${backend.name}]`, () => {
    let p: Platform;
    const cleanups: (() => Promise<void>)[] = [];

    beforeEach(async () => {
      p = await startPlatform(backend);
    });
    afterEach(async () => {
      for (const c of cleanups.splice(0).reverse()) await c();
      await p?.close();
    });

    /** A successful, settled payment through the merchant. */
    async function paid(salerId: string, fee: bigint): Promise<string> {
      const { order } = await p.merchantClient.pay({ salerId, totalFee: fee });
      expect(order?.state).to.equal("SUCCESS");
      await p.paymentClient.settle({ fullSweep: true });
      return order!.requestId;
    }

    it("refunds a payment in parts; the payment shows its refunds, what was refunded and what is left", async () => {
      const paymentId = await paid("mr-a", 1_000n);
      const first = (await p.merchantClient.refund({ paymentRequestId: paymentId, refundFee: 250n })).order!;
      expect(first).to.include({ state: "SUCCESS", orderType: OrderType.REFUND, amount: 250n, salerId: "mr-a", paymentRequestId: paymentId, responseCode: "SUCCESS" });
      const second = (await p.merchantClient.refund({ paymentRequestId: paymentId, refundFee: 700n })).order!;
      expect(second.state).to.equal("SUCCESS");
      expect(await storedBalance(p.payment.db.knex, "mr-a")).to.equal(50n);

      const shown = await p.merchantClient.getOrder({ requestId: paymentId });
      expect(shown.order).to.include({ refunded: 950n, refundable: 50n, amount: 1_000n });
      expect(shown.refunds.map((r) => [r.requestId, r.amount, r.state])).to.deep.equal([
        [first.requestId, 250n, "SUCCESS"],
        [second.requestId, 700n, "SUCCESS"],
      ]);
      const { orders } = await p.merchantClient.listOrders({ salerId: "mr-a" });
      expect(orders.find((o) => o.requestId === paymentId)).to.include({ refunded: 950n, refundable: 50n });
      expect(orders.filter((o) => o.orderType === OrderType.REFUND)).to.have.length(2);
      const refundsOnly = await p.merchantClient.listOrders({ orderType: OrderType.REFUND });
      expect(refundsOnly.orders.map((o) => o.requestId)).to.have.members([first.requestId, second.requestId]);

      // Both sides export the same successful refunds.
      const merchantSide: string[] = [];
      for await (const b of p.merchantOrders.exportOrders({ orderType: OrderType.REFUND })) merchantSide.push(...b.orders.map((o) => `${o.responseId}:${o.amount}`));
      const paymentSide: string[] = [];
      for await (const b of p.paymentOrders.exportOrders({ orderType: OrderType.REFUND })) paymentSide.push(...b.orders.map((o) => `${o.responseId}:${o.amount}`));
      expect(merchantSide).to.deep.equal(paymentSide);
      expect(merchantSide).to.have.length(2);
    });

    it("refuses, naming the field, a refund of what is not a successful payment or more than is left; nothing is sent", async () => {
      const paymentId = await paid("mr-b", 100n);
      const tooMuch = await refusal(p.merchantClient.refund({ paymentRequestId: paymentId, refundFee: 101n }));
      expect(tooMuch.code).to.equal(Code.FailedPrecondition);
      expect(tooMuch.rawMessage).to.match(/^refund_fee: /);
      const unknown = await refusal(p.merchantClient.refund({ paymentRequestId: "20190829171520000000", refundFee: 1n }));
      expect(unknown.code).to.equal(Code.NotFound);
      expect(unknown.rawMessage).to.match(/^payment_request_id: /);
      const { order: w } = await p.merchantClient.withdraw({ salerId: "mr-b", withdrawMoney: 10n });
      const notPayment = await refusal(p.merchantClient.refund({ paymentRequestId: w!.requestId, refundFee: 1n }));
      expect(notPayment.code).to.equal(Code.NotFound);
      const bad = await refusal(p.merchantClient.refund({ paymentRequestId: paymentId, refundFee: 0n }));
      expect(bad.code).to.equal(Code.InvalidArgument);
      expect(bad.rawMessage).to.match(/^refund_fee: /);
      expect((await p.merchantClient.listOrders({ orderType: OrderType.REFUND })).orders).to.deep.equal([]);
    });

    it("a refund the balance does not cover is FAIL with the payment system's message, and leaves the payment refundable", async () => {
      const { order } = await p.merchantClient.pay({ salerId: "mr-c", totalFee: 300n });
      // Not settled yet: nothing on the balance to refund from.
      const refund = (await p.merchantClient.refund({ paymentRequestId: order!.requestId, refundFee: 300n })).order!;
      expect(refund).to.include({ state: "FAIL", responseMsg: MSG_REFUND_INSUFFICIENT_BALANCE });
      expect((await p.merchantClient.getOrder({ requestId: order!.requestId })).order).to.include({ refunded: 0n, refundable: 300n });
      await p.paymentClient.settle({ fullSweep: true });
      expect((await p.merchantClient.refund({ paymentRequestId: order!.requestId, refundFee: 300n })).order?.state).to.equal("SUCCESS");
      expect(await storedBalance(p.payment.db.knex, "mr-c")).to.equal(0n);
    });

    it("concurrent refunds of one payment through the merchant never add up to more than it, and both sides agree", async () => {
      const paymentId = await paid("mr-d", 100n);
      const answers = await inParallel(30, 30, async () => {
        try {
          return (await p.merchantClient.refund({ paymentRequestId: paymentId, refundFee: 10n })).order!.state;
        } catch (err) {
          return Code[ConnectError.from(err).code];
        }
      });
      const ok = answers.filter((a) => a === "SUCCESS").length;
      expect(ok).to.be.at.most(10);
      const shown = (await p.merchantClient.getOrder({ requestId: paymentId })).order!;
      expect(shown.refunded).to.equal(BigInt(ok) * 10n);
      expect(await storedBalance(p.payment.db.knex, "mr-d")).to.equal(100n - BigInt(ok) * 10n);
      const [row] = (await p.payment.db.knex("payment_orders").where({ saler_id: "mr-d" }).select("refunded")) as { refunded: unknown }[];
      expect(BigInt(String(row!.refunded))).to.equal(BigInt(ok) * 10n);
    });

    it("a refund without an answer is UNKNOWN, then resolved: to SUCCESS when the payment system has it, closed there and FAIL when it never arrived", async () => {
      // Merchants of their own on one database: one direct, one through a relay that drops
      // answers, one facing a payment system that is down.
      const store = freshStore(backend, "merchant");
      const merchant = async (paymentAddress: string, overrides: Parameters<typeof merchantConfig>[2] = {}) => {
        const system = await startMerchantSystem(merchantConfig(store, paymentAddress, overrides), silentLogger);
        const handle = createGrpcClient(MerchantService, system.server.grpcAddress);
        cleanups.push(async () => {
          handle.close();
          await system.close();
        });
        return handle.client;
      };
      cleanups.push(() => store.drop());
      const direct = await merchant(p.payment.server.grpcAddress, { closeUnknownAfterSeconds: 0 });
      const { order: payment } = await direct.pay({ salerId: "mr-e", totalFee: 1_000n });
      expect(payment?.state).to.equal("SUCCESS");
      await p.paymentClient.settle({ fullSweep: true });
      const paymentId = payment!.requestId;

      const lossy = await Relay.start(p.payment.server.grpcAddress);
      cleanups.push(() => lossy.close());
      const viaRelay = await merchant(lossy.address, { callTimeoutMs: 1_500 });
      // The relayed connection works first.
      expect((await viaRelay.pay({ salerId: "mr-warm", totalFee: 1n })).order?.state).to.equal("SUCCESS");
      lossy.dropping = true;
      const lost = (await viaRelay.refund({ paymentRequestId: paymentId, refundFee: 400n })).order!;
      expect(lost.state).to.equal("UNKNOWN");
      // In flight: not refundable again meanwhile.
      expect((await direct.getOrder({ requestId: paymentId })).order).to.include({ refunded: 0n, refundable: 600n });
      for (let i = 0; i < 500 && !(await p.paymentClient.queryOrder({ requestId: lost.requestId })).found; i++) await new Promise((r) => setTimeout(r, 10));

      const down = await merchant(await closedAddress(), { callTimeoutMs: 500 });
      const never = (await down.refund({ paymentRequestId: paymentId, refundFee: 100n })).order!;
      expect(never.state).to.equal("UNKNOWN");

      expect(await direct.resolveUnknownOrders({})).to.include({ examined: 2, succeeded: 1, failed: 1 });
      expect((await direct.getOrder({ requestId: lost.requestId })).order).to.include({ state: "SUCCESS", amount: 400n });
      expect((await direct.getOrder({ requestId: never.requestId })).order).to.include({ state: "FAIL", responseMsg: MSG_CLOSED });
      expect(await p.paymentClient.queryOrder({ requestId: never.requestId, orderType: OrderType.REFUND })).to.include({ closed: true });
      expect((await direct.getOrder({ requestId: paymentId })).order).to.include({ refunded: 400n, refundable: 600n });
      expect(await storedBalance(p.payment.db.knex, "mr-e")).to.equal(600n);
    });
  });
}
