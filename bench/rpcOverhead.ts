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
import { emit, loadAverage, log } from "./lib/common.js";
import { CONCURRENCY, SECONDS, turn, WARMUP_SECONDS, type Turn } from "./lib/rpcTurn.js";

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
    "QueryOrder of the payment contract answered \"not found\" by a handler that touches no storage, served (a) by services/shared/rpc/server.ts serve() " +
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
      target: "≥ 0.75",
      notes: "ratio = bare / ours",
    },
  ],
  loadAverage: loadAtStart,
  seconds: (performance.now() - started) / 1000,
});
