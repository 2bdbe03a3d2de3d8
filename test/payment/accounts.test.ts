import { expect } from "chai";
import { Code } from "@connectrpc/connect";
import { backends, startPlatform, type Platform } from "../harness.js";
import { MSG_INSUFFICIENT_BALANCE, expectCode, payRequest, withdrawRequest } from "./fixtures.js";
import { OrderType } from "../../gen/order/v1/order_pb.js";

for (const backend of backends()) {
  describe(`balances, accounts and order queries [${backend.name}]`, () => {
    let p: Platform;
    beforeEach(async () => {
      p = await startPlatform(backend);
    });
    afterEach(async () => p?.close());

    it("shows pending credit before settlement and settled balance after, apart", async () => {
      for (const fee of [100n, 250n, 3n]) await p.paymentClient.pay(payRequest("bal", fee));
      let { account } = await p.paymentClient.getBalance({ salerId: "bal" });
      expect(account).to.include({ salerId: "bal", balance: 0n, pending: 353n, pendingCount: 3n });

      await p.paymentClient.settle({});
      ({ account } = await p.paymentClient.getBalance({ salerId: "bal" }));
      expect(account).to.include({ balance: 353n, pending: 0n, pendingCount: 0n });

      await p.paymentClient.pay(payRequest("bal", 47n));
      const w = await p.paymentClient.withdraw(withdrawRequest("bal", 53n));
      expect(w.responseCode).to.equal("SUCCESS");
      ({ account } = await p.paymentClient.getBalance({ salerId: "bal" }));
      expect(account).to.include({ balance: 300n, pending: 47n, pendingCount: 1n });

      const tooMuch = await p.paymentClient.withdraw(withdrawRequest("bal", 301n));
      expect(tooMuch.responseMsg).to.equal(MSG_INSUFFICIENT_BALANCE);
      await p.paymentClient.settle({});
      ({ account } = await p.paymentClient.getBalance({ salerId: "bal" }));
      expect(account).to.include({ balance: 347n, pending: 0n, pendingCount: 0n });
    });

    it("GetBalance refuses an unknown account with NOT_FOUND and a malformed one with INVALID_ARGUMENT", async () => {
      const nf = await expectCode(p.paymentClient.getBalance({ salerId: "nobody" }), Code.NotFound);
      expect(nf.rawMessage).to.match(/^saler_id: /);
      const bad = await expectCode(p.paymentClient.getBalance({ salerId: "no body" }), Code.InvalidArgument);
      expect(bad.rawMessage).to.match(/^saler_id: /);
      await expectCode(p.paymentClient.getBalance({ salerId: "" }), Code.InvalidArgument);
    });

    it("saler_ids that differ only in letter case are different accounts", async () => {
      await p.paymentClient.pay(payRequest("Shop1", 100n));
      await p.paymentClient.pay(payRequest("shop1", 20n));
      await p.paymentClient.pay(payRequest("SHOP1", 3n));
      await p.paymentClient.settle({});
      for (const [salerId, balance] of [["Shop1", 100n], ["shop1", 20n], ["SHOP1", 3n]] as const) {
        expect((await p.paymentClient.getBalance({ salerId })).account, salerId).to.include({ salerId, balance, pending: 0n });
      }
      expect((await p.paymentClient.withdraw(withdrawRequest("shop1", 21n))).responseMsg).to.equal(MSG_INSUFFICIENT_BALANCE);
      expect((await p.paymentClient.withdraw(withdrawRequest("shop1", 20n))).responseCode).to.equal("SUCCESS");
      expect((await p.paymentClient.getBalance({ salerId: "Shop1" })).account?.balance).to.equal(100n);
      await expectCode(p.paymentClient.getBalance({ salerId: "sHoP1" }), Code.NotFound);
      const { order } = await p.merchantClient.pay({ salerId: "Shop2", totalFee: 5n });
      await p.merchantClient.pay({ salerId: "shop2", totalFee: 6n });
      const listed = await p.merchantClient.listOrders({ salerId: "Shop2" });
      expect(listed.orders.map((o) => o.requestId)).to.deep.equal([order!.requestId]);
    });

    it("ListAccounts pages through every account once, in saler_id order", async () => {
      const names = ["a1", "A2", "b-3", "b_4", "c5", "Z6", "z7", "m8", "m9", "0x"];
      for (const [i, n] of names.entries()) await p.paymentClient.pay(payRequest(n, BigInt(i + 1)));
      await p.paymentClient.settle({});
      await p.paymentClient.pay(payRequest("m8", 1_000n));

      const seen: { salerId: string; balance: bigint; pending: bigint }[] = [];
      let pageToken = "";
      let pages = 0;
      do {
        const r = await p.paymentClient.listAccounts({ pageSize: 3, pageToken });
        expect(r.accounts.length).to.be.at.most(3);
        seen.push(...r.accounts);
        pageToken = r.nextPageToken;
        pages++;
        expect(pages).to.be.at.most(10);
      } while (pageToken !== "");
      expect(pages).to.equal(4);
      // Byte order, as the binary collation of the MySQL schema and SQLite both sort.
      expect(seen.map((a) => a.salerId)).to.deep.equal([...names].sort());
      for (const a of seen) {
        const i = names.indexOf(a.salerId);
        expect(a.balance, a.salerId).to.equal(BigInt(i + 1));
        expect(a.pending, a.salerId).to.equal(a.salerId === "m8" ? 1_000n : 0n);
      }

      const all = await p.paymentClient.listAccounts({});
      expect(all.accounts.map((a) => a.salerId)).to.deep.equal(seen.map((a) => a.salerId));
      expect(all.nextPageToken).to.equal("");
      const exact = await p.paymentClient.listAccounts({ pageSize: 10 });
      expect(exact.accounts.length).to.equal(10);
      expect(exact.nextPageToken).to.equal("");

      const e1 = await expectCode(p.paymentClient.listAccounts({ pageSize: 1001 }), Code.InvalidArgument);
      expect(e1.rawMessage).to.match(/^page_size: /);
      await expectCode(p.paymentClient.listAccounts({ pageSize: -1 }), Code.InvalidArgument);
      const e2 = await expectCode(p.paymentClient.listAccounts({ pageToken: "not a token" }), Code.InvalidArgument);
      expect(e2.rawMessage).to.match(/^page_token: /);
    });

    it("QueryOrder returns the stored answer of a payment or withdrawal, and found=false otherwise", async () => {
      const payReq = payRequest("q1", 900n);
      const paid = await p.paymentClient.pay(payReq);
      const wReq = withdrawRequest("q1", 10n);
      const refused = await p.paymentClient.withdraw(wReq);
      expect(refused.responseCode).to.equal("FAIL");

      const q1 = await p.paymentClient.queryOrder({ requestId: payReq.requestId });
      expect(q1.found).to.equal(true);
      expect(q1.orderType).to.equal(OrderType.PAYMENT);
      expect(q1.order.case).to.equal("payment");
      expect(q1.order.value).to.deep.equal(paid);

      const q2 = await p.paymentClient.queryOrder({ requestId: wReq.requestId, orderType: OrderType.WITHDRAWAL });
      expect(q2.found).to.equal(true);
      expect(q2.orderType).to.equal(OrderType.WITHDRAWAL);
      expect(q2.order.value).to.deep.equal(refused);
      const q2any = await p.paymentClient.queryOrder({ requestId: wReq.requestId });
      expect(q2any.order.value).to.deep.equal(refused);

      // Looked up under the other type, or never sent: not found.
      expect((await p.paymentClient.queryOrder({ requestId: payReq.requestId, orderType: OrderType.WITHDRAWAL })).found).to.equal(false);
      expect((await p.paymentClient.queryOrder({ requestId: wReq.requestId, orderType: OrderType.PAYMENT })).found).to.equal(false);
      const never = await p.paymentClient.queryOrder({ requestId: "20190829171520999999" });
      expect(never.found).to.equal(false);
      expect(never.order.case).to.equal(undefined);
      const e = await expectCode(p.paymentClient.queryOrder({ requestId: "" }), Code.InvalidArgument);
      expect(e.rawMessage).to.match(/^request_id: /);
    });
  });
}
