/**
 * Building blocks of the payment and merchant suites: well-formed requests, bounded
 * concurrency, a settlement loop that runs beside the traffic, row counts, and the ways a
 * credit buffer loses its data.
 */
import * as net from "node:net";
import type { AddressInfo } from "node:net";
import { expect } from "chai";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Knex } from "knex";
import type { PayRequest, RefundRequest, WithdrawRequest } from "../../gen/payment/v1/payment_pb.js";
import { MemoryCreditBuffer } from "../../services/payment/creditBuffer.js";
import { PaymentService } from "../../gen/payment/v1/payment_pb.js";
import { OrderExportService } from "../../gen/order/v1/order_pb.js";
import type { Client } from "@connectrpc/connect";
import { createGrpcClient } from "../../services/shared/rpc/grpcClient.js";
import { startPaymentSystem, type PaymentSystem } from "../../services/payment/system.js";
import { freshStore, paymentConfig, silentLogger, uniqueName, type Backend, type Platform, type Store } from "../harness.js";
import { requestIdentity } from "../support/requestIdentity.js";
import { deleteRedisKeys } from "../support/cleanup.js";

export const MSG_INSUFFICIENT_BALANCE = "账户余额不足，提款失败";

type PayFields = Pick<PayRequest, "requestTime" | "requestId" | "salerId" | "totalFee">;
type WithdrawFields = Pick<WithdrawRequest, "requestTime" | "requestId" | "salerId" | "withdrawMoney">;

export function payRequest(salerId: string, totalFee: bigint): PayFields {
  return { ...requestIdentity(), salerId, totalFee };
}

export function withdrawRequest(salerId: string, withdrawMoney: bigint): WithdrawFields {
  return { ...requestIdentity(), salerId, withdrawMoney };
}

type RefundFields = Pick<RefundRequest, "requestTime" | "requestId" | "salerId" | "paymentResponseId" | "refundFee">;

/** A refund of part or all of a payment, by the payment's response_id. */
export function refundRequest(salerId: string, payment: { responseId: string }, refundFee: bigint): RefundFields {
  return { ...requestIdentity(), salerId, paymentResponseId: payment.responseId, refundFee };
}

/** Runs fn(0..count-1) with at most `concurrency` calls in flight; results in index order. */
export async function inParallel<T>(count: number, concurrency: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  const results = new Array<T>(count);
  let next = 0;
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= count) return;
      results[i] = await fn(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return results;
}

/** Deterministic amounts in fen for reproducible runs. */
export function amountFor(i: number, max = 100_000): bigint {
  return BigInt(1 + ((i * 7919 + 104_729) % max));
}

export interface SettleTotals {
  runs: number;
  ran: number;
  credits: bigint;
  amount: bigint;
}

type SettleFn = (req: { fullSweep?: boolean }) => Promise<{ ran: boolean; creditsApplied: bigint; amountSettled: bigint }>;

/**
 * Calls Settle over and over until stopped, as the scheduled job would while traffic flows.
 * Any error is kept and rethrown by stop(), so a surfaced deadlock fails the test.
 */
export function settleLoop(settle: SettleFn, options: { fullSweepEvery?: number } = {}): { stop(): Promise<SettleTotals> } {
  const totals: SettleTotals = { runs: 0, ran: 0, credits: 0n, amount: 0n };
  let stopped = false;
  let failure: unknown;
  const loop = (async () => {
    while (!stopped) {
      try {
        const fullSweep = options.fullSweepEvery !== undefined && totals.runs % options.fullSweepEvery === 0;
        const r = await settle({ fullSweep });
        totals.runs++;
        if (r.ran) totals.ran++;
        totals.credits += r.creditsApplied;
        totals.amount += r.amountSettled;
      } catch (err) {
        failure = err;
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      if (failure !== undefined) throw failure;
      return totals;
    },
  };
}

export async function countRows(knex: Knex, table: string, where: Record<string, unknown> = {}): Promise<number> {
  const [row] = (await knex(table).where(where).count({ n: "*" })) as { n: unknown }[];
  return Number(row?.n ?? 0);
}

export async function paymentRowCounts(p: Platform): Promise<{ payments: number; withdrawals: number; accounts: number; settlements: number }> {
  const knex = p.payment.db.knex;
  return {
    payments: await countRows(knex, "payment_orders"),
    withdrawals: await countRows(knex, "withdrawal_orders"),
    accounts: await countRows(knex, "accounts"),
    settlements: await countRows(knex, "settlements"),
  };
}

/** Balance straight from the table (0 when the account row does not exist). */
export async function storedBalance(knex: Knex, salerId: string): Promise<bigint> {
  const row = (await knex("accounts").where({ saler_id: salerId }).first("balance")) as { balance: unknown } | undefined;
  return row === undefined ? 0n : BigInt(String(row.balance));
}

/** The buffer forgets everything, as a flushed or restarted Redis would (only this platform's keys). */
export async function wipeCreditBuffer(p: Platform): Promise<void> {
  if (p.payment.buffer instanceof MemoryCreditBuffer) p.payment.buffer.wipe();
  else await deleteRedisKeys(p.backend.redisUrl!, p.redisPrefix);
}

/** Expects a gRPC failure with this code; returns the error for further checks. */
export async function expectCode(call: Promise<unknown>, code: Code): Promise<ConnectError> {
  let caught: unknown;
  try {
    await call;
  } catch (err) {
    caught = err;
  }
  expect(caught, `expected ${Code[code]}`).to.be.instanceOf(Error);
  const e = ConnectError.from(caught);
  expect(Code[e.code], e.rawMessage).to.equal(Code[code]);
  return e;
}

export function sumBy<T>(items: readonly T[], key: (t: T) => string, amount: (t: T) => bigint): Map<string, bigint> {
  const sums = new Map<string, bigint>();
  for (const t of items) sums.set(key(t), (sums.get(key(t)) ?? 0n) + amount(t));
  return sums;
}

/** The error a call was refused with; fails when the call succeeds. */
export async function refusal(call: Promise<unknown>): Promise<ConnectError> {
  try {
    await call;
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error("expected the call to be refused");
}

/** A loopback address nothing listens on. */
export async function closedAddress(): Promise<string> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `127.0.0.1:${port}`;
}

export interface PaymentInstance {
  system: PaymentSystem;
  client: Client<typeof PaymentService>;
  /** Its successful orders, through order.v1.OrderExportService. */
  orders: Client<typeof OrderExportService>;
}

/**
 * Payment processes on one fresh database and Redis prefix per test, as separate processes
 * would be: `instance()` starts one more; each test's instances and storage go afterwards.
 */
export function paymentInstances(backend: Backend, prefixName: string): { instance(): Promise<PaymentInstance> } {
  let store: Store;
  let prefix: string;
  let systems: PaymentSystem[] = [];
  let handles: { close(): void }[] = [];
  beforeEach(() => {
    store = freshStore(backend, "payment");
    prefix = uniqueName(prefixName);
  });
  afterEach(async () => {
    for (const h of handles) h.close();
    for (const s of systems) await s.close();
    handles = [];
    systems = [];
    await store.drop();
    if (backend.redisUrl) await deleteRedisKeys(backend.redisUrl, prefix);
  });
  return {
    async instance() {
      const system = await startPaymentSystem(paymentConfig(backend, store, prefix), silentLogger);
      const handle = createGrpcClient(PaymentService, system.server.grpcAddress);
      const orders = createGrpcClient(OrderExportService, system.server.grpcAddress);
      systems.push(system);
      handles.push(handle, orders);
      return { system, client: handle.client, orders: orders.client };
    },
  };
}
