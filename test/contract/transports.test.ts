/**
 * Every service through every transport: grpc-js, the Connect gRPC client, the Connect protocol,
 * plain HTTP JSON and `buf curl` (gRPC and Connect). Each unary call must succeed with the same
 * snake_case answer, each must have been recorded exactly once, and the server streams and a
 * reconciliation must show them.
 */
import { expect } from "chai";
import type { JsonObject } from "@bufbuild/protobuf";
import { backends } from "../harness.js";
import { callerFor, STREAMING_TRANSPORTS, TRANSPORTS } from "./clients.js";
import { PROBE_ACCOUNT, startContractPlatform, TARGET_NAMES, type ContractPlatform } from "./targets.js";
import { OrderType } from "../../gen/order/v1/order_pb.js";

for (const backend of backends()) {
  describe(`contract: every service through every transport [${backend.name}]`, () => {
    let cp: ContractPlatform;
    const keys = new Map<string, string[]>();
    before(async () => {
      cp = await startContractPlatform(backend);
    });
    after(async () => cp?.close());

    // The targets exist only once the platform runs; the suites are laid out by name.
    for (const name of TARGET_NAMES) {
      describe(name, () => {
        const target = () => cp.targets.find((t) => t.name === name)!;

        for (const transport of TRANSPORTS) {
          it(`answers a unary call through ${transport}`, async () => {
            const t = target();
            const caller = callerFor(transport, t.service, t.server);
            try {
              const request = t.unary.request();
              const answer = await caller.unary(t.unary.method, request);
              keys.set(name, [...(keys.get(name) ?? []), t.unary.check(request, answer)]);
            } finally {
              caller.close();
            }
          });
        }

        for (const transport of STREAMING_TRANSPORTS) {
          it(`streams through ${transport}`, async () => {
            const t = target();
            const caller = callerFor(transport, t.stream.service ?? t.service, t.server);
            try {
              const sent = keys.get(name) ?? [];
              expect(sent, "the unary calls above ran").to.have.length(TRANSPORTS.length);
              t.stream.check(sent, await caller.stream!(t.stream.method, t.stream.request(sent)));
            } finally {
              caller.close();
            }
          });
        }
      });
    }

    // Mocha runs a suite's own tests before its sub-suites: these come after the calls above.
    describe("after the calls", () => {
    it("recorded each payment call exactly once", async () => {
      const { account } = await cp.platform.paymentClient.getBalance({ salerId: PROBE_ACCOUNT });
      // One payment per transport straight to the payment system, one per transport via the merchant.
      expect(account?.pending).to.equal(BigInt(2 * TRANSPORTS.length * 100));
      expect(account?.pendingCount).to.equal(BigInt(2 * TRANSPORTS.length));
      const { orders } = await cp.platform.merchantClient.listOrders({ salerId: PROBE_ACCOUNT });
      expect(orders.map((o) => o.state)).to.deep.equal(Array(TRANSPORTS.length).fill("SUCCESS"));
      expect(orders.map((o) => o.requestId).sort()).to.deep.equal([...(keys.get("merchant") ?? [])].sort());
    });

    it("reconciled what the calls left on each side", async () => {
      const { run } = await cp.platform.reconClient.reconcile({});
      const payments = run?.diffs.find((d) => d.orderType === OrderType.PAYMENT);
      // The merchant's payments are on both sides (F000); the ones sent straight to the payment
      // system exist only there (F113).
      const n = BigInt(TRANSPORTS.length);
      expect(payments).to.include({ merchantRows: n, paymentRows: 2n * n, f000Count: n, f000Amount: 100n * n, f113Count: n, f114Count: 0n, f115Count: 0n });
    });

    it("answers the Connect gateway in snake_case JSON with int64 as strings", async () => {
      const payment = cp.targets.find((t) => t.name === "payment")!;
      const res = await fetch(`${payment.server.httpUrl}/payment.v1.PaymentService/GetBalance`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ saler_id: PROBE_ACCOUNT }),
      });
      expect(res.status).to.equal(200);
      expect(res.headers.get("content-type")).to.equal("application/json");
      const body = (await res.json()) as JsonObject;
      expect(body).to.deep.equal({
        account: { saler_id: PROBE_ACCOUNT, balance: "0", pending: String(2 * TRANSPORTS.length * 100), pending_count: String(2 * TRANSPORTS.length) },
      });
    });
    });
  });
}
