/**
 * The shared order contract (proto/order/v1): the merchant and the payment system each serve
 * OrderExportService, answering exactly what their own ExportOrders answers, for every order type
 * and key; a request without an order type is refused naming order_type.
 */
import { expect } from "chai";
import { Code, ConnectError } from "@connectrpc/connect";
import { OrderExportService, OrderKey, OrderType } from "../../gen/order/v1/order_pb.js";
import { createGrpcClient, type GrpcClientHandle } from "../../services/shared/rpc/grpcClient.js";
import { backends, startPlatform, type Platform } from "../harness.js";

for (const backend of backends()) {
  describe(`order.v1.OrderExportService on both systems [${backend.name}]`, () => {
    let p: Platform;
    let clients: { name: string; handle: GrpcClientHandle<typeof OrderExportService>; own: (type: OrderType, key: OrderKey) => AsyncIterable<{ orders: unknown[] }> }[];

    before(async () => {
      p = await startPlatform(backend);
      const paid: string[] = [];
      for (let i = 0; i < 6; i++) {
        const { order } = await p.merchantClient.pay({ salerId: `ox-${i % 3}`, totalFee: BigInt(100 + i) });
        expect(order?.state).to.equal("SUCCESS");
        paid.push(order!.requestId);
      }
      await p.paymentClient.settle({ fullSweep: true });
      expect((await p.merchantClient.withdraw({ salerId: "ox-0", withdrawMoney: 50n })).order?.state).to.equal("SUCCESS");
      expect((await p.merchantClient.refund({ paymentRequestId: paid[1]!, refundFee: 30n })).order?.state).to.equal("SUCCESS");
      clients = [
        {
          name: "payment",
          handle: createGrpcClient(OrderExportService, p.payment.server.grpcAddress),
          own: (type, key) => p.paymentClient.exportOrders({ orderType: type as number, key: key as number }),
        },
        {
          name: "merchant",
          handle: createGrpcClient(OrderExportService, p.merchant.server.grpcAddress),
          own: (type, key) => p.merchantClient.exportOrders({ orderType: type as number, key: key as number }),
        },
      ];
    });
    after(async () => {
      for (const c of clients ?? []) c.handle.close();
      await p?.close();
    });

    async function collect(stream: AsyncIterable<{ orders: unknown[] }>): Promise<unknown[]> {
      const all: unknown[] = [];
      for await (const m of stream) all.push(...m.orders.map((o) => ({ ...(o as object) })));
      return all.map((o) => {
        const { $typeName: _, ...fields } = o as { $typeName?: string };
        return fields;
      });
    }

    it("exports the same orders as each system's own ExportOrders, for every type and key", async () => {
      for (const c of clients) {
        for (const [type, expected] of [
          [OrderType.PAYMENT, 6],
          [OrderType.WITHDRAWAL, 1],
          [OrderType.REFUND, 1],
        ] as const) {
          for (const key of [OrderKey.RESPONSE_ID, OrderKey.REQUEST_ID]) {
            const shared = await collect(c.handle.client.exportOrders({ orderType: type, key }));
            const own = await collect(c.own(type, key));
            expect(shared, `${c.name} ${OrderType[type]} ${OrderKey[key]}`).to.have.length(expected);
            expect(shared, `${c.name} ${OrderType[type]} ${OrderKey[key]}`).to.deep.equal(own);
          }
        }
      }
    });

    it("refuses a request without an order type, naming order_type", async () => {
      for (const c of clients) {
        try {
          await collect(c.handle.client.exportOrders({ orderType: OrderType.UNSPECIFIED }));
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
