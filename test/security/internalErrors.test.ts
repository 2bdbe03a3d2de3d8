/**
 * Internal failures reach a client as INTERNAL "internal error" and a request id, on gRPC, the
 * Connect protocol and plain JSON, for unary and streaming calls; the log (pino, captured here)
 * holds the real error (SQL text, stack) under the same request id. The failures are real: tables
 * dropped under running services, a reconciliation directory that is a file.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { expect } from "chai";
import { pino } from "pino";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { MerchantService } from "../../gen/merchant/v1/merchant_pb.js";
import { PaymentService } from "../../gen/payment/v1/payment_pb.js";
import { ReconService } from "../../gen/recon/v1/recon_pb.js";
import { createGrpcClient } from "../../services/shared/rpc/grpcClient.js";
import { startPaymentSystem, type PaymentSystem } from "../../services/payment/system.js";
import { startMerchantSystem, type MerchantSystem } from "../../services/merchant/system.js";
import { startReconSystem, type ReconSystem } from "../../services/recon/system.js";
import { JSON_OPTIONS } from "../../services/shared/rpc/server.js";
import { backends, freshStore, merchantConfig, paymentConfig, reconConfig, uniqueName, type Store } from "../harness.js";
import { callJson } from "./calls.js";
import { requestIdentityJson } from "../support/requestIdentity.js";
import { deleteRedisKeys } from "../support/cleanup.js";
import { OrderExportService, OrderType } from "../../gen/order/v1/order_pb.js";

interface LogLine {
  level: number;
  msg: string;
  requestId?: string;
  rpc?: string;
  err?: { message: string; stack: string; type: string };
}

/** What a client must never see: SQL, driver codes, paths, stack frames. */
const LEAK = [/\bER_[A-Z_]+|SQLITE_[A-Z]+/, /select|insert|table|sqlite|mysql|mariadb|errno|ENOTDIR|EEXIST|\/tmp\/|\bat\s.*\(|\.ts:\d+/i];

function expectClean(text: string): void {
  for (const re of LEAK) expect(text, "leaks internals").not.to.match(re);
}

for (const backend of backends()) {
  describe(`internal failures never leak [${backend.name}]`, function () {
    this.timeout(120_000);
    const logs: LogLine[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const line of chunk.toString().split("\n")) if (line.trim() !== "") logs.push(JSON.parse(line) as LogLine);
        done();
      },
    });
    const logger = pino({ level: "info" }, sink);
    let paymentStore: Store;
    let merchantStore: Store;
    let reconDir: string;
    let redisPrefix: string;
    let payment: PaymentSystem;
    let merchant: MerchantSystem;
    let recon: ReconSystem;

    before(async () => {
      paymentStore = freshStore(backend, "payment");
      merchantStore = freshStore(backend, "merchant");
      redisPrefix = uniqueName("ie");
      reconDir = mkdtempSync(join(tmpdir(), "recon-"));
      payment = await startPaymentSystem(paymentConfig(backend, paymentStore, redisPrefix), logger.child({ service: "payment" }));
      merchant = await startMerchantSystem(merchantConfig(merchantStore, payment.server.grpcAddress), logger.child({ service: "merchant" }));
      recon = await startReconSystem(reconConfig(reconDir, merchant.server.grpcAddress, payment.server.grpcAddress), logger.child({ service: "recon" }));
      // Break the storage under the running services.
      await payment.db.knex.schema.dropTable("payment_orders");
      await merchant.db.knex.schema.dropTable("merchant_orders");
      rmSync(reconDir, { recursive: true, force: true });
      writeFileSync(reconDir, "not a directory");
    });
    after(async () => {
      await recon?.close();
      await merchant?.close();
      await payment?.close();
      rmSync(reconDir, { recursive: true, force: true });
      await merchantStore?.drop();
      await paymentStore?.drop();
      if (backend.redisUrl) await deleteRedisKeys(backend.redisUrl, redisPrefix);
    });

    /**
     * The logged failure of one request id: exactly one error line, with the real cause, beside
     * the call's own line (LOG_CALLS), which says INTERNAL and nothing of the cause.
     */
    function loggedFailure(requestId: string, rpc: string): LogLine {
      const calls = logs.filter((l) => l.requestId === requestId && l.msg === "call");
      expect(calls, `call lines for ${requestId}`).to.have.length(1);
      expect((calls[0] as unknown as { code: string }).code).to.equal("Internal");
      expect(JSON.stringify(calls[0])).to.not.match(/no such table|doesn't exist|ENOTDIR|SQLITE/i);
      const lines = logs.filter((l) => l.requestId === requestId && l.msg !== "call");
      expect(lines, `log lines for ${requestId}`).to.have.length(1);
      const line = lines[0]!;
      expect(line.level).to.equal(50);
      expect(line.msg).to.equal("call failed");
      expect(line.rpc).to.equal(rpc);
      expect(line.err?.stack).to.match(/\n\s+at /);
      return line;
    }

    const payRequest = () => {
      const id = requestIdentityJson();
      return { requestTime: id.request_time, requestId: id.request_id, salerId: "leak1", totalFee: 100n };
    };

    it("gRPC: a payment whose table is gone answers only 'internal error' and the request id the caller chose; the log has the SQL error", async () => {
      const client = createGrpcClient(PaymentService, payment.server.grpcAddress);
      try {
        let err: ConnectError | undefined;
        await client.client.pay(payRequest(), { headers: { "x-request-id": "caller-chosen-0001" } }).catch((e: unknown) => (err = ConnectError.from(e)));
        expect(err?.code).to.equal(Code.Internal);
        expect(err?.rawMessage).to.equal("internal error");
        expect(err?.metadata.get("x-request-id")).to.equal("caller-chosen-0001");
        expectClean(err!.rawMessage);
        const line = loggedFailure("caller-chosen-0001", "/payment.v1.PaymentService/Pay");
        expect(line.err?.message).to.match(/payment_orders/);
        expect(line.err?.message).to.match(/no such table|doesn't exist/i);
      } finally {
        client.close();
      }
    });

    it("JSON: the same failure answers 500 internal with a generated request id, which the log carries", async () => {
      const id = requestIdentityJson();
      const res = await callJson(payment.server.httpUrl, "/payment.v1.PaymentService/Pay", { ...id, saler_id: "leak2", total_fee: "100" });
      expect(res.status).to.equal(500);
      expect(res.body).to.deep.equal({ code: "internal", message: "internal error" });
      const requestId = res.headers.get("x-request-id")!;
      expect(requestId).to.match(/^[0-9a-f-]{36}$/);
      const line = loggedFailure(requestId, "/payment.v1.PaymentService/Pay");
      expect(line.err?.message).to.match(/payment_orders/);
    });

    it("Connect protocol, server streaming: an export over the missing table ends with INTERNAL 'internal error' and the request id", async () => {
      const transport = createConnectTransport({ baseUrl: payment.server.httpUrl, httpVersion: "1.1", jsonOptions: JSON_OPTIONS });
      const client = createClient(OrderExportService, transport);
      let header: Headers | undefined;
      let err: ConnectError | undefined;
      try {
        for await (const _ of client.exportOrders({ orderType: OrderType.PAYMENT }, { onHeader: (h) => (header = h) })) void _;
      } catch (e) {
        err = ConnectError.from(e);
      }
      expect(err?.code).to.equal(Code.Internal);
      expect(err?.rawMessage).to.equal("internal error");
      const requestId = header?.get("x-request-id") ?? err?.metadata.get("x-request-id");
      expect(requestId).to.be.a("string");
      expect(loggedFailure(requestId!, "/order.v1.OrderExportService/ExportOrders").err?.message).to.match(/payment_orders/);
    });

    it("gRPC, server streaming: the same export ends with INTERNAL 'internal error' and the request id in the trailers", async () => {
      const client = createGrpcClient(OrderExportService, payment.server.grpcAddress);
      let err: ConnectError | undefined;
      try {
        for await (const _ of client.client.exportOrders({ orderType: OrderType.PAYMENT })) void _;
      } catch (e) {
        err = ConnectError.from(e);
      } finally {
        client.close();
      }
      expect(err?.code).to.equal(Code.Internal);
      expect(err?.rawMessage).to.equal("internal error");
      const requestId = err?.metadata.get("x-request-id");
      expect(requestId).to.be.a("string");
      expect(loggedFailure(requestId!, "/order.v1.OrderExportService/ExportOrders").err?.message).to.match(/payment_orders/);
    });

    it("the merchant's failed insert and the reconciliation's unusable directory answer the same way, on both transports", async () => {
      const m = createGrpcClient(MerchantService, merchant.server.grpcAddress);
      const r = createGrpcClient(ReconService, recon.server.grpcAddress);
      try {
        const cases: { rpc: string; grpc: () => Promise<unknown>; json: object; server: { httpUrl: string }; cause: RegExp }[] = [
          { rpc: "/merchant.v1.MerchantService/Pay", grpc: () => m.client.pay({ salerId: "leak3", totalFee: 1n }), json: { saler_id: "leak3", total_fee: "1" }, server: merchant.server, cause: /merchant_orders/ },
          { rpc: "/recon.v1.ReconService/Reconcile", grpc: () => r.client.reconcile({}), json: {}, server: recon.server, cause: /ENOTDIR|EEXIST|not a directory|file already exists/i },
        ];
        for (const c of cases) {
          const err = ConnectError.from(await c.grpc().then(() => undefined, (e: unknown) => e));
          expect(err.code, `${c.rpc}: ${err.rawMessage}`).to.equal(Code.Internal);
          expect(err.rawMessage).to.equal("internal error");
          expect(loggedFailure(err.metadata.get("x-request-id")!, c.rpc).err?.message).to.match(c.cause);

          const res = await callJson(c.server.httpUrl, c.rpc, c.json);
          expect(res.body).to.deep.equal({ code: "internal", message: "internal error" });
          expectClean(JSON.stringify(res.body));
          for (const [name, value] of res.headers) expectClean(`${name}: ${value}`);
          expect(loggedFailure(res.headers.get("x-request-id")!, c.rpc).err?.message).to.match(c.cause);
        }
      } finally {
        m.close();
        r.close();
      }
    });
  });
}
