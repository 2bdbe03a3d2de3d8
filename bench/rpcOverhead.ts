/**
 * Unary RPC overhead of our gRPC serving against a bare @grpc/grpc-js server.
 *
 *   npx tsx bench/rpcOverhead.ts
 *
 * Each server runs in a child process (bench/rpcServerChild.ts) and answers QueryOrder with
 * "not found" without touching any storage, so what differs between the two is only the serving
 * layer. This process is the client: one grpc-js channel, the same request bytes, 64 calls in
 * flight, for a fixed time after a warm-up; the two servers take turns, twice each. Besides calls
 * per second it reads each server process's CPU time, since on two cores the client's own cost
 * caps both rates alike: CPU per call is the overhead undiluted.
 *
 * BENCH_RPC_SECONDS (8 per turn), BENCH_RPC_CONCURRENCY (64).
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { create, toBinary } from "@bufbuild/protobuf";
import { OrderType, QueryOrderRequestSchema } from "../gen/payment/v1/payment_pb.js";
import { PROFILE_DIR } from "./lib/services.js";
import { ROOT, emit, envInt, loadAverage, log, percentile } from "./lib/common.js";

const SECONDS = envInt("BENCH_RPC_SECONDS", 8);
const CONCURRENCY = envInt("BENCH_RPC_CONCURRENCY", 64);
const WARMUP_SECONDS = 2;
const request = Buffer.from(toBinary(QueryOrderRequestSchema, create(QueryOrderRequestSchema, { requestId: "20261126000000000001", orderType: OrderType.PAYMENT })));

async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) / 100;
}

interface Turn {
  callsPerSecond: number;
  serverCpuUsPerCall: number;
  p50Ms: number;
  p99Ms: number;
}

async function turn(mode: "ours" | "bare"): Promise<Turn> {
  const profile = process.env.BENCH_PROFILE === "1" ? ["--cpu-prof", `--cpu-prof-dir=${join(PROFILE_DIR, `rpc-${mode}`)}`] : [];
  const child = spawn(process.execPath, ["--import", "tsx", ...profile, join(ROOT, "bench", "rpcServerChild.ts"), mode], {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "inherit"],
  });
  let out = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  while (!out.includes("\n")) await once(child.stdout, "data");
  const port = Number(out.trim());
  const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  const call = () =>
    new Promise<void>((resolve, reject) =>
      client.makeUnaryRequest(
        "/payment.v1.PaymentService/QueryOrder",
        (b: Buffer) => b,
        (b: Buffer) => b,
        request,
        (err) => (err ? reject(err) : resolve()),
      ),
    );
  const loop = async (seconds: number, latencies?: number[]) => {
    const end = performance.now() + seconds * 1000;
    let calls = 0;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (performance.now() < end) {
          const t0 = performance.now();
          await call();
          latencies?.push(performance.now() - t0);
          calls++;
        }
      }),
    );
    return calls;
  };
  try {
    await loop(WARMUP_SECONDS);
    const cpu0 = await cpuSeconds(child.pid!);
    const latencies: number[] = [];
    const t0 = performance.now();
    const calls = await loop(SECONDS, latencies);
    const elapsed = (performance.now() - t0) / 1000;
    const cpu = (await cpuSeconds(child.pid!)) - cpu0;
    latencies.sort((a, b) => a - b);
    return { callsPerSecond: calls / elapsed, serverCpuUsPerCall: (cpu / calls) * 1e6, p50Ms: percentile(latencies, 0.5), p99Ms: percentile(latencies, 0.99) };
  } finally {
    client.close();
    const exited = once(child, "exit");
    child.kill("SIGTERM");
    await exited;
  }
}

const started = performance.now();
const loadAtStart = await loadAverage();
const turns: Record<"ours" | "bare", Turn[]> = { ours: [], bare: [] };
for (const mode of ["bare", "ours", "bare", "ours"] as const) {
  const t = await turn(mode);
  log(`rpc ${mode}: ${t.callsPerSecond.toFixed(0)} calls/s, server CPU ${t.serverCpuUsPerCall.toFixed(0)} µs/call`);
  turns[mode].push(t);
}
const mean = (ts: Turn[], k: keyof Turn) => ts.reduce((s, t) => s + t[k], 0) / ts.length;
const ours = { calls: mean(turns.ours, "callsPerSecond"), cpu: mean(turns.ours, "serverCpuUsPerCall"), p50: mean(turns.ours, "p50Ms"), p99: mean(turns.ours, "p99Ms") };
const bare = { calls: mean(turns.bare, "callsPerSecond"), cpu: mean(turns.bare, "serverCpuUsPerCall"), p50: mean(turns.bare, "p50Ms"), p99: mean(turns.bare, "p99Ms") };

emit({
  name: "rpc",
  title: "Unary RPC overhead of our gRPC serving",
  method:
    "QueryOrder of the payment contract answered \"not found\" by a handler that touches no storage, served (a) by services/shared/server.ts serve() " +
    "(descriptor-built grpc-js definition, wire-type check, call policy with request id and deadline, handler context, error and metadata mapping, " +
    "plus the health and reflection services it always adds) and (b) by a bare @grpc/grpc-js server with a hand-written definition of the same " +
    "method and the same protobuf-es codec. Each server in its own process; this process is the client (one channel, the same request bytes, " +
    `${CONCURRENCY} calls in flight, ${WARMUP_SECONDS} s warm-up, ${SECONDS} s measured), the two servers alternating twice; figures are the means. ` +
    "Server CPU per call is the server process's user+system time over the measured seconds divided by the calls.",
  sizes: { concurrency: CONCURRENCY, secondsPerTurn: SECONDS, turnsEach: 2 },
  figures: [
    {
      what: "calls/s of a trivial unary RPC",
      ours: ours.calls,
      baseline: bare.calls,
      baselineWhat: "bare @grpc/grpc-js server, same method and codec",
      unit: "calls/s",
      better: "higher",
      target: "≥ 0.7",
      notes: `p50/p99 ours ${ours.p50.toFixed(1)}/${ours.p99.toFixed(1)} ms, bare ${bare.p50.toFixed(1)}/${bare.p99.toFixed(1)} ms`,
    },
    {
      what: "server CPU per call",
      ours: ours.cpu,
      baseline: bare.cpu,
      baselineWhat: "bare @grpc/grpc-js server",
      unit: "µs",
      better: "lower",
      notes: "ratio = bare / ours",
    },
  ],
  loadAverage: loadAtStart,
  seconds: (performance.now() - started) / 1000,
});
