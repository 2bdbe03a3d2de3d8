/**
 * CloseOrder: a request_id closed at the payment system never carries an order afterwards, and
 * a close racing a Pay or Withdraw for the same request_id has exactly one winner, also across
 * payment instances on one database.
 */
import { expect } from "chai";
import { Code } from "@connectrpc/connect";
import { MSG_PAYMENT_CLOSED } from "../../services/payment/payments.js";
import { MSG_WITHDRAWAL_CLOSED } from "../../services/payment/withdrawals.js";
import { backends } from "../harness.js";
import { countRows, inParallel, paymentInstances, payRequest, refusal, storedBalance, withdrawRequest } from "./fixtures.js";
import { OrderType } from "../../gen/order/v1/order_pb.js";


for (const backend of backends()) {
  describe(`CloseOrder [${backend.name}]`, () => {
    const { instance } = paymentInstances(backend, "close");

    it("closes an unknown request_id for good: a later Pay answers FAIL and credits nothing", async () => {
      const { system, client, orders } = await instance();
      const req = payRequest("close-a", 700n);
      const closed = await client.closeOrder({ requestId: req.requestId, orderType: OrderType.PAYMENT });
      expect(closed.closed).to.equal(true);
      expect(closed.closeTime).to.match(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/);
      expect(closed.order.case).to.equal(undefined);

      // Idempotent: the same close again answers the first one.
      const again = await client.closeOrder({ requestId: req.requestId, orderType: OrderType.PAYMENT });
      expect(again).to.deep.include({ closed: true, closeTime: closed.closeTime });

      const paid = await client.pay(req);
      expect(paid).to.include({ responseCode: "FAIL", responseMsg: MSG_PAYMENT_CLOSED, requestId: req.requestId, salerId: "close-a", totalFee: 700n });
      // Any body under a closed request_id: FAIL, never a conflict, never a credit.
      const other = await client.pay({ ...req, totalFee: 1n });
      expect(other).to.include({ responseCode: "FAIL", responseMsg: MSG_PAYMENT_CLOSED });

      const query = await client.queryOrder({ requestId: req.requestId });
      expect(query).to.include({ found: false, closed: true, closeTime: closed.closeTime, orderType: OrderType.PAYMENT });

      const settled = await client.settle({ fullSweep: true });
      expect(settled.creditsApplied).to.equal(0n);
      expect(await storedBalance(system.db.knex, "close-a")).to.equal(0n);
      expect(await countRows(system.db.knex, "accounts")).to.equal(0);
      const exported: unknown[] = [];
      for await (const batch of orders.exportOrders({ orderType: OrderType.PAYMENT })) exported.push(...batch.orders);
      expect(exported).to.deep.equal([]);
      const balances: unknown[] = [];
      for await (const batch of client.exportBalances({})) balances.push(...batch.balances);
      expect(balances).to.deep.equal([]);
    });

    it("answers the order when the Pay came first, and leaves it as it was", async () => {
      const { system, client } = await instance();
      const req = payRequest("close-b", 900n);
      const paid = await client.pay(req);
      expect(paid.responseCode).to.equal("SUCCESS");
      const closed = await client.closeOrder({ requestId: req.requestId, orderType: OrderType.PAYMENT });
      expect(closed.closed).to.equal(false);
      expect(closed.closeTime).to.equal("");
      expect(closed.order.case).to.equal("payment");
      expect(closed.order.value).to.deep.include({ responseId: paid.responseId, responseCode: "SUCCESS", totalFee: 900n, salerId: "close-b" });
      // The replay still answers the stored success.
      expect((await client.pay(req)).responseId).to.equal(paid.responseId);
      await client.settle({ fullSweep: true });
      expect(await storedBalance(system.db.knex, "close-b")).to.equal(900n);
    });

    it("closes withdrawals the same way, and moves no money under a closed request_id", async () => {
      const { system, client } = await instance();
      expect((await client.pay(payRequest("close-w", 1_000n))).responseCode).to.equal("SUCCESS");
      await client.settle({ fullSweep: true });
      const req = withdrawRequest("close-w", 400n);
      expect((await client.closeOrder({ requestId: req.requestId, orderType: OrderType.WITHDRAWAL })).closed).to.equal(true);
      const w = await client.withdraw(req);
      expect(w).to.include({ responseCode: "FAIL", responseMsg: MSG_WITHDRAWAL_CLOSED, withdrawMoney: 400n, salerId: "close-w" });
      expect(await storedBalance(system.db.knex, "close-w")).to.equal(1_000n);
      // A payment under the same request_id is another order type: closing one closes only it.
      expect((await client.queryOrder({ requestId: req.requestId, orderType: OrderType.PAYMENT })).closed).to.equal(false);

      const done = withdrawRequest("close-w", 300n);
      expect((await client.withdraw(done)).responseCode).to.equal("SUCCESS");
      const late = await client.closeOrder({ requestId: done.requestId, orderType: OrderType.WITHDRAWAL });
      expect(late.closed).to.equal(false);
      expect(late.order.case).to.equal("withdrawal");
      expect(await storedBalance(system.db.knex, "close-w")).to.equal(700n);
    });

    it("refuses a malformed close naming the field, and writes nothing", async () => {
      const { system, client } = await instance();
      const { requestId } = payRequest("close-x", 1n);
      const noType = await refusal(client.closeOrder({ requestId }));
      expect(noType.code).to.equal(Code.InvalidArgument);
      expect(noType.rawMessage).to.match(/^order_type: /);
      const badId = await refusal(client.closeOrder({ requestId: "123", orderType: OrderType.PAYMENT }));
      expect(badId.code).to.equal(Code.InvalidArgument);
      expect(badId.rawMessage).to.match(/^request_id: /);
      expect(await countRows(system.db.knex, "payment_orders")).to.equal(0);
      expect(await countRows(system.db.knex, "withdrawal_orders")).to.equal(0);
    });

    it("a close racing a Pay for the same request_id: exactly one wins, every time", async function () {
      // Two instances on one database where the backend allows it; the embedded file has one.
      const a = await instance();
      const b = backend.mysqlUrl ? await instance() : a;
      const rounds = 300;
      let payWon = 0;
      let closeWon = 0;
      let owed = 0n;
      await inParallel(rounds, 32, async (i) => {
        const req = payRequest(`race${i % 7}`, BigInt(1 + i));
        const [payer, closer] = i % 2 === 0 ? [a, b] : [b, a];
        const [paid, closed] = await Promise.all([
          payer.client.pay(req),
          closer.client.closeOrder({ requestId: req.requestId, orderType: OrderType.PAYMENT }),
        ]);
        if (closed.closed) {
          closeWon++;
          expect(paid.responseCode, `round ${i}`).to.equal("FAIL");
          expect(paid.responseMsg).to.equal(MSG_PAYMENT_CLOSED);
        } else {
          payWon++;
          owed += req.totalFee;
          expect(paid.responseCode, `round ${i}`).to.equal("SUCCESS");
          expect(closed.order.case).to.equal("payment");
          expect(closed.order.value!.responseId).to.equal(paid.responseId);
        }
        // Whoever won, every later look agrees with it.
        const after = await closer.client.queryOrder({ requestId: req.requestId, orderType: OrderType.PAYMENT });
        expect(after.found).to.equal(!closed.closed);
        expect(after.closed).to.equal(closed.closed);
      });
      expect(payWon + closeWon).to.equal(rounds);
      await a.client.settle({ fullSweep: true });
      const knex = a.system.db.knex;
      let credited = 0n;
      for (let s = 0; s < 7; s++) credited += await storedBalance(knex, `race${s}`);
      expect(credited).to.equal(owed);
      expect(await countRows(knex, "payment_orders", { response_code: "SUCCESS" })).to.equal(payWon);
      expect(await countRows(knex, "payment_orders", { response_code: "CLOSED" })).to.equal(closeWon);
    });
  });
}
