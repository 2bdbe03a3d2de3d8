/**
 * Logs: one structured line per call on both transports (service, method, transport, code,
 * duration, request id, peer) at the level LOG_CALLS names, none with "off", and one line per
 * settlement, resolution, simulation and reconciliation run with its figures.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { expect } from "chai";
import { pino } from "pino";
import { Code, ConnectError } from "@connectrpc/connect";
import { PaymentService } from "../../gen/payment/v1/payment_pb.js";
import { MerchantService } from "../../gen/merchant/v1/merchant_pb.js";
import { ReconService } from "../../gen/recon/v1/recon_pb.js";
import { createGrpcClient } from "../../services/shared/rpc/grpcClient.js";
import { startPaymentSystem } from "../../services/payment/system.js";
import { startMerchantSystem } from "../../services/merchant/system.js";
import { startReconSystem } from "../../services/recon/system.js";
import { DEFAULT_SERVING, type CallLogLevel } from "../../services/shared/rpc/serving.js";
import { freshStore, merchantConfig, paymentConfig, reconConfig, uniqueName } from "../harness.js";
import { payRequest } from "../payment/fixtures.js";
import { OrderType } from "../../gen/order/v1/order_pb.js";

type Line = Record<string, unknown> & { msg: string; level: number };

/** Payment, merchant and recon logging into one array, on the embedded default. */
async function loggedPlatform(logCalls: CallLogLevel) {
  const lines: Line[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split("\n")) if (l !== "") lines.push(JSON.parse(l) as Line);
      done();
    },
  });
  const logger = pino({ level: "debug" }, sink);
  const serving = { ...DEFAULT_SERVING, logCalls };
  const backend = { name: "embedded" as const };
  const paymentStore = freshStore(backend, "payment");
  const merchantStore = freshStore(backend, "merchant");
  const payment = await startPaymentSystem(paymentConfig(backend, paymentStore, uniqueName("tl"), { serving }), logger.child({ service: "payment" }));
  const merchant = await startMerchantSystem(merchantConfig(merchantStore, payment.server.grpcAddress, { serving }), logger.child({ service: "merchant" }));
  const reconDir = mkdtempSync(join(tmpdir(), "recon-"));
  const recon = await startReconSystem(reconConfig(reconDir, merchant.server.grpcAddress, payment.server.grpcAddress, { serving }), logger.child({ service: "recon" }));
  const clients = {
    payment: createGrpcClient(PaymentService, payment.server.grpcAddress),
    merchant: createGrpcClient(MerchantService, merchant.server.grpcAddress),
    recon: createGrpcClient(ReconService, recon.server.grpcAddress),
  };
  return {
    lines,
    payment,
    merchant,
    recon,
    clients,
    async close() {
      for (const c of Object.values(clients)) c.close();
      await recon.close();
      await merchant.close();
      await payment.close();
      rmSync(reconDir, { recursive: true, force: true });
      await paymentStore.drop();
      await merchantStore.drop();
    },
  };
}

describe("logs [embedded]", () => {
  describe("with LOG_CALLS=info", () => {
    let p: Awaited<ReturnType<typeof loggedPlatform>>;
    before(async () => {
      p = await loggedPlatform("info");
    });
    after(async () => p?.close());

    it("writes one line per call on each transport, with its code, duration, request id and peer", async () => {
      const start = p.lines.length;
      const req = payRequest("logs_a", 10n);
      await p.clients.payment.client.pay(req, { headers: { "x-request-id": "logs-grpc-1" } });
      const res = await fetch(`${p.payment.server.httpUrl}/payment.v1.PaymentService/GetBalance`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-request-id": "logs-json-1" },
        body: JSON.stringify({ saler_id: "logs_nobody" }),
      });
      expect(res.status).to.equal(404);
      const err = await p.clients.payment.client.pay({ ...payRequest("logs_a", 1n), salerId: "" }).catch((e: unknown) => e);
      expect(ConnectError.from(err).code).to.equal(Code.InvalidArgument);

      const calls = p.lines.slice(start).filter((l) => l.msg === "call");
      expect(calls).to.have.length(3);
      const [ok, notFound, invalid] = calls as [Line, Line, Line];
      expect(ok).to.include({ service: "payment.v1.PaymentService", method: "Pay", transport: "grpc", code: "OK", requestId: "logs-grpc-1", level: 30 });
      expect(ok.peer).to.match(/^ipv4:127\.0\.0\.1:\d+$|^127\.0\.0\.1:\d+$/);
      expect(ok.durationMs).to.be.a("number").and.to.be.at.least(0);
      expect(notFound).to.include({ method: "GetBalance", transport: "connect", code: "NotFound", requestId: "logs-json-1" });
      expect(notFound.peer).to.match(/127\.0\.0\.1:\d+$/);
      expect(notFound.error).to.contain("logs_nobody");
      expect(invalid).to.include({ method: "Pay", code: "InvalidArgument" });
      expect(invalid.error).to.contain("saler_id");
      expect(invalid.requestId).to.be.a("string").and.not.equal("");
    });

    it("writes one line per settlement, resolution, simulation and reconciliation run with its figures", async () => {
      const start = p.lines.length;
      const sim = await p.clients.merchant.client.simulate({ orderType: OrderType.PAYMENT, count: 20, concurrency: 4, accounts: 3, seed: 7n });
      const settled = await p.clients.payment.client.settle({});
      await p.clients.merchant.client.resolveUnknownOrders({});
      await p.clients.recon.client.reconcile({});
      const lines = p.lines.slice(start);
      const one = (msg: string) => {
        const found = lines.filter((l) => l.msg === msg);
        expect(found, msg).to.have.length(1);
        return found[0]!;
      };
      expect(one("simulation finished")).to.include({ simulationId: sim.simulationId, orderType: "PAYMENT", requested: 20, succeeded: sim.succeeded, seed: "7" });
      expect(settled.accountsSettled).to.be.at.least(3);
      expect(one("settled")).to.include({ accountsSettled: settled.accountsSettled, creditsApplied: String(settled.creditsApplied) });
      expect(one("resolved open orders")).to.include({ trigger: "call", examined: 0 });
      const run = one("run finished");
      expect(run).to.include({ kind: "reconciliation", source: "live", balanced: false });
      expect((run.PAYMENT as Record<string, string>).F000).to.equal(String(sim.succeeded));
    });
  });

  it("writes no call lines with LOG_CALLS=off, and call lines at debug with LOG_CALLS=debug", async () => {
    for (const [level, expected] of [
      ["off", undefined],
      ["debug", 20],
    ] as const) {
      const p = await loggedPlatform(level);
      try {
        await p.clients.payment.client.pay(payRequest("logs_b", 5n));
        const calls = p.lines.filter((l) => l.msg === "call");
        if (expected === undefined) expect(calls).to.have.length(0);
        else expect(calls.map((c) => c.level)).to.deep.equal([expected]);
      } finally {
        await p.close();
      }
    }
  });
});
