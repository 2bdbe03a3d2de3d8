/** One ReconcileFiles call against a reconciliation service in this process; prints JSON. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { pino } from "pino";
import { ReconService } from "../gen/recon/v1/recon_pb.js";
import { createGrpcClient } from "../services/shared/rpc/grpcClient.js";
import { startReconSystem } from "../services/recon/system.js";
import { readReconConfig } from "../services/recon/config.js";
import { OrderType } from "../gen/order/v1/order_pb.js";

const [merchant, payment] = process.argv.slice(2) as [string, string];
const reconDir = mkdtempSync(join(tmpdir(), "recon-bench-"));
const recon = await startReconSystem(
  {
    // As the service reads its environment (RECON_MEMORY_LIMIT, RECON_THREADS: 512MB and the
    // cores by default), on loopback, with no upstreams and the files' directory as input.
    ...readReconConfig(),
    listen: { host: "127.0.0.1", grpcPort: 0, httpPort: 0 },
    merchantAddress: "127.0.0.1:1",
    paymentAddress: "127.0.0.1:1",
    reconDir,
    inputDir: dirname(merchant),
    cutoffLagSeconds: 0,
  },
  pino({ level: "silent" }),
);
const client = createGrpcClient(ReconService, recon.server.grpcAddress);
if (global.gc) global.gc();
const startRssMb = Math.round(process.memoryUsage().rss / 2 ** 20);
const t0 = performance.now();
const { run } = await client.client.reconcileFiles({
  orderType: OrderType.PAYMENT,
  merchant: { source: { case: "path", value: merchant } },
  payment: { source: { case: "path", value: payment } },
});
const ms = Math.round(performance.now() - t0);
const d = run!.diffs[0]!;
process.stdout.write(
  JSON.stringify({
    ms,
    startRssMb,
    peakRssMb: Math.round(process.resourceUsage().maxRSS / 1024),
    merchantRows: Number(d.merchantRows),
    paymentRows: Number(d.paymentRows),
    f000: Number(d.f000Count),
    f113: Number(d.f113Count),
    f114: Number(d.f114Count),
    f115: Number(d.f115Count),
  }),
);
client.close();
await recon.close();
rmSync(reconDir, { recursive: true, force: true });
