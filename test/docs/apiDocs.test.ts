/** /openapi.json, /docs and CORS on the services' HTTP ports, over real HTTP. */
import * as http from "node:http";
import { expect } from "chai";
import { linkApiCatalogs } from "../../services/shared/rpc/apiDocs.js";
import { startPlatform, type Platform } from "../harness.js";

const SEED_PAY = { request_time: "2019-08-29 17:15:20", request_id: "20190829171520123456", saler_id: "saler2", total_fee: "100" };

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** A raw HTTP request, so that Host and Origin can be set as a browser would. */
function request(url: string, options: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: options.method ?? "GET", headers: options.headers ?? {} }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on("error", reject);
    req.end(options.body);
  });
}

/** The spec list the /docs page hands to Swagger UI. */
function pageSpecs(html: string): { name: string; url: string }[] {
  const config = /const config = (\{.*\});/.exec(html)?.[1];
  if (!config) throw new Error("no config in the page");
  return (JSON.parse(config) as { specs: { name: string; url: string }[] }).specs;
}

describe("API docs over HTTP [embedded]", () => {
  let p: Platform;
  before(async () => {
    p = await startPlatform({ name: "embedded" });
  });
  after(async () => p?.close());

  it("a service alone shows its own document only", async () => {
    const page = await request(`${p.merchant.server.httpUrl}/docs/`);
    expect(page.status).to.equal(200);
    expect(pageSpecs(page.body)).to.deep.equal([{ name: "merchant", url: p.merchant.server.httpUrl }]);
  });

  describe("linked as the platform links them", () => {
    before(() => linkApiCatalogs([p.payment.docs, p.merchant.docs, p.recon.docs]));

    it("serves each service's document with itself as the server, under the host name used", async () => {
      const doc = JSON.parse((await request(`${p.payment.server.httpUrl}/openapi.json`)).body);
      expect(doc.openapi).to.equal("3.0.3");
      expect(doc.servers).to.deep.equal([{ url: p.payment.server.httpUrl, description: "payment" }]);
      expect(doc.paths).to.have.property("/payment.v1.PaymentService/Pay");
      const viaLocalhost = JSON.parse(
        (await request(`${p.merchant.server.httpUrl}/openapi.json`, { headers: { host: `localhost:${p.merchant.server.httpPort}` } })).body,
      );
      expect(viaLocalhost.servers[0].url).to.equal(`http://localhost:${p.merchant.server.httpPort}`);
      expect(viaLocalhost.paths).to.have.property("/merchant.v1.MerchantService/Simulate");
    });

    it("offers every service on every /docs page, and serves Swagger UI's files", async () => {
      const moved = await request(`${p.payment.server.httpUrl}/docs`);
      expect(moved.status).to.equal(302);
      expect(moved.headers.location).to.equal("/docs/");
      for (const system of [p.payment, p.merchant, p.recon]) {
        const page = await request(`${system.server.httpUrl}/docs/`);
        expect(pageSpecs(page.body)).to.deep.equal([
          { name: "payment", url: p.payment.server.httpUrl },
          { name: "merchant", url: p.merchant.server.httpUrl },
          { name: "recon", url: p.recon.server.httpUrl },
        ]);
      }
      const bundle = await request(`${p.payment.server.httpUrl}/docs/swagger-ui-bundle.js`);
      expect(bundle.status).to.equal(200);
      expect(bundle.headers["content-type"]).to.contain("javascript");
      expect(bundle.body).to.contain("SwaggerUIBundle");
      const outside = await request(`${p.payment.server.httpUrl}/docs/package.json`);
      expect(outside.status).to.equal(404);
    });

    it("answers CORS for the other services' pages and for no one else", async () => {
      const payUrl = `${p.payment.server.httpUrl}/payment.v1.PaymentService/Pay`;
      const preflight = (origin: string, host?: string) =>
        request(payUrl, {
          method: "OPTIONS",
          headers: {
            origin,
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type",
            ...(host ? { host } : {}),
          },
        });
      const sibling = await preflight(p.merchant.server.httpUrl);
      expect(sibling.status).to.equal(204);
      expect(sibling.headers["access-control-allow-origin"]).to.equal(p.merchant.server.httpUrl);
      expect(String(sibling.headers["access-control-allow-headers"]).toLowerCase()).to.contain("content-type");
      expect(String(sibling.headers["access-control-allow-methods"])).to.contain("POST");

      const localhost = await preflight(`http://localhost:${p.merchant.server.httpPort}`, `localhost:${p.payment.server.httpPort}`);
      expect(localhost.headers["access-control-allow-origin"]).to.equal(`http://localhost:${p.merchant.server.httpPort}`);

      const stranger = await preflight("http://shop.example:8080");
      expect(stranger.headers).to.not.have.property("access-control-allow-origin");
      const samePortOtherHost = await preflight(`http://shop.example:${p.merchant.server.httpPort}`);
      expect(samePortOtherHost.headers).to.not.have.property("access-control-allow-origin");

      const call = await request(payUrl, {
        method: "POST",
        headers: { origin: p.merchant.server.httpUrl, "content-type": "application/json" },
        body: JSON.stringify(SEED_PAY),
      });
      expect(call.status).to.equal(200);
      expect(call.headers["access-control-allow-origin"]).to.equal(p.merchant.server.httpUrl);
      expect(JSON.parse(call.body)).to.include({ request_id: SEED_PAY.request_id, response_code: "SUCCESS", total_fee: "100" });
    });
  });
});
