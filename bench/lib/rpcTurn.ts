/**
 * One turn of the unary RPC benchmarks: a server child (bench/rpcServerChild.ts, in the given
 * mode) answers QueryOrder with "not found"; this process calls it over one grpc-js channel with
 * BENCH_RPC_CONCURRENCY (64) calls in flight for BENCH_RPC_SECONDS (8) after a warm-up, and reads
 * the server process's CPU time.
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { create, toBinary } from "@bufbuild/protobuf";
import { QueryOrderRequestSchema } from "../../gen/payment/v1/payment_pb.js";
import { PROFILE_DIR } from "./services.js";
import { ROOT, envInt, percentile } from "./common.js";
import { OrderType } from "../../gen/order/v1/order_pb.js";

export const SECONDS = envInt("BENCH_RPC_SECONDS", 8);
export const CONCURRENCY = envInt("BENCH_RPC_CONCURRENCY", 64);
export const WARMUP_SECONDS = 2;
const request = Buffer.from(toBinary(QueryOrderRequestSchema, create(QueryOrderRequestSchema, { requestId: "20261126000000000001", orderType: OrderType.PAYMENT })));

async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) / 100;
}

export interface Turn {
  callsPerSecond: number;
  serverCpuUsPerCall: number;
  p50Ms: number;
  p99Ms: number;
}

export async function turn(mode: "ours" | "bare" | "metrics"): Promise<Turn> {
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

