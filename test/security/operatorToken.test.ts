/**
 * Operator calls: with OPERATOR_TOKEN configured, settlement (payment Settle), simulations and
 * order resolution (merchant Simulate, ResolveUnknownOrders) and every call that starts a
 * reconciliation or audit run need "authorization: Bearer <token>": none is UNAUTHENTICATED, a
 * wrong one PERMISSION_DENIED, over gRPC and JSON, and a refused call has no effect. Everything
 * else stays open, the reconciliation passes the token on to the merchant system, and with no
 * configuration at all the seed's JSON is accepted unsigned as before.
 */
import { randomBytes } from "node:crypto";
import { expect } from "chai";
import { Code } from "@connectrpc/connect";
import { EnvReader } from "../../services/shared/runtime/config.js";
import { ConfigError } from "../../services/shared/errors.js";
import { readOperatorToken } from "../../services/shared/auth/authentication.js";
import { readReconConfig } from "../../services/recon/config.js";
import { backends, startPlatform, type Platform } from "../harness.js";
import { expectRefused, callJson } from "./calls.js";
import { requestIdentityJson } from "../support/requestIdentity.js";
import { OrderType } from "../../gen/order/v1/order_pb.js";

const CSV = "request_id,response_id,saler_id,total_fee\n20190829171520123456,20190829171521000001,saler1,100\n";

describe("operator token configuration", () => {
  it("reads OPERATOR_TOKEN and refuses a short or spaced one naming it", () => {
    expect(readOperatorToken(new EnvReader({}))).to.equal(undefined);
    expect(readOperatorToken(new EnvReader({ OPERATOR_TOKEN: "a".repeat(16) }))).to.equal("a".repeat(16));
    expect(readReconConfig(new EnvReader({ OPERATOR_TOKEN: "b".repeat(20) })).operatorToken).to.equal("b".repeat(20));
    expect(() => readOperatorToken(new EnvReader({ OPERATOR_TOKEN: "short" }))).to.throw(ConfigError, /OPERATOR_TOKEN/);
    expect(() => readOperatorToken(new EnvReader({ OPERATOR_TOKEN: "with a space in it!" }))).to.throw(ConfigError, /OPERATOR_TOKEN/);
  });
});

for (const backend of backends()) {
  describe(`operator token [${backend.name}]`, function () {
    this.timeout(120_000);
    const token = randomBytes(24).toString("hex");
    const bearer = (t: string) => ({ headers: { authorization: `Bearer ${t}` } });
    let p: Platform;

    before(async () => {
      p = await startPlatform(backend, { payment: { operatorToken: token }, merchant: { operatorToken: token }, recon: { operatorToken: token } });
    });
    after(async () => p?.close());

    const runCount = async () => (await p.reconClient.listRuns({ pageSize: 1000 })).runs.length;
    const merchantOrders = async () => (await p.merchantClient.listOrders({ pageSize: 1000 })).orders.length;

    /** Every operator call, with what it takes and a way to see that a refusal had no effect. */
    const calls: { rpc: string; call: (opts?: { headers: Record<string, string> }) => Promise<unknown>; json: object; effect: () => Promise<number> }[] = [
      { rpc: "/payment.v1.PaymentService/Settle", call: (o) => p.paymentClient.settle({}, o), json: {}, effect: async () => 0 },
      { rpc: "/merchant.v1.MerchantService/Simulate", call: (o) => p.merchantClient.simulate({ count: 3, accounts: 1, accountPrefix: "op" }, o), json: { count: 3 }, effect: merchantOrders },
      { rpc: "/merchant.v1.MerchantService/ResolveUnknownOrders", call: (o) => p.merchantClient.resolveUnknownOrders({}, o), json: {}, effect: async () => 0 },
      { rpc: "/recon.v1.ReconService/Reconcile", call: (o) => p.reconClient.reconcile({}, o), json: {}, effect: runCount },
      {
        rpc: "/recon.v1.ReconService/ReconcileFiles",
        call: (o) => p.reconClient.reconcileFiles({ orderType: OrderType.PAYMENT, merchant: { source: { case: "content", value: CSV } }, payment: { source: { case: "content", value: CSV } } }, o),
        json: { order_type: "ORDER_TYPE_PAYMENT", merchant: { content: CSV }, payment: { content: CSV } },
        effect: runCount,
      },
      { rpc: "/recon.v1.ReconService/Audit", call: (o) => p.reconClient.audit({}, o), json: {}, effect: runCount },
      {
        rpc: "/recon.v1.ReconService/AuditFiles",
        call: (o) =>
          p.reconClient.auditFiles(
            {
              merchantPayments: { source: { case: "content", value: "saler_id,total_fee\ns1,10\n" } },
              merchantWithdrawals: { source: { case: "content", value: "saler_id,withdraw_money\n" } },
              balances: { source: { case: "content", value: "saler_id,balance\ns1,10\n" } },
            },
            o,
          ),
        json: { merchant_payments: { content: "saler_id,total_fee\ns1,10\n" }, merchant_withdrawals: { content: "saler_id,withdraw_money\n" }, balances: { content: "saler_id,balance\ns1,10\n" } },
        effect: runCount,
      },
    ];

    for (const c of calls) {
      it(`${c.rpc}: no token is UNAUTHENTICATED, a wrong one PERMISSION_DENIED, neither has an effect; the token works`, async () => {
        const before = await c.effect();
        await expectRefused(c.call(), Code.Unauthenticated, /is an operator call: send the header "authorization: Bearer <operator token>"/);
        await expectRefused(c.call(bearer("x".repeat(48))), Code.PermissionDenied, /^authorization: the operator token is not valid$/);
        await expectRefused(c.call({ headers: { authorization: token } }), Code.Unauthenticated, /must be "Bearer <operator token>"/);
        const server = c.rpc.startsWith("/payment") ? p.payment.server : c.rpc.startsWith("/merchant") ? p.merchant.server : p.recon.server;
        const viaJson = await callJson(server.httpUrl, c.rpc, c.json);
        expect(viaJson.status).to.equal(401);
        expect(viaJson.code).to.equal("unauthenticated");
        const wrongJson = await callJson(server.httpUrl, c.rpc, c.json, { authorization: "Bearer wrong-token-0123456789" });
        expect(wrongJson.status).to.equal(403);
        expect(wrongJson.code).to.equal("permission_denied");
        expect(await c.effect(), "a refused call changed nothing").to.equal(before);
        await c.call(bearer(token));
      });
    }

    it("passes the token on: a reconciliation that first resolves the merchant's open orders runs", async () => {
      const { run } = await p.reconClient.reconcile({ resolveUnknown: true }, bearer(token));
      expect(run?.runId).to.be.a("string");
    });

    it("leaves everything else open: payments, balances, orders and runs need no token", async () => {
      const { order } = await p.merchantClient.pay({ salerId: "op_open", totalFee: 10n });
      expect(order?.state).to.equal("SUCCESS");
      expect((await p.paymentClient.getBalance({ salerId: "op_open" })).account?.salerId).to.equal("op_open");
      expect((await p.merchantClient.getOrder({ requestId: order!.requestId })).order?.requestId).to.equal(order!.requestId);
      expect((await p.reconClient.listRuns({})).runs.length).to.be.greaterThan(0);
    });
  });

  describe(`no security configuration: the embedded default [${backend.name}]`, function () {
    this.timeout(60_000);
    let p: Platform;
    before(async () => (p = await startPlatform(backend)));
    after(async () => p?.close());

    it("accepts the seed's JSON unsigned, and operator calls without a token", async () => {
      const res = await callJson(p.payment.server.httpUrl, "/payment.v1.PaymentService/Pay", { ...requestIdentityJson(), saler_id: "saler2", total_fee: "100" });
      expect(res.status, JSON.stringify(res.body)).to.equal(200);
      expect(res.body.response_code).to.equal("SUCCESS");
      expect(res.headers.get("x-request-id")).to.be.a("string");
      expect((await p.paymentClient.settle({})).ran).to.be.a("boolean");
    });
  });
}
