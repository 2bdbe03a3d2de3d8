/**
 * Calls for the security suites: JSON posted with plain fetch (headers in, status, headers and
 * body out), and the merchant signature computed the way docs/security.md tells an integrator
 * to, independently of services/shared/auth/signing.ts.
 */
import { createHmac } from "node:crypto";
import { expect } from "chai";
import { Code, ConnectError } from "@connectrpc/connect";
import { postJson } from "../support/http.js";

/** RFC 3986: everything but A-Z a-z 0-9 - . _ ~ as %XX of its UTF-8 bytes. */
function rfc3986(value: string): string {
  return [...new TextEncoder().encode(value)]
    .map((b) => (/[A-Za-z0-9\-._~]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, "0")}`))
    .join("");
}

/** The documented canonical string of a JSON request whose every field is present as a string. */
export function documentedCanonical(rpc: string, merchantId: string, fields: Record<string, string>): string {
  const all: Record<string, string> = { ...fields, merchant_id: merchantId, rpc };
  return Object.keys(all)
    .sort()
    .map((k) => `${k}=${rfc3986(all[k]!)}`)
    .join("&");
}

export function documentedSignature(key: Buffer, canonical: string): string {
  return createHmac("sha256", key).update(canonical, "utf8").digest("hex");
}

/** Headers signing a JSON body as the documentation describes. */
export function signJson(rpc: string, merchantId: string, key: Buffer, fields: Record<string, string>): Record<string, string> {
  return { "x-merchant-id": merchantId, "x-signature": documentedSignature(key, documentedCanonical(rpc, merchantId, fields)) };
}

export interface JsonAnswer {
  status: number;
  headers: Headers;
  body: Record<string, unknown>;
  /** The Connect error of a refusal: code name and message. */
  code?: string;
  message?: string;
}

/** A POST of JSON (support/http.ts), its answer parsed. */
export async function callJson(baseUrl: string, rpc: string, body: unknown, headers: Record<string, string> = {}): Promise<JsonAnswer> {
  const res = await postJson(`${baseUrl}${rpc}`, body, headers);
  const text = res.text;
  const parsed = (text === "" ? {} : JSON.parse(text)) as Record<string, unknown>;
  return {
    status: res.status,
    headers: res.headers,
    body: parsed,
    ...(res.ok ? {} : { code: String(parsed.code), message: String(parsed.message) }),
  };
}

/** The ConnectError a call was refused with. */
export async function refusal(call: Promise<unknown>): Promise<ConnectError> {
  try {
    await call;
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error("the call succeeded; it should have been refused");
}

export async function expectRefused(call: Promise<unknown>, code: Code, message?: RegExp): Promise<ConnectError> {
  const e = await refusal(call);
  expect(Code[e.code], e.rawMessage).to.equal(Code[code]);
  if (message) expect(e.rawMessage).to.match(message);
  return e;
}
