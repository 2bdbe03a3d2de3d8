/**
 * CORS_ALLOWED_ORIGINS: browser tools such as Buf Studio (https://buf.build) may call an HTTP port
 * when their origin is listed, or any origin with "*". Preflight and real calls from an allowed
 * and a refused origin; the Connect and gRPC-Web response headers and x-request-id exposed;
 * never credentials; with OPERATOR_TOKEN set, administrative calls still need the token.
 */
import { expect } from "chai";
import { DEFAULT_SERVING } from "../../services/shared/rpc/serving.js";
import { backends, startPlatform, type Platform } from "../harness.js";
import { payRequest } from "../payment/fixtures.js";

const BUF_STUDIO = "https://buf.build";
const STRANGER = "https://evil.example";
const TOKEN = "cors-operator-token";

function preflight(url: string, origin: string, headers = "content-type,connect-protocol-version,authorization,x-request-id") {
  return fetch(url, {
    method: "OPTIONS",
    headers: { origin, "access-control-request-method": "POST", "access-control-request-headers": headers },
  });
}

function call(url: string, origin: string, body: unknown, extra: Record<string, string> = {}) {
  return fetch(url, {
    method: "POST",
    headers: { origin, "content-type": "application/json", "connect-protocol-version": "1", ...extra },
    body: JSON.stringify(body),
  });
}

function payBody() {
  const r = payRequest("cors_a", 10n);
  return { request_time: r.requestTime, request_id: r.requestId, saler_id: r.salerId, total_fee: "10" };
}

const [backend] = backends();

describe(`CORS [${backend!.name}]`, () => {
  let p: Platform;
  before(async () => {
    p = await startPlatform(backend!, {
      payment: { serving: { ...DEFAULT_SERVING, logCalls: "off", corsAllowedOrigins: [BUF_STUDIO] }, operatorToken: TOKEN },
      merchant: { serving: { ...DEFAULT_SERVING, logCalls: "off", corsAllowedOrigins: ["*"] }, operatorToken: TOKEN },
    });
  });
  after(async () => p?.close());

  const pay = () => `${p.payment.server.httpUrl}/payment.v1.PaymentService/Pay`;

  it("answers the preflight of a listed origin, without credentials", async () => {
    const res = await preflight(pay(), BUF_STUDIO);
    expect(res.status).to.equal(204);
    expect(res.headers.get("access-control-allow-origin")).to.equal(BUF_STUDIO);
    expect(res.headers.get("vary")).to.equal("Origin");
    const allowed = res.headers.get("access-control-allow-headers")!.toLowerCase().split(/,\s*/);
    for (const h of ["content-type", "connect-protocol-version", "authorization", "x-request-id", "x-grpc-web"]) expect(allowed).to.include(h);
    expect(res.headers.get("access-control-allow-methods")).to.contain("POST");
    expect(res.headers.has("access-control-allow-credentials")).to.equal(false);
    expect(res.headers.has("access-control-allow-private-network")).to.equal(false);
  });

  it("allows a listed origin's page to reach a loopback address when the browser asks (Private Network Access)", async () => {
    const res = await fetch(pay(), {
      method: "OPTIONS",
      headers: { origin: BUF_STUDIO, "access-control-request-method": "POST", "access-control-request-private-network": "true" },
    });
    expect(res.status).to.equal(204);
    expect(res.headers.get("access-control-allow-private-network")).to.equal("true");
    const refused = await fetch(pay(), {
      method: "OPTIONS",
      headers: { origin: STRANGER, "access-control-request-method": "POST", "access-control-request-private-network": "true" },
    });
    expect(refused.status).to.equal(403);
    expect(refused.headers.has("access-control-allow-private-network")).to.equal(false);
  });

  it("lets a listed origin's call through with the response headers exposed", async () => {
    const res = await call(pay(), BUF_STUDIO, payBody());
    expect(res.status).to.equal(200);
    expect(((await res.json()) as { response_code: string }).response_code).to.equal("SUCCESS");
    expect(res.headers.get("access-control-allow-origin")).to.equal(BUF_STUDIO);
    const exposed = res.headers.get("access-control-expose-headers")!.toLowerCase().split(/,\s*/);
    for (const h of ["x-request-id", "grpc-status", "grpc-message", "grpc-status-details-bin", "connect-content-encoding"]) expect(exposed).to.include(h);
    expect(res.headers.get("x-request-id")).to.be.a("string");
    expect(res.headers.has("access-control-allow-credentials")).to.equal(false);
  });

  it("refuses the preflight of an origin nobody listed, and gives its calls no CORS headers", async () => {
    const res = await preflight(pay(), STRANGER);
    expect(res.status).to.equal(403);
    expect(res.headers.has("access-control-allow-origin")).to.equal(false);
    expect(await res.text()).to.contain("CORS_ALLOWED_ORIGINS");
    const answered = await call(pay(), STRANGER, payBody());
    // The browser keeps this answer from the page: no access-control-allow-origin.
    expect(answered.headers.has("access-control-allow-origin")).to.equal(false);
    expect(answered.headers.has("access-control-expose-headers")).to.equal(false);
    // recon lists no origin at all.
    expect((await preflight(`${p.recon.server.httpUrl}/recon.v1.ReconService/ListRuns`, BUF_STUDIO)).status).to.equal(403);
  });

  it("answers any origin with * and no credentials when CORS_ALLOWED_ORIGINS is *", async () => {
    const url = `${p.merchant.server.httpUrl}/merchant.v1.MerchantService/Pay`;
    for (const origin of [BUF_STUDIO, STRANGER]) {
      const res = await preflight(url, origin);
      expect(res.status).to.equal(204);
      expect(res.headers.get("access-control-allow-origin")).to.equal("*");
      expect(res.headers.has("access-control-allow-credentials")).to.equal(false);
    }
    const res = await call(url, STRANGER, { saler_id: "cors_m", total_fee: "5" });
    expect(res.status).to.equal(200);
    expect(res.headers.get("access-control-allow-origin")).to.equal("*");
    expect(res.headers.has("access-control-allow-credentials")).to.equal(false);
  });

  it("still asks for the operator token on administrative calls, whatever the origin", async () => {
    const settle = `${p.payment.server.httpUrl}/payment.v1.PaymentService/Settle`;
    const refused = await call(settle, BUF_STUDIO, {});
    expect(refused.status).to.equal(401);
    expect(refused.headers.get("access-control-allow-origin")).to.equal(BUF_STUDIO);
    const allowed = await call(settle, BUF_STUDIO, {}, { authorization: `Bearer ${TOKEN}` });
    expect(allowed.status).to.equal(200);

    const resolve = `${p.merchant.server.httpUrl}/merchant.v1.MerchantService/ResolveUnknownOrders`;
    expect((await call(resolve, STRANGER, {})).status).to.equal(401);
    expect((await call(resolve, STRANGER, {}, { authorization: "Bearer wrong" })).status).to.equal(403);
    expect((await call(resolve, STRANGER, {}, { authorization: `Bearer ${TOKEN}` })).status).to.equal(200);
  });
});
