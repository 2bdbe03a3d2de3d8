/**
 * The bare pipeline of the payments benchmark: a payment's work end to end written as directly
 * as it can be, to show what the machine allows. Two processes, as the services are:
 *
 *   payment  — a plain @grpc/grpc-js server of PaymentService/Pay (protobuf-es codec) whose
 *              handler batches the order into a multi-row INSERT (mysql2 prepared statement) into
 *              a copy of payment_orders, then batches the credit into one Redis MULTI (SADD of
 *              the due accounts, HINCRBY of their sums), then answers.
 *              Prints its port, serves until SIGTERM.
 *   merchant — sends BARE_COUNT payments (after BARE_WARMUP) at BARE_CONCURRENCY: for each, a
 *              batched multi-row INSERT of the INIT order into a copy of merchant_orders, one Pay
 *              call, a batched UPDATE recording the answer (CASE per request_id, as the merchant
 *              system writes outcomes). Prints "warm" after the warm-up, then runs BARE_COUNT
 *              payments for each "go" line on stdin (the parent reads both processes' CPU
 *              around each) and prints the figures of all measured runs so far as JSON; stops at
 *              "end" or the end of stdin.
 *
 * The batching is the services' own (WriteBatcher, same limits); nothing else of the services
 * is used: no query builder, no validation beyond the amount, no call policy, no logging.
 */
import * as grpc from "@grpc/grpc-js";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Redis } from "ioredis";
import mysql from "mysql2/promise";
import { createInterface } from "node:readline";
import { PayRequestSchema, PayResponseSchema, type PayRequest, type PayResponse } from "../gen/payment/v1/payment_pb.js";
import { WriteBatcher } from "../services/shared/storage/writeBatcher.js";

const PAY_PATH = "/payment.v1.PaymentService/Pay";
const payMethod = {
  path: PAY_PATH,
  requestStream: false,
  responseStream: false,
  requestSerialize: (m: PayRequest) => Buffer.from(toBinary(PayRequestSchema, m)),
  requestDeserialize: (b: Buffer) => fromBinary(PayRequestSchema, b),
  responseSerialize: (m: PayResponse) => Buffer.from(toBinary(PayResponseSchema, m)),
  responseDeserialize: (b: Buffer) => fromBinary(PayResponseSchema, b),
};

function env(name: string): string {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is required`);
  return v;
}

/** "yyyy-MM-dd HH:mm:ss" in Asia/Shanghai (UTC+8, no daylight saving), recomputed once a second. */
let stampSecond = -1;
let stamp = "";
function now(): string {
  const second = Math.floor(Date.now() / 1000);
  if (second !== stampSecond) {
    stampSecond = second;
    stamp = new Date((second + 8 * 3600) * 1000).toISOString().slice(0, 19).replace("T", " ");
  }
  return stamp;
}
let idSeq = 0;
/** A 20-digit id: the time's 14 digits and a 6-digit sequence (unique within a second up to 10^6). */
function nextId(time: string, offset: number): string {
  idSeq = (idSeq + 1) % 1_000_000;
  return time.replace(/\D/g, "") + String((idSeq + offset) % 1_000_000).padStart(6, "0");
}

const BATCH = { maxInFlight: 4, maxBatch: 32 };

async function servePayment(): Promise<void> {
  const pool = mysql.createPool({ uri: env("BARE_MYSQL_URL"), connectionLimit: 16 });
  const redis = new Redis(env("BARE_REDIS_URL"));
  const prefix = env("BARE_REDIS_PREFIX");
  const due = `{${prefix}}:due`;
  const amounts = `{${prefix}}:amounts`;
  type Row = [string, string, string, string, string, string, string, string];
  const inserts = new WriteBatcher<Row, void>(
    async (rows) => {
      const values = rows.map(() => "(?, ?, ?, ?, ?, ?, ?, ?, NULL)").join(", ");
      await pool.execute(
        `INSERT INTO bare_payment_orders (request_id, request_time, saler_id, total_fee, response_id, response_time, response_code, response_msg, settlement_id) VALUES ${values}`,
        rows.flat(),
      );
      return rows.map(() => undefined);
    },
    BATCH,
  );
  const credits = new WriteBatcher<{ salerId: string; amount: bigint }, void>(
    async (items) => {
      const sums = new Map<string, bigint>();
      for (const c of items) sums.set(c.salerId, (sums.get(c.salerId) ?? 0n) + c.amount);
      const multi = redis.multi().sadd(due, ...sums.keys());
      for (const [salerId, amount] of sums) multi.hincrby(amounts, salerId, amount.toString());
      await multi.exec();
      return items.map(() => undefined);
    },
    { maxInFlight: 2, maxBatch: 1000 },
  );
  const server = new grpc.Server();
  server.addService(
    { Pay: payMethod },
    {
      Pay: (call: grpc.ServerUnaryCall<PayRequest, PayResponse>, callback: grpc.sendUnaryData<PayResponse>) => {
        const req = call.request;
        if (req.totalFee <= 0n) {
          callback({ code: grpc.status.INVALID_ARGUMENT, details: "total_fee: must be positive" });
          return;
        }
        const time = now();
        const responseId = nextId(time, 500_000);
        inserts
          .submit([req.requestId, req.requestTime, req.salerId, req.totalFee.toString(), responseId, time, "SUCCESS", "OK"])
          .then(() => credits.submit({ salerId: req.salerId, amount: req.totalFee }))
          .then(
            () =>
              callback(
                null,
                create(PayResponseSchema, {
                  requestId: req.requestId,
                  salerId: req.salerId,
                  totalFee: req.totalFee,
                  responseId,
                  responseTime: time,
                  responseCode: "SUCCESS",
                  responseMsg: "OK",
                }),
              ),
            (err: unknown) => callback({ code: grpc.status.INTERNAL, details: String(err) }),
          );
      },
    },
  );
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  process.stdout.write(`${port}\n`);
  process.once("SIGTERM", () => {
    server.tryShutdown(() => {
      redis.disconnect();
      void pool.end().then(() => process.exit(0));
    });
  });
}

/** xorshift32: the amounts and accounts repeat for a seed. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

async function sendPayments(): Promise<void> {
  const count = Number(env("BARE_COUNT"));
  const warmup = Number(env("BARE_WARMUP"));
  const concurrency = Number(env("BARE_CONCURRENCY"));
  const accounts = Number(env("BARE_ACCOUNTS"));
  const random = rng(Number(env("BARE_SEED")));
  const pool = mysql.createPool({ uri: env("BARE_MYSQL_URL"), connectionLimit: 16 });
  const Client = grpc.makeGenericClientConstructor({ Pay: payMethod }, "PaymentService");
  const client = new Client(env("BARE_PAYMENT_ADDRESS"), grpc.credentials.createInsecure()) as unknown as grpc.Client & {
    Pay(req: PayRequest, options: grpc.CallOptions, callback: (err: grpc.ServiceError | null, res?: PayResponse) => void): void;
  };

  type Order = { requestId: string; requestTime: string; salerId: string; amount: bigint };
  const inserts = new WriteBatcher<Order, void>(
    async (orders) => {
      const time = now();
      const values = orders.map(() => "(?, 'PAYMENT', ?, ?, ?, 'INIT', ?)").join(", ");
      await pool.execute(
        `INSERT INTO bare_merchant_orders (request_id, order_type, saler_id, amount, request_time, state, updated_time) VALUES ${values}`,
        orders.flatMap((o) => [o.requestId, o.salerId, o.amount.toString(), o.requestTime, time]),
      );
      return orders.map(() => undefined);
    },
    BATCH,
  );
  type Answer = { requestId: string; res: PayResponse };
  const outcomes = new WriteBatcher<Answer, void>(
    async (answers) => {
      const cases = answers.map(() => "WHEN ? THEN ?").join(" ");
      const column = (get: (r: PayResponse) => string) => answers.flatMap((a) => [a.requestId, get(a.res)]);
      await pool.execute(
        `UPDATE bare_merchant_orders SET state = CASE request_id ${cases} END, response_id = CASE request_id ${cases} END, ` +
          `response_time = CASE request_id ${cases} END, response_code = CASE request_id ${cases} END, response_msg = CASE request_id ${cases} END, ` +
          `updated_time = ? WHERE request_id IN (${answers.map(() => "?").join(", ")}) AND state IN ('INIT', 'UNKNOWN')`,
        [
          ...column((r) => (r.responseCode === "SUCCESS" ? "SUCCESS" : "FAIL")),
          ...column((r) => r.responseId),
          ...column((r) => r.responseTime),
          ...column((r) => r.responseCode),
          ...column((r) => r.responseMsg),
          now(),
          ...answers.map((a) => a.requestId),
        ],
      );
      return answers.map(() => undefined);
    },
    BATCH,
  );
  const pay = (req: PayRequest) =>
    new Promise<PayResponse>((resolve, reject) =>
      client.Pay(req, { deadline: Date.now() + 30_000 }, (err, res) => (err ? reject(err) : resolve(res!))),
    );

  const run = async (n: number): Promise<{ seconds: number; latencies: Float64Array; amount: bigint }> => {
    const latencies = new Float64Array(n);
    let next = 0;
    let amount = 0n;
    const started = performance.now();
    const worker = async () => {
      for (;;) {
        const i = next++;
        if (i >= n) return;
        const t0 = performance.now();
        const requestTime = now();
        const order = { requestId: nextId(requestTime, 0), requestTime, salerId: `bare${1 + (random() % accounts)}`, amount: BigInt(1 + (random() % 100_000)) };
        await inserts.submit(order);
        const res = await pay(create(PayRequestSchema, { requestTime, requestId: order.requestId, salerId: order.salerId, totalFee: order.amount }));
        await outcomes.submit({ requestId: order.requestId, res });
        if (res.responseCode !== "SUCCESS") throw new Error(`Pay: ${res.responseMsg}`);
        amount += order.amount;
        latencies[i] = performance.now() - t0;
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    return { seconds: (performance.now() - started) / 1000, latencies, amount };
  };

  // After the warm-up, one measured run per "go" line on stdin (the parent takes turns between
  // this pipeline and the services), each answered with the figures of every run so far; "end" stops.
  const warm = await run(warmup);
  process.stdout.write("warm\n");
  let amount = warm.amount;
  let measuredCount = 0;
  let seconds = 0;
  const latencies: Float64Array[] = [];
  for await (const line of createInterface({ input: process.stdin })) {
    if (line !== "go") break;
    const measured = await run(count);
    amount += measured.amount;
    measuredCount += count;
    seconds += measured.seconds;
    latencies.push(measured.latencies);
    const sorted = new Float64Array(measuredCount);
    let at = 0;
    for (const l of latencies) {
      sorted.set(l, at);
      at += l.length;
    }
    sorted.sort();
    const p = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor((q / 100) * sorted.length))]!;
    process.stdout.write(
      `${JSON.stringify({ count: measuredCount, seconds, perSecond: measuredCount / seconds, p50Ms: p(50), p99Ms: p(99), amount: amount.toString() })}\n`,
    );
  }
  client.close();
  await pool.end();
}

const mode = process.argv[2];
if (mode === "payment") await servePayment();
else if (mode === "merchant") await sendPayments();
else throw new Error("usage: barePipelineChild.ts payment|merchant");
