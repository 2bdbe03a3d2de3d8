/**
 * Reconciliation at scale: N merchant orders against N payment orders, from order files handed
 * in by path, through the reconciliation service's ReconcileFiles RPC. Prints the time, rows per
 * second and peak memory (the service runs in a child process of its own, so its peak RSS is the
 * run's alone), for each N given, with files sorted by the key and with the same files unsorted.
 *
 *   npx tsx bench/reconcileFiles.ts 1000000 4000000
 *
 * The files differ in a known way (1 in 1000 orders only on one side or with another amount), and
 * the counts of the run are checked against it. The service runs with its defaults
 * (RECON_MEMORY_LIMIT 512MB, RECON_THREADS the cores) unless those are set.
 */
import { spawn } from "node:child_process";
import { createWriteStream, existsSync, mkdirSync } from "node:fs";
import { once } from "node:events";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const here = fileURLToPath(new URL(".", import.meta.url));
export const DATA_DIR = join(here, "..", "data", "bench");

export interface Expected {
  f000: number;
  f113: number;
  f114: number;
  f115: number;
}

/**
 * Writes merchant_N.csv and payment_N.csv (sorted by response_id) unless they exist; unsorted, the
 * same orders in a fixed shuffled order (order j is order j * 7919 mod N), as *_N_unsorted.csv.
 */
export async function orderFiles(n: number, sorted = true): Promise<{ merchant: string; payment: string; expected: Expected }> {
  mkdirSync(DATA_DIR, { recursive: true });
  const suffix = sorted ? "" : "_unsorted";
  const merchant = join(DATA_DIR, `merchant_${n}${suffix}.csv`);
  const payment = join(DATA_DIR, `payment_${n}${suffix}.csv`);
  if (!sorted && n % 7919 === 0) throw new Error("N must not be a multiple of 7919");
  const expected: Expected = { f000: 0, f113: 0, f114: 0, f115: 0 };
  const fresh = !existsSync(merchant) || !existsSync(payment);
  const m = fresh ? createWriteStream(merchant) : undefined;
  const p = fresh ? createWriteStream(payment) : undefined;
  const header = "request_id,response_id,saler_id,total_fee,request_time,response_time\n";
  m?.write(header);
  p?.write(header);
  let mChunk = "";
  let pChunk = "";
  for (let j = 0; j < n; j++) {
    const i = sorted ? j : (j * 7919) % n;
    const seq = String(i).padStart(6, "0").slice(-6);
    const second = 20261126000000 + Math.floor(i / 1_000_000);
    const requestId = `${second}${seq}`;
    const responseId = `${second + 1}${seq}`;
    const saler = `saler${i % 1000}`;
    const amount = 100 + (i % 9973);
    const line = (a: number) => `${requestId},${responseId},${saler},${a},2026-11-26 00:00:00,2026-11-26 00:00:01\n`;
    const kind = i % 1000;
    if (kind === 1) {
      expected.f113++;
      pChunk += line(amount);
    } else if (kind === 2) {
      expected.f114++;
      mChunk += line(amount);
    } else if (kind === 3) {
      expected.f115++;
      mChunk += line(amount);
      pChunk += line(amount + 1);
    } else {
      expected.f000++;
      mChunk += line(amount);
      pChunk += line(amount);
    }
    if (fresh && mChunk.length > 1 << 20) {
      if (!m!.write(mChunk)) await once(m!, "drain");
      if (!p!.write(pChunk)) await once(p!, "drain");
      mChunk = "";
      pChunk = "";
    }
  }
  if (fresh) {
    m!.end(mChunk);
    p!.end(pChunk);
    await Promise.all([once(m!, "finish"), once(p!, "finish")]);
  }
  return { merchant, payment, expected };
}

/** Runs one reconciliation in a child process; resolves with its JSON report. */
export function runChild(merchant: string, payment: string, env: Record<string, string> = {}): Promise<Record<string, number>> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", join(here, "reconcileFilesChild.ts"), merchant, payment], {
      stdio: ["ignore", "pipe", "inherit"],
      env: { ...process.env, LOG_LEVEL: "silent", ...env },
    });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.on("exit", (code) => (code === 0 ? resolve(JSON.parse(out) as Record<string, number>) : reject(new Error(`child exited ${code}`))));
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const sizes = process.argv.slice(2).map(Number);
  if (sizes.length === 0) sizes.push(1_000_000);
  console.log("| orders per side | input | time (s) | rows/s (both sides) | peak RSS (MB) | RSS before run (MB) | F000 / F113 / F114 / F115 |");
  console.log("|---|---|---|---|---|---|---|");
  for (const [n, sorted] of sizes.flatMap((n) => [[n, true], [n, false]] as const)) {
    const { merchant, payment, expected } = await orderFiles(n, sorted);
    const r = await runChild(merchant, payment);
    const ok = r.f000 === expected.f000 && r.f113 === expected.f113 && r.f114 === expected.f114 && r.f115 === expected.f115;
    if (!ok) throw new Error(`counts differ from the planted differences: ${JSON.stringify(r)} vs ${JSON.stringify(expected)}`);
    const rows = r.merchantRows! + r.paymentRows!;
    console.log(
      `| ${n.toLocaleString("en")} | ${sorted ? "sorted" : "unsorted"} | ${(r.ms! / 1000).toFixed(2)} | ${Math.round(rows / (r.ms! / 1000)).toLocaleString("en")} | ${r.peakRssMb} | ${r.startRssMb} | ${r.f000} / ${r.f113} / ${r.f114} / ${r.f115} |`,
    );
  }
}
