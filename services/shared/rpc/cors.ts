/**
 * CORS for browser tools (Buf Studio, a web app) on an HTTP port: the origins CORS_ALLOWED_ORIGINS
 * lists, or any with "*". An allowed origin's preflight is answered here (204), and its calls
 * carry the CORS headers with the response headers a Connect or gRPC-Web client reads exposed
 * (x-request-id among them). Credentials (cookies) are never allowed: the services take no
 * cookies, and an Authorization header (the operator token) is allowed as a request header, so
 * administrative calls still need the token whatever the origin.
 *
 * A preflight from an origin no one allows (here or the docs pages' own rule) is refused with 403;
 * a call from such an origin gets no CORS headers, so the browser keeps its answer from the page.
 */
import type * as http from "node:http";
import { cors } from "@connectrpc/connect";
import { REQUEST_ID_HEADER } from "./callPolicy.js";
import { MERCHANT_ID_HEADER, REQUEST_TIME_HEADER, SIGNATURE_HEADER } from "../auth/signing.js";

export const CORS_ALLOWED_HEADERS = [...cors.allowedHeaders, "Authorization", "X-Request-Id", MERCHANT_ID_HEADER, SIGNATURE_HEADER, REQUEST_TIME_HEADER];
export const CORS_EXPOSED_HEADERS = [...cors.exposedHeaders, "X-Request-Id", "Connect-Protocol-Version", "Grpc-Encoding"];
export const CORS_ALLOWED_METHODS = [...cors.allowedMethods];

export function isPreflight(req: http.IncomingMessage): boolean {
  return req.method === "OPTIONS" && req.headers.origin !== undefined && req.headers["access-control-request-method"] !== undefined;
}

/** The route answering for the configured origins; false for the others (they go on). */
export function corsRoute(allowed: readonly string[]): (req: http.IncomingMessage, res: http.ServerResponse) => boolean {
  const any = allowed.includes("*");
  const origins = new Set(allowed);
  return (req, res) => {
    const origin = req.headers.origin;
    if (origin === undefined || (!any && !origins.has(origin))) return false;
    if (any) res.setHeader("access-control-allow-origin", "*");
    else {
      res.setHeader("access-control-allow-origin", origin);
      res.setHeader("vary", "Origin");
    }
    res.setHeader("access-control-expose-headers", CORS_EXPOSED_HEADERS.join(", "));
    if (!isPreflight(req)) return false; // the call goes on to its handler with the headers above
    res.writeHead(204, {
      "access-control-allow-methods": CORS_ALLOWED_METHODS.join(", "),
      "access-control-allow-headers": CORS_ALLOWED_HEADERS.join(", "),
      "access-control-max-age": "7200",
      // Chrome's Private Network Access: a public page (Buf Studio) calling a loopback or private
      // address asks first.
      ...(req.headers["access-control-request-private-network"] === "true" ? { "access-control-allow-private-network": "true" } : {}),
    });
    res.end();
    return true;
  };
}

/** A preflight nobody answered: the origin is not allowed. */
export function refusePreflight(res: http.ServerResponse): void {
  res.writeHead(403, { "content-type": "text/plain; charset=utf-8" });
  res.end("origin not allowed: add it to CORS_ALLOWED_ORIGINS\n");
}
