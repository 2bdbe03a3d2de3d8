/**
 * Swagger UI's content, as shipped: every operation's request example succeeds when sent as
 * "Try it out" sends it (the lookups, GetRun, GetOrder and GetBalance, get the newest record the
 * service has when the document is served); every 400 example is the answer the service really
 * gives to the request the response's description names, and is about that method's own fields;
 * every summary is the comment's whole first sentence, not its first line.
 */
import { expect } from "chai";
import { summaryOf } from "../../services/shared/rpc/openapi.js";
import { comments_payment_v1_payment } from "../../gen/payment/v1/payment_comments.js";
import { comments_merchant_v1_merchant } from "../../gen/merchant/v1/merchant_comments.js";
import { comments_recon_v1_recon } from "../../gen/recon/v1/recon_comments.js";
import { startPlatform, type Platform } from "../harness.js";

interface Operation {
  summary: string;
  requestBody: { content: { "application/json": { schema: { $ref: string }; example?: unknown } } };
  responses: Record<string, { description: string; content?: { "application/json": { example?: { code: string; message: string } } } }>;
}
interface Doc {
  paths: Record<string, { post: Operation }>;
  components: { schemas: Record<string, { properties?: Record<string, unknown> }> };
}

const COMMENTS: Record<string, Readonly<Record<string, string>>> = {
  payment: comments_payment_v1_payment,
  merchant: comments_merchant_v1_merchant,
  recon: comments_recon_v1_recon,
};
/** Looked up last, once the calls before them have made something to look up. */
const LOOKUPS = ["/payment.v1.PaymentService/GetBalance", "/merchant.v1.MerchantService/GetOrder", "/merchant.v1.MerchantService/Refund", "/recon.v1.ReconService/GetRun", "/recon.v1.ReconService/ListDiffRows"];

async function documentOf(url: string): Promise<Doc> {
  return (await (await fetch(`${url}/openapi.json`)).json()) as Doc;
}

function post(url: string, path: string, body: unknown): Promise<Response> {
  return fetch(`${url}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
}

describe("Swagger UI examples and summaries [embedded]", () => {
  let p: Platform;
  const systems = () =>
    [
      ["payment", p.payment.server.httpUrl],
      ["merchant", p.merchant.server.httpUrl],
      ["recon", p.recon.server.httpUrl],
    ] as const;
  before(async () => {
    p = await startPlatform({ name: "embedded" });
  });
  after(async () => p?.close());

  it("has whole summaries, the comment's first paragraph on one line", async () => {
    for (const [name, url] of systems()) {
      const doc = await documentOf(url);
      for (const [path, { post: op }] of Object.entries(doc.paths)) {
        const comment = COMMENTS[name]![path.slice(1).replace("/", ".")];
        expect(comment, path).to.be.a("string");
        expect(op.summary, path).to.equal(summaryOf(comment!));
        expect(op.summary, path).to.not.contain("\n");
        expect(op.summary, path).to.match(/[.)]$/);
      }
    }
    const recon = await documentOf(p.recon.server.httpUrl);
    expect(recon.paths["/recon.v1.ReconService/Reconcile"]!.post.summary).to.not.match(/ and$/);
  });

  it("answers every request example with 200, as shipped, in the page's order", async () => {
    for (const [, url] of systems()) {
      const doc = await documentOf(url);
      for (const [path, { post: op }] of Object.entries(doc.paths)) {
        if (LOOKUPS.includes(path)) continue;
        const res = await post(url, path, op.requestBody.content["application/json"].example ?? {});
        expect(res.status, `${path}: ${await res.clone().text()}`).to.equal(200);
      }
    }
    for (const [, url] of systems()) {
      const doc = await documentOf(url);
      for (const path of LOOKUPS.filter((l) => doc.paths[l])) {
        const example = doc.paths[path]!.post.requestBody.content["application/json"].example;
        const res = await post(url, path, example);
        expect(res.status, `${path} with ${JSON.stringify(example)}: ${await res.clone().text()}`).to.equal(200);
      }
    }
  });

  it("shows for every operation a 400 example that the service gives to the request named, about that method's fields", async () => {
    for (const [, url] of systems()) {
      const doc = await documentOf(url);
      for (const [path, { post: op }] of Object.entries(doc.paths)) {
        const bad = op.responses["400"]!;
        const example = bad.content?.["application/json"].example;
        expect(example, path).to.not.equal(undefined);
        const named = /answers the request `(.*)`\.$/.exec(bad.description)?.[1];
        expect(named, path).to.be.a("string");
        const res = await post(url, path, JSON.parse(named!));
        expect(res.status, path).to.equal(400);
        expect(await res.json(), path).to.deep.equal(example);
        // The field it names is one of this method's request fields.
        const input = op.requestBody.content["application/json"].schema.$ref.split("/").pop()!;
        const fields = Object.keys(doc.components.schemas[input]!.properties ?? {});
        const field = /^cannot decode field [\w.]+\.(\w+) from JSON/.exec(example!.message)?.[1] ?? /^(\w+)[:.]/.exec(example!.message)?.[1];
        expect(fields, `${path}: ${example!.message}`).to.include(field);
      }
    }
  });
});
