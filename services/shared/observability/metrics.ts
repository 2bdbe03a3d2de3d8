/**
 * Prometheus metrics of one service, with prom-client. Each service has its own registry (every
 * series carries a `service` label), so the three services of `npm start` share one process
 * without their series colliding, and each HTTP port's `/metrics` shows its own service.
 *
 * Call metrics use the names of the gRPC ecosystem (go-grpc-prometheus): grpc_server_* for the
 * calls a service answers, on both transports (the `transport` label is the protocol the call
 * came in with: `grpc` on the gRPC port, `connect` or `grpc-web` on the HTTP port), counted by
 * the call policy (callPolicy.ts), and grpc_client_* for the calls it makes (a grpc-js client
 * interceptor; the `upstream` label names the system called, since the merchant system and the
 * payment system serve the same order.v1.OrderExportService). Money figures are in fen; Prometheus samples are floating point, exact up to
 * 2^53 fen.
 *
 * Node's process figures (prom-client's defaults: CPU, memory, event loop, GC) belong to the
 * process, not to a service: one set per process, collected once and shown on every port without
 * a service label (under `npm start` the three services share one process).
 */
import * as http from "node:http";
import * as grpc from "@grpc/grpc-js";
import { Code } from "@connectrpc/connect";
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import type { Knex } from "knex";
import type { CallObserver } from "../rpc/callPolicy.js";

/** Seconds buckets of call handling times (go-grpc-prometheus's defaults, plus finer ones). */
const CALL_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

/** The gRPC status name of a code: OK, InvalidArgument, Unavailable, … */
export function codeName(code: number): string {
  return code === 0 ? "OK" : (Code[code] ?? String(code));
}

/** go-grpc-prometheus's grpc_type of a method kind. */
function grpcType(requestStream: boolean, responseStream: boolean): string {
  if (requestStream && responseStream) return "bidi_stream";
  if (requestStream) return "client_stream";
  if (responseStream) return "server_stream";
  return "unary";
}

let processRegistry: Registry | undefined;

/** The process's own figures, one set however many services the process runs. */
function processMetrics(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

const SERVER_LABELS = ["grpc_type", "grpc_service", "grpc_method", "transport"] as const;

/**
 * The call counts of one label set not yet added to the prom-client counters: calls started,
 * messages received and sent, calls finished by status code.
 */
class CallSeries {
  started = 0;
  received = 0;
  sent = 0;
  /** Per status code: its labels (these labels plus grpc_code) and the calls not yet added. */
  readonly handled = new Map<number, { labels: Record<string, string>; count: number }>();

  constructor(readonly labels: Record<string, string>) {}

  finished(code: number): void {
    const byCode = this.handled.get(code);
    if (byCode) byCode.count++;
    else this.handled.set(code, { labels: { ...this.labels, grpc_code: codeName(code) }, count: 1 });
  }
}

/** Adds what the series counted of one kind to its counter. */
function flush(counter: Counter, series: Map<string, CallSeries>, kind: "started" | "received" | "sent"): void {
  for (const s of series.values()) {
    if (s[kind] === 0) continue;
    counter.inc(s.labels, s[kind]);
    s[kind] = 0;
  }
}

function flushHandled(counter: Counter, series: Map<string, CallSeries>): void {
  for (const s of series.values()) {
    for (const byCode of s.handled.values()) {
      if (byCode.count === 0) continue;
      counter.inc(byCode.labels, byCode.count);
      byCode.count = 0;
    }
  }
}
const CLIENT_LABELS = ["grpc_type", "grpc_service", "grpc_method", "upstream"] as const;

export class ServiceMetrics {
  readonly registry = new Registry();
  private readonly serverStarted;
  private readonly serverHandled;
  private readonly serverHandling;
  private readonly serverMsgReceived;
  private readonly serverMsgSent;
  private readonly clientStarted;
  private readonly clientHandled;
  private readonly clientHandling;
  private readonly clientMsgReceived;
  private readonly clientMsgSent;

  constructor(readonly service: string) {
    this.registry.setDefaultLabels({ service });
    processMetrics();
    const registers = [this.registry];
    // The call counters are counted per series in plain numbers (CallSeries) and added to
    // prom-client's counters when they are collected, at a scrape: one label look-up per call
    // instead of one per counter and call.
    const server = this.serverSeries;
    const client = this.clientSeries;
    this.serverStarted = new Counter({
      name: "grpc_server_started_total",
      help: "RPCs started on the server.",
      labelNames: SERVER_LABELS,
      registers,
      collect() {
        flush(this, server, "started");
      },
    });
    this.serverHandled = new Counter({
      name: "grpc_server_handled_total",
      help: "RPCs completed on the server, whatever their status.",
      labelNames: [...SERVER_LABELS, "grpc_code"],
      registers,
      collect() {
        flushHandled(this, server);
      },
    });
    this.serverHandling = new Histogram({
      name: "grpc_server_handling_seconds",
      help: "Time from the start of an RPC to its status, on the server.",
      labelNames: SERVER_LABELS,
      buckets: CALL_BUCKETS,
      registers,
    });
    this.serverMsgReceived = new Counter({
      name: "grpc_server_msg_received_total",
      help: "Request messages received.",
      labelNames: SERVER_LABELS,
      registers,
      collect() {
        flush(this, server, "received");
      },
    });
    this.serverMsgSent = new Counter({
      name: "grpc_server_msg_sent_total",
      help: "Response messages sent.",
      labelNames: SERVER_LABELS,
      registers,
      collect() {
        flush(this, server, "sent");
      },
    });
    this.clientStarted = new Counter({
      name: "grpc_client_started_total",
      help: "RPCs started by this service's clients.",
      labelNames: CLIENT_LABELS,
      registers,
      collect() {
        flush(this, client, "started");
      },
    });
    this.clientHandled = new Counter({
      name: "grpc_client_handled_total",
      help: "RPCs this service's clients saw completed, whatever their status.",
      labelNames: [...CLIENT_LABELS, "grpc_code"],
      registers,
      collect() {
        flushHandled(this, client);
      },
    });
    this.clientHandling = new Histogram({
      name: "grpc_client_handling_seconds",
      help: "Time from the start of an outgoing RPC to its status.",
      labelNames: CLIENT_LABELS,
      buckets: CALL_BUCKETS,
      registers,
    });
    this.clientMsgReceived = new Counter({
      name: "grpc_client_msg_received_total",
      help: "Response messages received by clients.",
      labelNames: CLIENT_LABELS,
      registers,
      collect() {
        flush(this, client, "received");
      },
    });
    this.clientMsgSent = new Counter({
      name: "grpc_client_msg_sent_total",
      help: "Request messages sent by clients.",
      labelNames: CLIENT_LABELS,
      registers,
      collect() {
        flush(this, client, "sent");
      },
    });
  }

  /** Series of the calls this service answers, by transport, service and method. */
  private readonly serverSeries = new Map<string, CallSeries>();
  /** Series of the calls this service's clients make, by path. */
  private readonly clientSeries = new Map<string, CallSeries>();

  /** Counts every call the call policy runs. */
  readonly calls: CallObserver = (call) => {
    const key = `${call.transport} ${call.kind} ${call.service}/${call.method}`;
    let series = this.serverSeries.get(key);
    if (series === undefined) {
      series = new CallSeries({
        grpc_type: grpcType(false, call.kind === "server_streaming"),
        grpc_service: call.service,
        grpc_method: call.method,
        transport: call.transport,
      });
      this.serverSeries.set(key, series);
    }
    const counted = series;
    const started = performance.now();
    counted.started++;
    counted.received++;
    return (outcome) => {
      counted.finished(outcome.code);
      this.serverHandling.observe(counted.labels, (performance.now() - started) / 1000);
      counted.sent += outcome.messagesSent;
    };
  };

  /** A grpc-js client interceptor counting the calls of the clients of one upstream system. */
  clientInterceptor(upstream: string): grpc.Interceptor {
    const byPath = new Map<string, CallSeries>(); // this interceptor's series, by method path
    return (options, nextCall) => {
      const def = options.method_definition;
      let series = byPath.get(def.path);
      if (series === undefined) {
        const key = `${upstream} ${def.path}`;
        series = this.clientSeries.get(key);
        if (series === undefined) {
          const [, service = "", method = ""] = /^\/([^/]+)\/([^/]+)$/.exec(def.path) ?? [];
          series = new CallSeries({ grpc_type: grpcType(def.requestStream, def.responseStream), grpc_service: service, grpc_method: method, upstream });
          this.clientSeries.set(key, series);
        }
        byPath.set(def.path, series);
      }
      const counted = series;
      const started = performance.now();
      counted.started++;
      return new grpc.InterceptingCall(nextCall(options), {
        start: (metadata, listener, next) => {
          next(metadata, {
            onReceiveMessage: (message, nextMessage) => {
              counted.received++;
              nextMessage(message);
            },
            onReceiveStatus: (status, nextStatus) => {
              counted.finished(status.code);
              this.clientHandling.observe(counted.labels, (performance.now() - started) / 1000);
              nextStatus(status);
            },
          });
        },
        sendMessage: (message, next) => {
          counted.sent++;
          next(message);
        },
      });
    };
  }

  /** Connections of a database pool in use and callers waiting for one. */
  watchDatabasePool(knex: Knex): void {
    const pool = () =>
      (knex.client as { pool?: { numUsed(): number; numFree(): number; numPendingAcquires(): number } }).pool;
    new Gauge({
      name: "db_pool_connections_in_use",
      help: "Database connections lent out by the pool.",
      registers: [this.registry],
      collect() {
        this.set(pool()?.numUsed() ?? 0);
      },
    });
    new Gauge({
      name: "db_pool_connections_idle",
      help: "Database connections open and free in the pool.",
      registers: [this.registry],
      collect() {
        this.set(pool()?.numFree() ?? 0);
      },
    });
    new Gauge({
      name: "db_pool_acquires_waiting",
      help: "Callers waiting for a database connection.",
      registers: [this.registry],
      collect() {
        this.set(pool()?.numPendingAcquires() ?? 0);
      },
    });
  }

  /** The service's figures and the process's, in the Prometheus text format. */
  async scrape(): Promise<string> {
    const [own, proc] = await Promise.all([this.registry.metrics(), processMetrics().metrics()]);
    return `${own.replace(/\n*$/, "\n")}\n${proc}`;
  }

  /** GET /metrics on an HTTP port. */
  route(): (req: http.IncomingMessage, res: http.ServerResponse) => boolean {
    return (req, res) => {
      if (req.method !== "GET" || (req.url !== "/metrics" && !req.url?.startsWith("/metrics?"))) return false;
      this.scrape().then(
        (text) => {
          res.writeHead(200, { "content-type": this.registry.contentType });
          res.end(text);
        },
        (err: unknown) => {
          res.writeHead(500, { "content-type": "text/plain; charset=utf-8" });
          res.end(`metrics unavailable: ${err instanceof Error ? err.message : String(err)}\n`);
        },
      );
      return true;
    };
  }
}

/** Seconds between two business times ("yyyy-MM-dd HH:mm:ss" of the same zone). */
export function businessSecondsBetween(earlier: string, later: string): number {
  const at = (t: string) => Date.parse(`${t.replace(" ", "T")}Z`);
  return (at(later) - at(earlier)) / 1000;
}
