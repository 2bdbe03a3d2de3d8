/**
 * Who may call what. A guard runs before a handler on both transports (see callPolicy.ts) and
 * throws to refuse the call:
 * - merchant calls (payment Pay, Withdraw, QueryOrder) must be signed by a configured merchant
 *   (signing.ts) with a request_time within the window around the payment system's clock;
 * - operator calls (settlement, simulation, resolving orders, reconciliation and audit runs) must
 *   carry `authorization: Bearer <OPERATOR_TOKEN>`.
 * Each is off when its configuration is absent, which is the embedded default.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import type { DescMethod } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { EnvReader } from "../runtime/config.js";
import { ConfigError } from "../errors.js";
import { hasRequestTime, verifySignature } from "./signing.js";
import { isBusinessTime, type BusinessClock } from "../orders/time.js";

export interface CallInfo {
  method: DescMethod;
  /** "/package.Service/Method" */
  rpc: string;
  request: unknown;
  header: Headers;
}

/** Throws a ConnectError to refuse a call. */
export type CallGuard = (call: CallInfo) => void;

export function combineGuards(...guards: (CallGuard | undefined)[]): CallGuard | undefined {
  const list = guards.filter((g): g is CallGuard => g !== undefined);
  if (list.length === 0) return undefined;
  return (call) => {
    for (const g of list) g(call);
  };
}

export interface MerchantAuthentication {
  keys: ReadonlyMap<string, Buffer>;
  /** A signed request_time may differ from the server's business time by at most this. */
  windowSeconds: number;
}

/**
 * Signed merchant calls. Replays: an identical signed request inside the window is an ordinary
 * retry, answered from the stored order (Pay and Withdraw are idempotent by request_id) with no
 * further effect; the same request_id with another body is ALREADY_EXISTS; anything changed after
 * signing fails the signature, and any copy presented after the window is UNAUTHENTICATED.
 */
export function merchantSignatureGuard(auth: MerchantAuthentication, clock: BusinessClock, methods: readonly string[]): CallGuard {
  return ({ method, rpc, request, header }) => {
    if (!methods.includes(method.name)) return;
    const { requestTime } = verifySignature(auth.keys, rpc, method.input, request as never, header);
    if (!isBusinessTime(requestTime)) {
      // A malformed request_time field is the handler's to refuse (INVALID_ARGUMENT, naming it).
      if (hasRequestTime(method.input)) return;
      throw new ConnectError('x-request-time: must be a real time written "yyyy-MM-dd HH:mm:ss"', Code.Unauthenticated);
    }
    const earliest = clock.secondsAgo(auth.windowSeconds);
    const latest = clock.secondsAgo(-auth.windowSeconds);
    if (requestTime < earliest || requestTime > latest) {
      throw new ConnectError(
        `request_time: ${requestTime} is outside the accepted window of ${auth.windowSeconds} s around the payment system's time ${clock.current()} (${clock.timeZone})`,
        Code.Unauthenticated,
      );
    }
  };
}

function digest(text: string): Buffer {
  return createHash("sha256").update(text, "utf8").digest();
}

/** Calls to the listed methods need `authorization: Bearer <token>`. */
export function operatorTokenGuard(token: string, methods: readonly string[]): CallGuard {
  const expected = digest(token);
  return ({ method, rpc, header }) => {
    if (!methods.includes(method.name)) return;
    const auth = header.get("authorization");
    if (auth === null || auth === "") {
      throw new ConnectError(`${rpc} is an operator call: send the header "authorization: Bearer <operator token>"`, Code.Unauthenticated);
    }
    const m = /^Bearer +(\S+)$/i.exec(auth);
    if (!m) throw new ConnectError('authorization: must be "Bearer <operator token>"', Code.Unauthenticated);
    if (!timingSafeEqual(digest(m[1]!), expected)) {
      throw new ConnectError("authorization: the operator token is not valid", Code.PermissionDenied);
    }
  };
}

export function operatorHeaders(token: string | undefined): Record<string, string> {
  return token === undefined ? {} : { authorization: `Bearer ${token}` };
}

const MIN_TOKEN_LENGTH = 16;

/** OPERATOR_TOKEN: absent leaves operator calls open. */
export function readOperatorToken(env: EnvReader): string | undefined {
  const token = env.optional("OPERATOR_TOKEN");
  if (token === undefined) return undefined;
  if (!/^[\x21-\x7e]+$/.test(token)) throw new ConfigError("OPERATOR_TOKEN", "must be printable ASCII without spaces");
  if (token.length < MIN_TOKEN_LENGTH) throw new ConfigError("OPERATOR_TOKEN", `must be at least ${MIN_TOKEN_LENGTH} characters`);
  return token;
}
