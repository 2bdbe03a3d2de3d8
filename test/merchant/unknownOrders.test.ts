/**
 * Orders whose payment call timed out or broke: the merchant records UNKNOWN, and later asks
 * the payment system (QueryOrder, same request_id) what really happened.
 */
import { expect } from "chai";
import { MerchantService } from "../../gen/merchant/v1/merchant_pb.js";
import { createGrpcClient, type GrpcClientHandle } from "../../services/shared/rpc/grpcClient.js";
import { startMerchantSystem, type MerchantSystem } from "../../services/merchant/system.js";
import { insertOrder } from "../../services/merchant/orders.js";
import { MSG_CLOSED } from "../../services/merchant/orderSender.js";
import type { MerchantConfig } from "../../services/merchant/config.js";
import { BusinessClock, idPrefix } from "../../services/shared/orders/time.js";
import { backends, freshStore, merchantConfig, silentLogger, startPlatform, type Platform, type Store } from "../harness.js";
import { closedAddress, MSG_INSUFFICIENT_BALANCE, storedBalance } from "../payment/fixtures.js";
import { Relay } from "../payment/relay.js";
import { OrderType } from "../../gen/order/v1/order_pb.js";


interface Merchant {
  system: MerchantSystem;
  handle: GrpcClientHandle<typeof MerchantService>;
}

for (const backend of backends()) {
  describe(`merchant UNKNOWN orders [${backend.name}]`, () => {
    let p: Platform;
    let store: Store;
    let merchants: Merchant[] = [];
    let relays: Relay[] = [];

    beforeEach(async () => {
      p = await startPlatform(backend);
      store = freshStore(backend, "merchant");
    });
    afterEach(async () => {
      for (const m of merchants) {
        m.handle.close();
        await m.system.close();
      }
      merchants = [];
      for (const r of relays) await r.close();
      relays = [];
      await store.drop();
      await p?.close();
    });

    /** One more merchant process on the shared merchant database. */
    async function merchant(paymentAddress: string, overrides: Partial<MerchantConfig> = {}) {
      const system = await startMerchantSystem(merchantConfig(store, paymentAddress, overrides), silentLogger);
      const handle = createGrpcClient(MerchantService, system.server.grpcAddress);
      merchants.push({ system, handle });
      return handle.client;
    }

    async function relay(target?: string): Promise<Relay> {
      const r = await Relay.start(target);
      relays.push(r);
      return r;
    }

    async function waitUntilRecorded(requestId: string): Promise<void> {
      for (let i = 0; i < 500; i++) {
        if ((await p.paymentClient.queryOrder({ requestId })).found) return;
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      throw new Error(`payment system never recorded ${requestId}`);
    }

    it("payment system down: UNKNOWN, still UNKNOWN while young, FAIL once older than the close age", async () => {
      const down = await merchant(await closedAddress());
      const { order } = await down.pay({ salerId: "u-down", totalFee: 500n });
      expect(order?.state).to.equal("UNKNOWN");
      expect(order?.responseId).to.equal("");
      expect(order?.responseCode).to.equal("");
      expect((await p.paymentClient.queryOrder({ requestId: order!.requestId })).found).to.equal(false);

      // Asking an unreachable payment system changes nothing.
      expect(await down.resolveUnknownOrders({})).to.include({ examined: 1, succeeded: 0, failed: 0, stillUnknown: 1 });

      const patient = await merchant(p.payment.server.grpcAddress, { closeUnknownAfterSeconds: 3600 });
      expect(await patient.resolveUnknownOrders({})).to.include({ examined: 1, succeeded: 0, failed: 0, stillUnknown: 1 });
      expect((await patient.getOrder({ requestId: order!.requestId })).order?.state).to.equal("UNKNOWN");

      const closing = await merchant(p.payment.server.grpcAddress, { closeUnknownAfterSeconds: 0 });
      expect(await closing.resolveUnknownOrders({})).to.include({ examined: 1, succeeded: 0, failed: 1, stillUnknown: 0 });
      const closed = (await closing.getOrder({ requestId: order!.requestId })).order!;
      expect(closed.state).to.equal("FAIL");
      expect(closed.responseMsg).to.equal(MSG_CLOSED);
      expect(await closing.resolveUnknownOrders({})).to.include({ examined: 0 });
      // Closed at the payment system: the same request arriving late moves no money.
      const query = await p.paymentClient.queryOrder({ requestId: order!.requestId });
      expect(query).to.include({ found: false, closed: true });
      const late = await p.paymentClient.pay({ requestTime: order!.requestTime, requestId: order!.requestId, salerId: "u-down", totalFee: 500n });
      expect(late.responseCode).to.equal("FAIL");
      await p.paymentClient.settle({ fullSweep: true });
      expect(await storedBalance(p.payment.db.knex, "u-down")).to.equal(0n);
    });

    it("answer lost after the payment system recorded it: UNKNOWN, then resolved to the recorded outcome", async () => {
      const lossy = await relay(p.payment.server.grpcAddress);
      const m = await merchant(lossy.address, { callTimeoutMs: 1_500 });
      // The connection works first.
      const warm = await m.pay({ salerId: "u-lost", totalFee: 1n });
      expect(warm.order?.state).to.equal("SUCCESS");

      lossy.dropping = true;
      const paid = (await m.pay({ salerId: "u-lost", totalFee: 700n })).order!;
      const withdrawn = (await m.withdraw({ salerId: "u-lost", withdrawMoney: 5_000n })).order!;
      expect(paid.state).to.equal("UNKNOWN");
      expect(withdrawn.state).to.equal("UNKNOWN");
      await waitUntilRecorded(paid.requestId);
      await waitUntilRecorded(withdrawn.requestId);

      const real = await merchant(p.payment.server.grpcAddress);
      expect(await real.resolveUnknownOrders({})).to.include({ examined: 2, succeeded: 1, failed: 1, stillUnknown: 0 });

      const recordedPay = await p.paymentClient.queryOrder({ requestId: paid.requestId, orderType: OrderType.PAYMENT });
      const resolvedPay = (await real.getOrder({ requestId: paid.requestId })).order!;
      expect(recordedPay.order.case).to.equal("payment");
      expect(resolvedPay.state).to.equal("SUCCESS");
      expect(resolvedPay.responseId).to.equal(recordedPay.order.value!.responseId);
      expect(resolvedPay.responseTime).to.equal(recordedPay.order.value!.responseTime);
      expect(resolvedPay.amount).to.equal(700n);

      const resolvedWithdrawal = (await real.getOrder({ requestId: withdrawn.requestId })).order!;
      expect(resolvedWithdrawal.state).to.equal("FAIL");
      expect(resolvedWithdrawal.responseCode).to.equal("FAIL");
      expect(resolvedWithdrawal.responseMsg).to.equal(MSG_INSUFFICIENT_BALANCE);

      await p.paymentClient.settle({});
      expect(await storedBalance(p.payment.db.knex, "u-lost")).to.equal(701n);
      expect(await real.resolveUnknownOrders({})).to.include({ examined: 0 });
    });

    it("call timed out before arriving, the request arrives later: resolved to SUCCESS with the payment's ids", async () => {
      const hole = await relay();
      const m = await merchant(hole.address, { callTimeoutMs: 300 });
      const order = (await m.pay({ salerId: "u-late", totalFee: 4_200n })).order!;
      expect(order.state).to.equal("UNKNOWN");
      expect(order.responseMsg).to.match(/DeadlineExceeded/);

      // The same request reaches the payment system afterwards (a delayed retry, another route).
      const late = await p.paymentClient.pay({ requestTime: order.requestTime, requestId: order.requestId, salerId: "u-late", totalFee: 4_200n });
      expect(late.responseCode).to.equal("SUCCESS");

      const real = await merchant(p.payment.server.grpcAddress, { closeUnknownAfterSeconds: 0 });
      expect(await real.resolveUnknownOrders({})).to.include({ examined: 1, succeeded: 1 });
      const resolved = (await real.getOrder({ requestId: order.requestId })).order!;
      expect(resolved.state).to.equal("SUCCESS");
      expect(resolved.responseId).to.equal(late.responseId);
    });

    it("INIT orders left by a crash are resolved once older than the given age, not before", async () => {
      const clock = new BusinessClock("Asia/Shanghai");
      const old = clock.secondsAgo(3_600);
      const base = { orderType: "PAYMENT" as const, state: "INIT" as const, responseId: "", responseTime: "", responseCode: "", responseMsg: "" };
      const arrived = { ...base, requestId: `${idPrefix(old)}000001`, requestTime: old, salerId: "u-init", amount: 300n };
      const lost = { ...base, requestId: `${idPrefix(old)}000002`, requestTime: old, salerId: "u-init", amount: 400n };
      const now = clock.current();
      const fresh = { ...base, requestId: `${idPrefix(now)}000003`, requestTime: now, salerId: "u-init", amount: 500n };
      const real = await merchant(p.payment.server.grpcAddress);
      for (const o of [arrived, lost, fresh]) await insertOrder(merchants[0]!.system.db.knex, o, o.requestTime);
      await p.paymentClient.pay({ requestTime: arrived.requestTime, requestId: arrived.requestId, salerId: "u-init", totalFee: 300n });

      expect(await real.resolveUnknownOrders({ initOlderThanSeconds: 600 })).to.include({ examined: 2, succeeded: 1, failed: 1 });
      const state = async (id: string) => (await real.getOrder({ requestId: id })).order!.state;
      expect(await state(arrived.requestId)).to.equal("SUCCESS");
      expect(await state(lost.requestId)).to.equal("FAIL");
      expect(await state(fresh.requestId)).to.equal("INIT");
    });
  });
}
