/**
 * Readiness: whether a service can do its work now, as opposed to liveness (GET /healthz: the
 * process answers). Each service names its dependencies (its database, Redis, the services it
 * calls) as checks; GET /readyz runs them and answers 200 or 503 with the reason of each, and a
 * monitor runs them every interval and sets the service's grpc.health.v1 status (SERVING or
 * NOT_SERVING; the server-wide "" status stays SERVING as liveness).
 *
 * A dependency that goes down is logged once as a warning, and once more when it is back, never
 * once per check or per failed run (OutageLog does the same for scheduled jobs).
 */
import type * as http from "node:http";
import * as grpc from "@grpc/grpc-js";
import { service as healthService } from "grpc-health-check";
import { grpcTarget } from "../rpc/grpcClient.js";
import type { Logger } from "./logger.js";

export interface DependencyCheck {
  /** e.g. "database", "redis", "payment". */
  name: string;
  /** Resolves when the dependency answers; rejects with the reason it does not. */
  check(): Promise<void>;
}

export interface CheckResult {
  name: string;
  ok: boolean;
  /** Why it is not ok (absent when ok). */
  reason?: string;
}

export interface ReadinessReport {
  status: "SERVING" | "NOT_SERVING";
  service: string;
  checks: CheckResult[];
}

function reasonOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function withTimeout(work: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    work,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/**
 * Logs an outage of something that runs repeatedly: one warning when it starts failing, one
 * line when it works again, and nothing (debug only) for the failures in between.
 */
export class OutageLog {
  private downSince: number | undefined;
  private failures = 0;

  constructor(
    private readonly logger: Logger,
    private readonly what: string,
    private readonly fields: Record<string, unknown> = {},
  ) {}

  get failing(): boolean {
    return this.downSince !== undefined;
  }

  failed(err: unknown, extra: Record<string, unknown> = {}): void {
    this.failures++;
    if (this.downSince === undefined) {
      this.downSince = Date.now();
      this.logger.warn({ ...this.fields, ...extra, reason: reasonOf(err) }, `${this.what} failing`);
    } else {
      this.logger.debug({ ...this.fields, ...extra, reason: reasonOf(err) }, `${this.what} still failing`);
    }
  }

  succeeded(): void {
    if (this.downSince === undefined) return;
    this.logger.info({ ...this.fields, failures: this.failures, downForMs: Date.now() - this.downSince }, `${this.what} recovered`);
    this.downSince = undefined;
    this.failures = 0;
  }
}

export class Readiness {
  private readonly outages: Map<string, OutageLog>;
  private timer: NodeJS.Timeout | undefined;
  private ready: boolean | undefined;
  private listeners: ((ready: boolean) => void)[] = [];
  private running: Promise<ReadinessReport> | undefined;

  constructor(
    readonly service: string,
    private readonly checks: readonly DependencyCheck[],
    logger: Logger,
    private readonly options: { intervalMs: number; timeoutMs: number },
  ) {
    this.outages = new Map(checks.map((c) => [c.name, new OutageLog(logger, `dependency ${c.name}`, { dependency: c.name })]));
  }

  /** Told of every change between ready and not ready. */
  onChange(listener: (ready: boolean) => void): void {
    this.listeners.push(listener);
  }

  /** Runs every check now (concurrent evaluations share one run). */
  evaluate(): Promise<ReadinessReport> {
    this.running ??= this.runChecks().finally(() => (this.running = undefined));
    return this.running;
  }

  private async runChecks(): Promise<ReadinessReport> {
    const checks = await Promise.all(
      this.checks.map(async (c): Promise<CheckResult> => {
        try {
          await withTimeout(c.check(), this.options.timeoutMs);
          this.outages.get(c.name)!.succeeded();
          return { name: c.name, ok: true };
        } catch (err) {
          this.outages.get(c.name)!.failed(err);
          return { name: c.name, ok: false, reason: reasonOf(err) };
        }
      }),
    );
    const ready = checks.every((c) => c.ok);
    if (ready !== this.ready) {
      this.ready = ready;
      for (const l of this.listeners) l(ready);
    }
    return { status: ready ? "SERVING" : "NOT_SERVING", service: this.service, checks };
  }

  /** Checks every interval until stopped. */
  start(): void {
    if (this.timer || this.options.intervalMs <= 0) return;
    const tick = () => {
      void this.evaluate().finally(() => {
        if (this.timer) this.timer = setTimeout(tick, this.options.intervalMs).unref();
      });
    };
    this.timer = setTimeout(tick, 0).unref();
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** GET /readyz: 200 when every dependency answers, else 503; the body has each check. */
  route(): (req: http.IncomingMessage, res: http.ServerResponse) => boolean {
    return (req, res) => {
      if (req.method !== "GET" || req.url !== "/readyz") return false;
      void this.evaluate().then((report) => {
        res.writeHead(report.status === "SERVING" ? 200 : 503, { "content-type": "application/json" });
        res.end(JSON.stringify(report));
      });
      return true;
    };
  }
}

/** A check that the database answers a trivial query. */
export function databaseCheck(knex: { raw(sql: string): PromiseLike<unknown> }): DependencyCheck {
  return { name: "database", check: async () => void (await knex.raw("SELECT 1")) };
}

const HealthClient = grpc.makeGenericClientConstructor(healthService as unknown as grpc.ServiceDefinition, "Health");

/**
 * A check that an upstream service's gRPC port answers its health check. The upstream's own
 * dependencies are its business: an answer of NOT_SERVING still means it can be called.
 *
 * The check connects on a subchannel of its own (a local subchannel pool), never on the one the
 * service's calls to the upstream use. grpc-js otherwise shares a subchannel between channels of
 * the same target, options and credentials, and a check that finds the upstream down (a service
 * started before its upstream listens) leaves that subchannel in reconnect back-off: 1 s, then
 * 1.6 times longer each failure, with jitter. The first calls after the upstream came up would
 * then fail at once with UNAVAILABLE, without a connection attempt, until the back-off ran out.
 */
export function upstreamCheck(
  name: string,
  address: string,
  serviceName: string,
  credentials: grpc.ChannelCredentials,
): DependencyCheck & { close(): void } {
  // A list of instances (or a DNS name) is ready when any of them is: the channel balances over them.
  const { target, balanced } = grpcTarget(address);
  const client = new HealthClient(target, credentials, {
    "grpc.use_local_subchannel_pool": 1,
    ...(balanced ? { "grpc.service_config": JSON.stringify({ loadBalancingConfig: [{ round_robin: {} }] }) } : {}),
  });
  return {
    name,
    check: () =>
      new Promise<void>((resolve, reject) => {
        (client as unknown as { check(req: unknown, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null) => void): void }).check(
          { service: serviceName },
          { deadline: Date.now() + 2000 },
          (err) => {
            if (!err) resolve();
            else if (err.code === grpc.status.NOT_FOUND) reject(new Error(`${name} at ${address} does not serve ${serviceName}`));
            else reject(new Error(`${name} at ${address} unreachable: ${grpc.status[err.code] ?? err.code} ${err.details}`));
          },
        );
      }),
    close: () => client.close(),
  };
}
