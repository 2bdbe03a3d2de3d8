/**
 * TLS by configuration, with a CA and a server certificate made by openssl for this test: each
 * service with <PREFIX>_TLS_CERT/_KEY serves gRPC and its JSON gateway over TLS, and the merchant
 * and reconciliation systems reach the payment and merchant systems over TLS when given their
 * CA (<PREFIX>_TLS_CA). A plaintext client, or one that trusts another CA, gets no answer.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import * as https from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import { Code } from "@connectrpc/connect";
import { MerchantService } from "../../gen/merchant/v1/merchant_pb.js";
import { PaymentService } from "../../gen/payment/v1/payment_pb.js";
import { ReconService } from "../../gen/recon/v1/recon_pb.js";
import { EnvReader } from "../../services/shared/runtime/config.js";
import { ConfigError } from "../../services/shared/errors.js";
import { createGrpcClient } from "../../services/shared/rpc/grpcClient.js";
import { grpcChannelCredentials } from "../../services/shared/rpc/tls.js";
import { readPaymentConfig } from "../../services/payment/config.js";
import { readMerchantConfig } from "../../services/merchant/config.js";
import { readReconConfig } from "../../services/recon/config.js";
import { backends, startPlatform, type Platform } from "../harness.js";
import { expectRefused } from "./calls.js";
import { requestIdentityJson } from "../support/requestIdentity.js";

/** A CA, and a certificate it signed for 127.0.0.1 and localhost. */
function makeCertificates(dir: string, name: string): { ca: string; cert: string; key: string } {
  const file = (f: string) => join(dir, `${name}-${f}`);
  const run = (...args: string[]) => execFileSync("openssl", args, { stdio: "pipe" });
  run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", file("ca.key"), "-out", file("ca.pem"), "-days", "1", "-subj", `/CN=${name} test CA`);
  run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", file("server.key"), "-out", file("server.csr"), "-subj", "/CN=localhost");
  writeFileSync(file("ext.cnf"), "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n");
  run("x509", "-req", "-in", file("server.csr"), "-CA", file("ca.pem"), "-CAkey", file("ca.key"), "-CAcreateserial", "-out", file("server.pem"), "-days", "1", "-extfile", file("ext.cnf"));
  return { ca: file("ca.pem"), cert: file("server.pem"), key: file("server.key") };
}

function httpsPost(url: string, ca: Buffer | undefined, body: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request(url, { method: "POST", ...(ca ? { ca } : {}), headers: { "content-type": "application/json" } }, (res) => {
      let text = "";
      res.on("data", (d: Buffer) => (text += d.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

const backend = backends()[0]!;

describe(`TLS [${backend.name}]`, function () {
  this.timeout(120_000);
  let dir: string;
  let certs: { ca: string; cert: string; key: string };
  let other: { ca: string; cert: string; key: string };
  let p: Platform;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "tls-"));
    certs = makeCertificates(dir, "platform");
    other = makeCertificates(dir, "other");
    // Configuration read from the environment, as the services read it at start-up.
    const env = new EnvReader({
      PAYMENT_TLS_CERT: certs.cert,
      PAYMENT_TLS_KEY: certs.key,
      MERCHANT_TLS_CERT: certs.cert,
      MERCHANT_TLS_KEY: certs.key,
      RECON_TLS_CERT: certs.cert,
      RECON_TLS_KEY: certs.key,
      PAYMENT_TLS_CA: certs.ca,
      MERCHANT_TLS_CA: certs.ca,
    });
    const payment = readPaymentConfig(env);
    const merchant = readMerchantConfig(env);
    const recon = readReconConfig(env);
    p = await startPlatform(backend, {
      payment: { tls: payment.tls },
      merchant: { tls: merchant.tls, paymentTlsCa: merchant.paymentTlsCa },
      recon: { tls: recon.tls, paymentTlsCa: recon.paymentTlsCa, merchantTlsCa: recon.merchantTlsCa },
    });
  });
  after(async () => {
    await p?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("refuses half a certificate pair or an unreadable file, naming the variable", () => {
    expect(() => readPaymentConfig(new EnvReader({ PAYMENT_TLS_CERT: certs.cert }))).to.throw(ConfigError, /PAYMENT_TLS_KEY/);
    expect(() => readPaymentConfig(new EnvReader({ PAYMENT_TLS_CERT: join(dir, "missing.pem"), PAYMENT_TLS_KEY: certs.key }))).to.throw(ConfigError, /PAYMENT_TLS_CERT: cannot read/);
    expect(() => readMerchantConfig(new EnvReader({ PAYMENT_TLS_CA: join(dir, "platform-ext.cnf") }))).to.throw(ConfigError, /PAYMENT_TLS_CA: .* is not a PEM file/);
  });

  it("carries a payment from the merchant to the payment system over TLS, for a client that trusts the CA", async () => {
    const merchant = createGrpcClient(MerchantService, p.merchant.server.grpcAddress, { credentials: grpcChannelCredentials(readFileSync(certs.ca)) });
    try {
      const { order } = await merchant.client.pay({ salerId: "tls1", totalFee: 100n });
      expect(order?.state, order?.responseMsg).to.equal("SUCCESS");
    } finally {
      merchant.close();
    }
  });

  it("runs a reconciliation that reaches both systems over TLS", async () => {
    const recon = createGrpcClient(ReconService, p.recon.server.grpcAddress, { credentials: grpcChannelCredentials(readFileSync(certs.ca)) });
    try {
      const { run } = await recon.client.reconcile({});
      expect(run?.diffs.length).to.equal(3);
      expect(run?.balanced).to.equal(true);
    } finally {
      recon.close();
    }
  });

  it("gives a plaintext client, or one trusting another CA, no answer", async () => {
    const plain = createGrpcClient(PaymentService, p.payment.server.grpcAddress);
    const stranger = createGrpcClient(PaymentService, p.payment.server.grpcAddress, { credentials: grpcChannelCredentials(readFileSync(other.ca)) });
    try {
      await expectRefused(plain.client.getBalance({ salerId: "tls1" }, { timeoutMs: 5000 }), Code.Unavailable);
      await expectRefused(stranger.client.getBalance({ salerId: "tls1" }, { timeoutMs: 5000 }), Code.Unavailable);
    } finally {
      plain.close();
      stranger.close();
    }
  });

  it("serves the JSON gateway over HTTPS with the same certificate", async () => {
    expect(p.payment.server.httpUrl).to.match(/^https:\/\//);
    const url = `${p.payment.server.httpUrl}/payment.v1.PaymentService/Pay`;
    const body = () => JSON.stringify({ ...requestIdentityJson(), saler_id: "saler2", total_fee: "100" });
    const res = await httpsPost(url, readFileSync(certs.ca), body());
    expect(res.status, res.body).to.equal(200);
    expect((JSON.parse(res.body) as { response_code: string }).response_code).to.equal("SUCCESS");
    let refused: Error | undefined;
    await httpsPost(url, readFileSync(other.ca), body()).catch((err: Error) => (refused = err));
    expect(refused?.message).to.match(/certificate/i);
  });
});
