/**
 * Export of successful orders to CSV.
 *
 *   npx tsx bench/exportOrders.ts
 *
 * 1,000,000 successful payment orders are loaded into a fresh payment database with INSERT …
 * SELECT. Ours: the payment system's ExportOrders stream (order.v1.OrderExportService, its own
 * process, one streamed statement cut into messages of 2000 orders in response_id order) received
 * over gRPC here and written by the reconciliation's own writer (services/recon/orderFiles.ts
 * writeOrderFile), as a live reconciliation run does. Baseline in the same run:
 * `mariadb --batch -e "SELECT … ORDER BY response_id" > file` dumping the same rows of the same
 * table. Both files must hold every row.
 *
 * BENCH_EXPORT_ROWS (1000000).
 */
import { spawn } from "node:child_process";
import { createWriteStream, mkdirSync, rmSync, statSync } from "node:fs";
import { once } from "node:events";
import { join } from "node:path";
import { createGrpcClient } from "../services/shared/rpc/grpcClient.js";
import { EXPORT_CHANNEL_OPTIONS, writeOrderFile } from "../services/recon/orderFiles.js";
import { DATA_DIR, MYSQL_URL, emit, envInt, loadAverage, log } from "./lib/common.js";
import { loadPaymentOrders } from "./lib/orders.js";
import { deploy } from "./lib/services.js";
import { OrderExportService, OrderKey, OrderType } from "../gen/order/v1/order_pb.js";

const ROWS = envInt("BENCH_EXPORT_ROWS", 1_000_000);
const QUERY =
  "SELECT request_id, response_id, saler_id, total_fee, request_time, response_time FROM payment_orders WHERE response_code = 'SUCCESS' ORDER BY response_id";

const started = performance.now();
const loadAtStart = await loadAverage();
const d = await deploy({ merchant: false, paymentEnv: { SETTLE_CRON: "off" }, profileTag: "export" });
const dir = join(DATA_DIR, "export");
mkdirSync(dir, { recursive: true });
const oursFile = join(dir, "payment_orders_ours.csv");
const baselineFile = join(dir, "payment_orders_mariadb.tsv");

function mariadbDump(): Promise<number> {
  const url = new URL(MYSQL_URL);
  const args = ["--batch", `-h${url.hostname}`, `-P${url.port || "3306"}`, `-u${decodeURIComponent(url.username || "root")}`];
  if (url.password) args.push(`-p${decodeURIComponent(url.password)}`);
  args.push(d.paymentDatabase, "-e", QUERY);
  const out = createWriteStream(baselineFile);
  const t0 = performance.now();
  const child = spawn("mariadb", args, { stdio: ["ignore", "pipe", "inherit"] });
  child.stdout.pipe(out);
  const exited = new Promise<void>((resolve, reject) => {
    child.on("error", reject);
    child.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(`mariadb exited ${code}`))));
  });
  return Promise.all([exited, once(out, "close")]).then(() => performance.now() - t0);
}

function lines(path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn("wc", ["-l", path], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.on("error", reject);
    child.on("exit", () => resolve(Number(out.trim().split(/\s+/)[0])));
  });
}

let oursMs: number;
let baselineMs: number;
let oursRows: number;
let cpuPerRow = { payment: 0, writer: 0 };
const checks: string[] = [];
try {
  log(`export: loading ${ROWS} successful orders`);
  await loadPaymentOrders(d.paymentDatabase, ROWS, { accounts: 1000, prefix: "saler", settlementId: 1 });
  // A first untimed pass over the table, so both contenders start with the same cache.
  await mariadbDump();

  log("export: ExportOrders → writeOrderFile");
  const client = createGrpcClient(OrderExportService, d.payment.grpcAddress, { channelOptions: EXPORT_CHANNEL_OPTIONS });
  const cpuBefore = { payment: await d.payment.cpuSeconds(), here: process.cpuUsage() };
  const t0 = performance.now();
  const stream = client.client.exportOrders({ orderType: OrderType.PAYMENT, key: OrderKey.RESPONSE_ID, cutoffTime: "" }, { timeoutMs: 600_000 });
  oursRows = await writeOrderFile(oursFile, "total_fee", stream);
  oursMs = performance.now() - t0;
  const here = process.cpuUsage(cpuBefore.here);
  cpuPerRow = { payment: ((await d.payment.cpuSeconds()) - cpuBefore.payment) / oursRows, writer: (here.user + here.system) / 1e6 / oursRows };
  client.close();
  log(`export: ours ${oursRows} rows in ${oursMs.toFixed(0)} ms`);

  baselineMs = await mariadbDump();
  log(`export: mariadb --batch in ${baselineMs.toFixed(0)} ms`);
  const baselineRows = (await lines(baselineFile)) - 1;
  checks.push(`ours wrote ${oursRows} rows (${(statSync(oursFile).size / 2 ** 20).toFixed(0)} MB), mariadb ${baselineRows} rows: ${oursRows === ROWS && baselineRows === ROWS ? "OK" : "MISMATCH"}`);
} finally {
  await d.close();
  rmSync(dir, { recursive: true, force: true });
}

emit({
  name: "export",
  title: "Export of successful orders to CSV",
  method:
    `${ROWS} successful payment orders (1000 accounts) loaded with INSERT … SELECT into a fresh payment database; one untimed dump first so both ` +
    "start from the same cache. Ours: ExportOrders (payment system process, one streamed statement cut into messages of 2000 orders in response_id order, over gRPC with the export's own codec) " +
    "received here (the reconciliation's channel options, a 4 MiB flow-control window) and written by the reconciliation's writer writeOrderFile (csv-writer's format, UTF-8 BOM, CRLF; plain orders written straight from the received bytes). Baseline: " +
    "`mariadb --batch -e \"" + QUERY + "\" > file` (tab-separated).",
  sizes: { rows: ROWS },
  figures: [
    {
      what: "rows/s exported to a file",
      ours: ROWS / (oursMs / 1000),
      baseline: ROWS / (baselineMs / 1000),
      baselineWhat: "mariadb --batch dumping the same query",
      unit: "rows/s",
      better: "higher",
      target: "≥ 0.8",
      notes:
        `ours ${(oursMs / 1000).toFixed(2)} s, baseline ${(baselineMs / 1000).toFixed(2)} s; CPU per 1000 rows: payment process ${(cpuPerRow.payment * 1e9).toFixed(0)} µs, ` +
        `the exporting client (stream to CSV) ${(cpuPerRow.writer * 1e9).toFixed(0)} µs`,
    },
  ],
  loadAverage: loadAtStart,
  seconds: (performance.now() - started) / 1000,
  checks,
});
