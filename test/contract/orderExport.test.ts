/**
 * The shared order contract (proto/order/v1): the merchant and the payment system each serve
 * OrderExportService. After known traffic both export the same successful orders of every type,
 * with the amounts sent, sorted by the chosen key; a request without an order type is refused
 * naming order_type.
 */
import { expect } from "chai";
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { OrderExportService, OrderKey, OrderType, type ExportedOrder } from "../../gen/order/v1/order_pb.js";
import { backends, startPlatform, type Platform } from "../harness.js";

for (const backend of backends()) {
  describe(`order.v1.OrderExportService on both systems [${backend.name}]`, () => {
    let p: Platform;
    let clients: { name: string; client: Client<typeof OrderExportService> }[];
    const paid: string[] = [];
    let withdrawal = "";
    let refund = "";

    before(async () => {
      p = await startPlatform(backend);
      for (let i = 0; i < 6; i++) {
        const { order } = await p.merchantClient.pay({ salerId: `ox-${i % 3}`, totalFee: BigInt(100 + i) });
        expect(order?.state).to.equal("SUCCESS");
        paid.push(order!.requestId);
      }
      await p.paymentClient.settle({ fullSweep: true });
      const w = (await p.merchantClient.withdraw({ salerId: "ox-0", withdrawMoney: 50n })).order!;
      expect(w.state).to.equal("SUCCESS");
      withdrawal = w.requestId;
      const r = (await p.merchantClient.refund({ paymentRequestId: paid[1]!, refundFee: 30n })).order!;
      expect(r.state).to.equal("SUCCESS");
      refund = r.requestId;
      clients = [
        { name: "payment", client: p.paymentOrders },
        { name: "merchant", client: p.merchantOrders },
      ];
    });
    after(async () => {
      await p?.close();
    });

    async function collect(stream: AsyncIterable<{ orders: ExportedOrder[] }>): Promise<ExportedOrder[]> {
      const all: ExportedOrder[] = [];
      for await (const m of stream) all.push(...m.orders);
      return all;
    }

    it("exports every successful order of each type on both sides, the same orders, in key order", async () => {
      const expected = {
        [OrderType.PAYMENT]: paid.map((id, i) => [id, `ox-${i % 3}`, BigInt(100 + i)]),
        [OrderType.WITHDRAWAL]: [[withdrawal, "ox-0", 50n]],
        [OrderType.REFUND]: [[refund, "ox-1", 30n]],
      };
      for (const type of [OrderType.PAYMENT, OrderType.WITHDRAWAL, OrderType.REFUND] as const) {
        for (const key of [OrderKey.RESPONSE_ID, OrderKey.REQUEST_ID]) {
          const what = `${OrderType[type]} by ${OrderKey[key]}`;
          const [payment, merchant] = await Promise.all(clients.map((c) => collect(c.client.exportOrders({ orderType: type, key }))));
          for (const [side, orders] of [
            ["payment", payment!],
            ["merchant", merchant!],
          ] as const) {
            expect(
              orders.map((o) => [o.requestId, o.salerId, o.amount]),
              `${side} ${what}`,
            ).to.have.deep.members(expected[type]);
            const keys = orders.map((o) => (key === OrderKey.REQUEST_ID ? o.requestId : o.responseId));
            expect(keys, `${side} ${what} sorted`).to.deep.equal([...keys].sort());
            for (const o of orders) expect(o.responseId, `${side} ${what}`).to.match(/^\d{20}$/);
          }
          const fields = (o: ExportedOrder) => [o.requestId, o.responseId, o.salerId, o.amount, o.requestTime, o.responseTime];
          expect(merchant!.map(fields), what).to.deep.equal(payment!.map(fields));
        }
      }
    });

    it("refuses a request without an order type, naming order_type", async () => {
      for (const c of clients) {
        try {
          await collect(c.client.exportOrders({ orderType: OrderType.UNSPECIFIED }));
          expect.fail(`${c.name} exported without an order type`);
        } catch (err) {
          const e = ConnectError.from(err);
          expect(e.code, c.name).to.equal(Code.InvalidArgument);
          expect(e.rawMessage, c.name).to.match(/^order_type: /);
        }
      }
    });
  });
}
