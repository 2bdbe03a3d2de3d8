/**
 * Prometheus metrics on every HTTP port: after known traffic, on both transports, every counter
 * moves by exactly that traffic; client counts of the merchant and recon match the server counts
 * of the services they call; the domain figures follow the orders, settlements and runs; the
 * output is the Prometheus text format and each service's series are its own.
 */
import { expect } from "chai";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-node";
import { PaymentService } from "../../gen/payment/v1/payment_pb.js";
import { backends, startPlatform, type Platform } from "../harness.js";
import { payRequest, withdrawRequest } from "../payment/fixtures.js";
import { scrape, type Scrape } from "./metricsScrape.js";
import { OrderKey, OrderType } from "../../gen/order/v1/order_pb.js";

const PAY = { grpc_service: "payment.v1.PaymentService", grpc_method: "Pay" };

async function jsonCall(url: string, path: string, body: unknown): Promise<Response> {
  return fetch(`${url}/${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
}

function delta(before: Scrape, after: Scrape) {
  return {
    value: (name: string, labels: Record<string, string> = {}) => after.value(name, labels) - before.value(name, labels),
    count: (name: string, labels: Record<string, string> = {}) => after.count(name, labels) - before.count(name, labels),
  };
}

for (const backend of backends()) {
  describe(`metrics [${backend.name}]`, function () {
    let p: Platform;
    before(async () => {
      p = await startPlatform(backend);
    });
    after(async () => p?.close());

    it("counts the calls of both transports, the orders, the buffer and the settlement by exactly the traffic sent", async () => {
      const url = p.payment.server.httpUrl;
      const before = await scrape(url);
      const salers = ["metrics_a", "metrics_b"];
      const grpcPays = [100n, 250n, 7n].map((fee, i) => payRequest(salers[i % 2]!, fee));
      for (const req of grpcPays) expect((await p.paymentClient.pay(req)).responseCode).to.equal("SUCCESS");
      const refused = await p.paymentClient.pay({ ...payRequest("metrics_a", 1n), totalFee: 0n }).catch((e: unknown) => e);
      expect(ConnectError.from(refused).code).to.equal(Code.InvalidArgument);
      const jsonPays = [40n, 3n].map((fee) => payRequest("metrics_b", fee));
      for (const req of jsonPays) {
        const res = await jsonCall(url, "payment.v1.PaymentService/Pay", {
          request_time: req.requestTime,
          request_id: req.requestId,
          saler_id: req.salerId,
          total_fee: String(req.totalFee),
        });
        expect(res.status).to.equal(200);
      }
      expect((await jsonCall(url, "payment.v1.PaymentService/GetBalance", { saler_id: "metrics_nobody" })).status).to.equal(404);
      // One call over gRPC-Web, as a browser client sends it.
      const web = createClient(PaymentService, createGrpcWebTransport({ baseUrl: url, httpVersion: "1.1" }));
      expect((await web.listAccounts({ pageSize: 1 })).accounts.length).to.be.at.most(1);
      // The same Pay again is a replay of the stored answer: a call, not a new order.
      await p.paymentClient.pay(grpcPays[0]!);

      const buffered = await scrape(url);
      const total = [...grpcPays, ...jsonPays].reduce((s, r) => s + r.totalFee, 0n);
      expect(buffered.value("payment_credit_buffer_pending_accounts")).to.equal(2);
      expect(buffered.value("payment_credit_buffer_pending_fen")).to.equal(Number(total));

      const settled = await p.paymentClient.settle({});
      expect(settled.creditsApplied).to.equal(5n);
      expect((await p.paymentClient.withdraw(withdrawRequest("metrics_a", 50n))).responseCode).to.equal("SUCCESS");
      expect((await p.paymentClient.withdraw(withdrawRequest("metrics_nobody", 50n))).responseCode).to.equal("FAIL");
      let exported = 0;
      for await (const page of p.paymentOrders.exportOrders({ orderType: OrderType.PAYMENT, key: OrderKey.RESPONSE_ID })) {
        void page;
        exported++;
      }

      const after = await scrape(url);
      const d = delta(before, after);
      const grpc = { ...PAY, transport: "grpc", grpc_type: "unary" };
      const connect = { ...PAY, transport: "connect", grpc_type: "unary" };
      expect(d.value("grpc_server_started_total", grpc)).to.equal(5);
      expect(d.value("grpc_server_handled_total", { ...grpc, grpc_code: "OK" })).to.equal(4);
      expect(d.value("grpc_server_handled_total", { ...grpc, grpc_code: "InvalidArgument" })).to.equal(1);
      expect(d.count("grpc_server_handling_seconds", grpc)).to.equal(5);
      expect(d.value("grpc_server_started_total", connect)).to.equal(2);
      expect(d.value("grpc_server_handled_total", { ...connect, grpc_code: "OK" })).to.equal(2);
      expect(d.value("grpc_server_handled_total", { grpc_method: "GetBalance", transport: "connect", grpc_code: "NotFound" })).to.equal(1);
      expect(d.value("grpc_server_handled_total", { grpc_method: "ListAccounts", transport: "grpc-web", grpc_code: "OK" })).to.equal(1);
      expect(d.value("grpc_server_handled_total", { grpc_method: "Settle", grpc_code: "OK" })).to.equal(1);
      expect(d.value("grpc_server_handled_total", { grpc_method: "Withdraw", grpc_code: "OK" })).to.equal(2);
      const stream = { grpc_service: "order.v1.OrderExportService", grpc_method: "ExportOrders", grpc_type: "server_stream", transport: "grpc" };
      expect(d.value("grpc_server_handled_total", { ...stream, grpc_code: "OK" })).to.equal(1);
      expect(d.value("grpc_server_msg_sent_total", stream)).to.equal(exported);
      expect(exported).to.be.greaterThan(0);
      // Every call counted once started, once handled, once timed.
      expect(d.value("grpc_server_started_total")).to.equal(d.value("grpc_server_handled_total"));
      expect(d.value("grpc_server_started_total")).to.equal(d.count("grpc_server_handling_seconds"));
      expect(d.value("grpc_server_started_total")).to.equal(5 + 2 + 1 + 1 + 1 + 2 + 1); // Pay gRPC, Pay Connect, GetBalance, ListAccounts gRPC-Web, Settle, Withdraw, ExportOrders

      expect(d.value("payment_orders_recorded_total", { order_type: "PAYMENT", outcome: "SUCCESS" })).to.equal(5);
      expect(d.value("payment_orders_recorded_total", { order_type: "WITHDRAWAL", outcome: "SUCCESS" })).to.equal(1);
      expect(d.value("payment_orders_recorded_total", { order_type: "WITHDRAWAL", outcome: "FAIL" })).to.equal(1);
      expect(d.value("payment_settlement_runs_total", { outcome: "settled" })).to.equal(1);
      expect(d.value("payment_settlement_credits_applied_total")).to.equal(5);
      expect(d.value("payment_settlement_amount_fen_total")).to.equal(Number(total));
      expect(d.count("payment_settlement_duration_seconds")).to.equal(1);
      expect(d.count("payment_settlement_lag_seconds")).to.equal(5);
      expect(after.value("payment_credit_buffer_pending_accounts")).to.equal(0);
      expect(after.value("payment_credit_buffer_pending_fen")).to.equal(0);
      expect(after.has("db_pool_connections_in_use")).to.equal(true);
      expect(after.has("db_pool_acquires_waiting")).to.equal(true);
      expect(after.has("payment_redis_errors_total")).to.equal(true);
      // Node's process figures.
      expect(after.has("process_cpu_user_seconds_total")).to.equal(true);
      expect(after.has("nodejs_eventloop_lag_seconds")).to.equal(true);
    });

    it("counts the merchant's and recon's outgoing calls as the servers they call count them", async () => {
      const [payBefore, merchantBefore, reconBefore] = await Promise.all([
        scrape(p.payment.server.httpUrl),
        scrape(p.merchant.server.httpUrl),
        scrape(p.recon.server.httpUrl),
      ]);
      for (const fee of [11n, 22n]) expect((await p.merchantClient.pay({ salerId: "metrics_m", totalFee: fee })).order?.state).to.equal("SUCCESS");
      const resolved = await p.merchantClient.resolveUnknownOrders({});
      expect(resolved.examined).to.equal(0);
      await p.paymentClient.settle({});
      const run = (await p.reconClient.reconcile({})).run!;
      expect(run.balanced).to.equal(false); // the payments sent straight to the payment system

      const [payAfter, merchantAfter, reconAfter] = await Promise.all([
        scrape(p.payment.server.httpUrl),
        scrape(p.merchant.server.httpUrl),
        scrape(p.recon.server.httpUrl),
      ]);
      const pay = delta(payBefore, payAfter);
      const merchant = delta(merchantBefore, merchantAfter);
      const recon = delta(reconBefore, reconAfter);

      expect(merchant.value("grpc_client_started_total", PAY)).to.equal(2);
      expect(merchant.value("grpc_client_handled_total", { ...PAY, grpc_code: "OK" })).to.equal(2);
      expect(merchant.count("grpc_client_handling_seconds", PAY)).to.equal(2);
      expect(pay.value("grpc_server_handled_total", { ...PAY, transport: "grpc", grpc_code: "OK" })).to.equal(2);
      expect(merchant.value("grpc_server_handled_total", { grpc_method: "Pay", grpc_code: "OK" })).to.equal(1 + 1);
      expect(merchant.value("merchant_resolve_runs_total", { outcome: "ok" })).to.equal(1);
      expect(merchantAfter.value("merchant_orders", { order_type: "PAYMENT", state: "SUCCESS" })).to.equal(2);
      expect(merchantAfter.value("merchant_orders", { state: "UNKNOWN" })).to.equal(0);
      expect(merchantAfter.value("merchant_oldest_open_order_age_seconds", { state: "INIT" })).to.equal(0);

      // Recon's calls to both services, as it counts them and as they count them: one export
      // contract, served by both, told apart by the upstream label.
      const exports = { grpc_service: "order.v1.OrderExportService", grpc_method: "ExportOrders", grpc_type: "server_stream" };
      const reconToPayment = recon.value("grpc_client_handled_total", { ...exports, upstream: "payment", grpc_code: "OK" });
      const reconToMerchant = recon.value("grpc_client_handled_total", { ...exports, upstream: "merchant", grpc_code: "OK" });
      // One export per order type (payments, withdrawals, refunds) from each side.
      expect(reconToPayment).to.equal(3);
      expect(reconToMerchant).to.equal(3);
      expect(pay.value("grpc_server_handled_total", { ...exports, grpc_code: "OK" })).to.equal(reconToPayment);
      expect(merchant.value("grpc_server_handled_total", { ...exports, grpc_code: "OK" })).to.equal(reconToMerchant);
      expect(recon.value("grpc_client_msg_received_total", { ...exports, upstream: "payment" })).to.equal(
        pay.value("grpc_server_msg_sent_total", exports),
      );
      expect(recon.value("recon_runs_total", { kind: "reconciliation", source: "live", outcome: "unbalanced" })).to.equal(1);
      expect(recon.count("recon_run_duration_seconds")).to.equal(1);
      const diff = (orderType: string, diffType: string) => recon.value("recon_diff_rows_total", { order_type: orderType, diff_type: diffType });
      expect(diff("PAYMENT", "F000")).to.equal(2);
      expect(diff("PAYMENT", "F113")).to.equal(5);
      expect(diff("WITHDRAWAL", "F113")).to.equal(1);
      expect(diff("PAYMENT", "F114") + diff("PAYMENT", "F115") + diff("WITHDRAWAL", "F114") + diff("WITHDRAWAL", "F115")).to.equal(0);
    });

    it("keeps each service's series apart, labelled with its name, in one process with one set of process figures", async () => {
      for (const [name, server] of [
        ["payment", p.payment.server],
        ["merchant", p.merchant.server],
        ["recon", p.recon.server],
      ] as const) {
        const s = await scrape(server.httpUrl);
        for (const sample of s.samples) {
          // The process's own figures are the process's, not a service's.
          if (/^(process|nodejs)_/.test(sample.name)) expect(sample.labels.service, sample.name).to.equal(undefined);
          else expect(sample.labels.service, `${sample.name} on ${name}`).to.equal(name);
        }
        const own = s.families.map((f) => f.name).filter((n) => /^(payment|merchant|recon)_/.test(n));
        expect(own.length).to.be.greaterThan(0);
        for (const n of own) expect(n.startsWith(`${name}_`), n).to.equal(true);
      }
    });

    it("counts refunds by outcome, a replay not counted again", async () => {
      const url = p.payment.server.httpUrl;
      const paid = await p.paymentClient.pay(payRequest("metrics_refund", 500n));
      await p.paymentClient.settle({ fullSweep: true });
      const before = await scrape(url);
      const refund = { ...payRequest("metrics_refund", 1n), paymentResponseId: paid.responseId, refundFee: 200n };
      expect((await p.paymentClient.refund(refund)).responseCode).to.equal("SUCCESS");
      await p.paymentClient.refund(refund);
      expect((await p.paymentClient.refund({ ...payRequest("metrics_refund", 1n), paymentResponseId: paid.responseId, refundFee: 301n })).responseCode).to.equal("FAIL");
      const d = delta(before, await scrape(url));
      expect(d.value("payment_orders_recorded_total", { order_type: "REFUND", outcome: "SUCCESS" })).to.equal(1);
      expect(d.value("payment_orders_recorded_total", { order_type: "REFUND", outcome: "FAIL" })).to.equal(1);
      expect(d.value("grpc_server_handled_total", { grpc_method: "Refund", grpc_code: "OK" })).to.equal(3);
    });
  });
}
