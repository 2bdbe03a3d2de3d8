/**
 * What the Prometheus metrics cost per call: the same server (bench/rpcServerChild.ts) with and
 * without its ServiceMetrics, answering QueryOrder with "not found" and touching no storage, so
 * the difference is the counting alone (started, handled, the handling-time histogram, messages).
 * The two take turns, twice each; server CPU per call is the figure, since on two cores the
 * client's own cost caps both rates alike.
 *
 *   npx tsx bench/metricsOverhead.ts
 */
import { loadAverage, log } from "./lib/common.js";
import { turn, type Turn } from "./lib/rpcTurn.js";

const load = await loadAverage();
const turns: Record<"ours" | "metrics", Turn[]> = { ours: [], metrics: [] };
for (const mode of ["ours", "metrics", "ours", "metrics"] as const) {
  const t = await turn(mode);
  log(`rpc ${mode}: ${t.callsPerSecond.toFixed(0)} calls/s, server CPU ${t.serverCpuUsPerCall.toFixed(0)} µs/call`);
  turns[mode].push(t);
}
const mean = (ts: Turn[], k: keyof Turn) => ts.reduce((s, t) => s + t[k], 0) / ts.length;
const without = { calls: mean(turns.ours, "callsPerSecond"), cpu: mean(turns.ours, "serverCpuUsPerCall") };
const withMetrics = { calls: mean(turns.metrics, "callsPerSecond"), cpu: mean(turns.metrics, "serverCpuUsPerCall") };
process.stdout.write(
  [
    `metrics overhead, unary QueryOrder over gRPC (load average at start ${load})`,
    `  without metrics  ${without.calls.toFixed(0).padStart(7)} calls/s  ${without.cpu.toFixed(1).padStart(7)} µs server CPU/call`,
    `  with metrics     ${withMetrics.calls.toFixed(0).padStart(7)} calls/s  ${withMetrics.cpu.toFixed(1).padStart(7)} µs server CPU/call`,
    `  ratio (with / without): calls/s ${(withMetrics.calls / without.calls).toFixed(3)}, CPU/call ${(withMetrics.cpu / without.cpu).toFixed(3)}`,
    "",
  ].join("\n"),
);
