/**
 * What every call goes through, on grpc-js and connect-node alike, before and after its handler:
 * a request id (the caller's `x-request-id`, or a fresh one) returned in the `x-request-id`
 * response header; the service's guard (authentication.ts); a deadline; and the translation of
 * every failure into the error the client sees. A failure that is not a ConnectError (SQL,
 * file system, a bug) is logged with its request id and reaches the client only as INTERNAL
 * "internal error" plus the request id, so SQL text, stacks and paths stay in the logs.
 */
import { randomUUID } from "node:crypto";
import type { DescMethod, DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextKey, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import type { CallGuard } from "../auth/authentication.js";
import type { EnvReader } from "../runtime/config.js";
import { toClientError } from "../errors.js";
import type { Logger } from "../observability/logger.js";

export const REQUEST_ID_HEADER = "x-request-id";
const CALLER_REQUEST_ID = /^[A-Za-z0-9._:-]{1,64}$/;

/** The caller's request id when it is well-formed, else a new one. */
export function requestIdFrom(callers: string | null | undefined): string {
  return typeof callers === "string" && CALLER_REQUEST_ID.test(callers) ? callers : randomUUID();
}

/** The call's request id: already assigned, the caller's (when well-formed), or a new one. */
export function assignRequestId(ctx: { requestHeader: Headers; responseHeader: Headers; assignedRequestId?: string }): string {
  // A gRPC call's context holds it without making its response header (grpcServer.ts).
  if (ctx.assignedRequestId !== undefined) return ctx.assignedRequestId;
  const assigned = ctx.responseHeader.get(REQUEST_ID_HEADER);
  if (assigned) return assigned;
  const id = requestIdFrom(ctx.requestHeader.get(REQUEST_ID_HEADER));
  ctx.responseHeader.set(REQUEST_ID_HEADER, id);
  return id;
}

/**
 * Whether a call has stopped (its deadline passed, it was cancelled, the server is shutting
 * down, or it ended), for a handler that only asks: an AbortSignal is one, and grpcServer.ts
 * callStop gives a cheaper one on the gRPC port.
 */
export interface CallStop {
  readonly aborted: boolean;
}

/** The caller's address ("host:port"), set by each transport in the handler context. */
export const PEER_KEY = createContextKey<string>("", { description: "peer address" });

/** One call as the policy sees it when it starts. */
export interface CallInfo {
  /** Fully-qualified service name, e.g. payment.v1.PaymentService. */
  service: string;
  method: string;
  kind: "unary" | "server_streaming";
  /** The protocol it came in with: grpc (the gRPC port), connect or grpc-web (the HTTP port). */
  transport: string;
  requestId: string;
  peer: string;
}

export interface CallOutcome {
  /** gRPC status code; 0 is OK. */
  code: number;
  /** The error the client was sent (already translated), when the call failed. */
  error?: ConnectError | undefined;
  /** Response messages sent. */
  messagesSent: number;
  durationMs: number;
}

/** Told of every call when it starts; the function it returns is told how the call ended. */
export type CallObserver = (call: CallInfo) => (outcome: CallOutcome) => void;

export interface CallLimits {
  /** Deadline of a unary call that is not long-running, unless the caller asks for less. */
  deadlineMs: number;
  /** Deadline of server-streaming and long-running calls (simulations, reconciliation runs). */
  longDeadlineMs: number;
  /** HTTP/2 streams one gRPC connection may have open at once. */
  maxConcurrentStreams: number;
  /**
   * Once the service is told to stop, how long calls in flight may still run before they are
   * cut off; 10 s when absent.
   */
  shutdownGraceMs?: number | undefined;
}

/** SHUTDOWN_GRACE_MS when unset, and the grace of limits that name none. */
export const DEFAULT_SHUTDOWN_GRACE_MS = 10_000;

export const DEFAULT_CALL_LIMITS: CallLimits = { deadlineMs: 30_000, longDeadlineMs: 3_600_000, maxConcurrentStreams: 1000, shutdownGraceMs: DEFAULT_SHUTDOWN_GRACE_MS };

export function readCallLimits(env: EnvReader): CallLimits {
  return {
    deadlineMs: env.int("CALL_DEADLINE_MS", DEFAULT_CALL_LIMITS.deadlineMs, 100, 3_600_000),
    longDeadlineMs: env.int("LONG_CALL_DEADLINE_MS", DEFAULT_CALL_LIMITS.longDeadlineMs, 1000, 7 * 86_400_000),
    maxConcurrentStreams: env.int("MAX_CONCURRENT_STREAMS", DEFAULT_CALL_LIMITS.maxConcurrentStreams, 1, 1_000_000),
    shutdownGraceMs: env.int("SHUTDOWN_GRACE_MS", DEFAULT_SHUTDOWN_GRACE_MS, 0, 3_600_000),
  };
}

export interface PolicyTarget {
  service: DescService;
  impl: ServiceImpl<DescService>;
  guard?: CallGuard | undefined;
  /** Local names of unary methods that may run long (they get the long deadline). */
  longRunning?: readonly string[] | undefined;
}

type AnyMethod = (req: unknown, ctx: HandlerContext) => unknown;

function deadlineExceeded(ms: number): ConnectError {
  return new ConnectError(`deadline of ${ms} ms exceeded`, Code.DeadlineExceeded);
}

/** Settles like `work`, or rejects with DEADLINE_EXCEEDED (naming the call's `budget`) after `ms`. */
function within<T>(work: Promise<T>, ms: number, budget = ms): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(deadlineExceeded(budget)), Math.max(0, ms));
    work.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err);
      },
    );
  });
}

/** The end report of a call nobody observes. */
const UNOBSERVED = (): void => {};

/** The same service with every method running under the policy. */
export function applyCallPolicy(
  target: PolicyTarget,
  logger: Logger,
  limits: CallLimits,
  observers: readonly CallObserver[] = [],
): ServiceImpl<DescService> {
  const { service, guard } = target;
  const impl = target.impl as unknown as Record<string, AnyMethod>;
  const wrapped: Record<string, AnyMethod> = {};

  for (const method of service.methods) {
    const fn = impl[method.localName];
    if (!fn) continue; // the transports report the missing handler
    const rpc = `/${service.typeName}/${method.name}`;
    const long = method.methodKind !== "unary" || (target.longRunning ?? []).includes(method.localName);
    const budget = (ctx: HandlerContext) => Math.floor(Math.min(ctx.timeoutMs() ?? Infinity, long ? limits.longDeadlineMs : limits.deadlineMs));
    const translate = (err: unknown, requestId: string): ConnectError => {
      if (!(err instanceof ConnectError)) logger.error({ err, requestId, rpc }, "call failed");
      return toClientError(err);
    };
    const admit = (req: unknown, ctx: HandlerContext) => guard?.({ method: method as DescMethod, rpc, request: req, header: ctx.requestHeader });
    const kind = method.methodKind === "unary" ? ("unary" as const) : ("server_streaming" as const);
    /** Tells the observers the call started; the function returned reports its end, once. */
    const observe = (ctx: HandlerContext, requestId: string): ((error: ConnectError | undefined, messagesSent: number) => void) => {
      if (observers.length === 0) return UNOBSERVED;
      const started = performance.now();
      const info: CallInfo = {
        service: service.typeName,
        method: method.name,
        kind,
        transport: ctx.protocolName,
        requestId,
        peer: ctx.values.get(PEER_KEY),
      };
      const ends = observers.map((o) => o(info));
      let reported = false;
      return (error, messagesSent) => {
        if (reported) return;
        reported = true;
        const outcome: CallOutcome = { code: error ? error.code : 0, error, messagesSent, durationMs: performance.now() - started };
        for (const end of ends) end(outcome);
      };
    };

    if (method.methodKind === "unary") {
      wrapped[method.localName] = async (req, ctx) => {
        const requestId = assignRequestId(ctx);
        const end = observe(ctx, requestId);
        try {
          admit(req, ctx);
          const res = await within(Promise.resolve(fn.call(impl, req, ctx)), budget(ctx));
          end(undefined, 1);
          return res;
        } catch (err) {
          const e = translate(err, requestId);
          end(e, 0);
          throw e;
        }
      };
    } else if (method.methodKind === "server_streaming") {
      wrapped[method.localName] = async function* (req, ctx) {
        const requestId = assignRequestId(ctx);
        const report = observe(ctx, requestId);
        let sent = 0;
        let it: AsyncIterator<unknown> | undefined;
        let finished = false;
        try {
          admit(req, ctx);
          const ms = budget(ctx);
          const end = Date.now() + ms;
          it = (fn.call(impl, req, ctx) as AsyncIterable<unknown>)[Symbol.asyncIterator]();
          for (;;) {
            const remaining = end - Date.now();
            if (remaining <= 0) throw deadlineExceeded(ms);
            const step = await within(it.next(), remaining, ms);
            if (step.done) {
              finished = true;
              report(undefined, sent);
              return;
            }
            sent++;
            yield step.value;
          }
        } catch (err) {
          const e = translate(err, requestId);
          report(e, sent);
          throw e;
        } finally {
          // Ended by the transport (the client went away): neither finished nor failed here.
          report(new ConnectError("cancelled by the client", Code.Canceled), sent);
          // Stops the handler's generator when the stream ends early (error, deadline, cancel);
          // not awaited, since a handler stuck in a step would hold the answer back.
          if (it && !finished) void Promise.resolve(it.return?.()).catch(() => {});
        }
      } as AnyMethod;
    } else {
      wrapped[method.localName] = fn; // not served: the transports refuse other kinds
    }
  }
  return wrapped as unknown as ServiceImpl<DescService>;
}
