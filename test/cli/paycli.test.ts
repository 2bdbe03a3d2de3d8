/**
 * paycli, spawned as a person would run it, against a real platform on loopback: the bundle
 * `npm run build` makes (dist/paycli.mjs, what `paycli` runs), built here from the sources.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { expect } from "chai";
import { startPlatform, type Platform } from "../harness.js";
import { bundleCli } from "../../scripts/build.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
// Inside the repository, so that the bundle finds the native modules' packages in node_modules.
const BUNDLE = join(ROOT, ".tmp", `paycli-test-${process.pid}.mjs`);


interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function paycli(p: Platform | undefined, args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  const addresses = p
    ? ["--payment", p.payment.server.grpcAddress, "--merchant", p.merchant.server.grpcAddress, "--recon", p.recon.server.grpcAddress]
    : [];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BUNDLE, ...args, ...addresses], {
      cwd: ROOT,
      env: { ...process.env, NODE_OPTIONS: "", PAYMENT_ADDRESS: "", MERCHANT_ADDRESS: "", RECON_ADDRESS: "", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

/** A loopback port that nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

type Injected = { kind: string; response_id: string; merchant_amount: string; payment_amount: string; expected_diff_type: string };
type Diff = { diff_type: string; response_id: string; merchant_amount: string; payment_amount: string };

describe("paycli [embedded]", () => {
  before(async () => bundleCli(BUNDLE));
  after(() => rmSync(BUNDLE, { force: true }));

  describe("single orders and usage", () => {
    let p: Platform;
    before(async () => {
      p = await startPlatform({ name: "embedded" });
    });
    after(async () => p?.close());

    it("pays through the merchant and prints the stored order (exit 0)", async () => {
      const r = await paycli(p, ["pay", "--saler", "cli_saler1", "--amount", "250"]);
      expect(r.code, r.stderr).to.equal(0);
      expect(r.stdout).to.match(/^state\s+SUCCESS$/m);
      expect(r.stdout).to.match(/^amount \(fen\)\s+250$/m);
      const requestId = /^request_id\s+(\d{20})$/m.exec(r.stdout)?.[1];
      const stored = await p.merchantClient.getOrder({ requestId: requestId! });
      expect(stored.order).to.include({ salerId: "cli_saler1", amount: 250n, state: "SUCCESS" });

      const json = await paycli(p, ["orders", "--saler", "cli_saler1", "--json"]);
      expect(json.code).to.equal(0);
      expect(JSON.parse(json.stdout).orders.map((o: { request_id: string }) => o.request_id)).to.deep.equal([requestId]);
    });

    it("refunds part of a payment and shows it on the payment; a bad --of is a usage error (exit 2)", async () => {
      const paid = await paycli(p, ["pay", "--saler", "cli_refund", "--amount", "900"]);
      const paymentId = /^request_id\s+(\d{20})$/m.exec(paid.stdout)![1]!;
      await p.paymentClient.settle({ fullSweep: true });
      const r = await paycli(p, ["refund", "--of", paymentId, "--amount", "300"]);
      expect(r.code, r.stderr).to.equal(0);
      expect(r.stdout).to.match(/^state\s+SUCCESS$/m);
      expect(r.stdout).to.match(/^type\s+refund$/m);
      expect((await p.merchantClient.getOrder({ requestId: paymentId })).order).to.include({ refunded: 300n, refundable: 600n });
      const bad = await paycli(p, ["refund", "--of", "yesterday", "--amount", "1"]);
      expect(bad.code).to.equal(2);
      expect(bad.stderr).to.contain("--of");
    });

    it("exits 1 on a FAIL answer and shows the reason", async () => {
      await paycli(p, ["pay", "--saler", "cli_saler2", "--amount", "100"]);
      // The credit is not settled yet, so the settled balance is 0.
      const r = await paycli(p, ["withdraw", "--saler", "cli_saler2", "--amount", "100"]);
      expect(r.code).to.equal(1);
      expect(r.stdout).to.match(/^state\s+FAIL$/m);
      expect(r.stdout).to.contain("账户余额不足，提款失败");
    });

    it("shows balances as a table with a total, after a settlement", async () => {
      await paycli(p, ["pay", "--saler", "cli_saler3", "--amount", "70"]);
      const settled = await paycli(p, ["settle"]);
      expect(settled.code, settled.stderr).to.equal(0);
      expect(settled.stdout).to.match(/^accounts settled\s+\d+$/m);
      const r = await paycli(p, ["balances"]);
      expect(r.code).to.equal(0);
      const lines = r.stdout.trimEnd().split("\n");
      expect(lines[0]).to.match(/^saler_id\s+balance \(fen\)\s+pending \(fen\)\s+pending payments$/);
      const accounts = await p.paymentClient.listAccounts({});
      const total = accounts.accounts.reduce((t, a) => t + a.balance, 0n);
      expect(lines.at(-1)).to.match(new RegExp(`^${accounts.accounts.length} accounts\\s+${total}\\s+0\\s+0$`));
      expect(r.stdout).to.match(/^cli_saler3\s+70\s+0\s+0$/m);
    });

    it("exits 2 on usage errors, before any call, and on requests a service refuses as invalid", async () => {
      const started = async () => {
        const calls = await Promise.all(
          [p.payment, p.merchant, p.recon].map(async (s) => {
            const text = await (await fetch(`${s.server.httpUrl}/metrics`)).text();
            return [...text.matchAll(/^grpc_server_started_total\{.*\} (\d+)$/gm)].reduce((n, m) => n + Number(m[1]), 0);
          }),
        );
        return calls.reduce((a, b) => a + b, 0);
      };
      const before = await started();
      const cases: [string[], RegExp][] = [
        [["pay", "--saler", "x"], /required option '--amount <fen>' not specified/],
        [["pay", "--saler", "x", "--amount", "1.5"], /'--amount <fen>' argument '1\.5' is invalid\. must be a whole number of fen/],
        [["simulate", "--count", "10", "--lost-responses", "11"], /more faults than requests/],
        [["simulate", "--count", "-3"], /'--count <n>' argument '-3' is invalid\. must be between 1 and 1000000, got -3/],
        [["simulate", "--frobnicate"], /unknown option '--frobnicate'/],
        [["reconcile", "--cutoff", "yesterday"], /'--cutoff <time>' argument 'yesterday' is invalid\. must be "yyyy-MM-dd HH:mm:ss"/],
        [["audit", "--cutoff", "2019-02-30 00:00:00"], /is not a real time/],
        [["orders", "--state", "LOST"], /must be one of INIT, SUCCESS, FAIL, UNKNOWN/],
        [["runs", "show"], /missing required argument 'run-id'/],
        [["dance"], /unknown command 'dance'/],
        [["balances", "--payment", "not-an-address"], /'--payment <host:port>' argument 'not-an-address' is invalid\. must be host:port/],
      ];
      for (const [args, message] of cases) {
        const r = await paycli(args[0] === "balances" ? undefined : p, args);
        expect(r.code, args.join(" ")).to.equal(2);
        expect(r.stderr, args.join(" ")).to.match(message);
      }
      // None of them reached a service.
      expect(await started()).to.equal(before);
      const refused = await paycli(p, ["pay", "--saler", "no spaces", "--amount", "5"]);
      expect(refused.code).to.equal(2);
      expect(refused.stderr).to.match(/merchant service refused the request: saler_id/);
    });

    it("documents every option with its description and default in the command's --help", async () => {
      const r = await paycli(undefined, ["simulate", "--help"]);
      expect(r.code).to.equal(0);
      expect(r.stdout).to.match(/^Usage: paycli simulate \[options\] \[type\]$/m);
      expect(r.stdout).to.match(/--count <n>\s+orders to send \(default: "1000"\)/);
      expect(r.stdout).to.match(/--concurrency <n>\s+requests in flight at once \(default: "16"\)/);
      expect(r.stdout).to.match(/--payment <host:port>\s+payment service gRPC address \(default:\s+"127\.0\.0\.1:50051", env: PAYMENT_ADDRESS\)/);
      const top = await paycli(undefined, ["--help"]);
      expect(top.code).to.equal(0);
      for (const c of ["pay", "withdraw", "simulate", "settle", "resolve", "balances", "orders", "reconcile", "audit", "runs"]) expect(top.stdout).to.match(new RegExp(`^  ${c} `, "m"));
    });

    it("pages through the orders, and labels times with their zone", async () => {
      for (let i = 0; i < 5; i++) expect((await paycli(p, ["pay", "--saler", "cli_pages", "--amount", String(10 + i)])).code).to.equal(0);
      const first = await paycli(p, ["orders", "--saler", "cli_pages", "--limit", "2"]);
      expect(first.code, first.stderr).to.equal(0);
      expect(first.stdout).to.match(/request_time \(Asia\/Shanghai\)/);
      const token = /next page: --page (\d+)/.exec(first.stdout)?.[1];
      expect(token, first.stdout).to.be.a("string");
      const pages = [first];
      let next: string | undefined = token;
      while (next) {
        const page = await paycli(p, ["orders", "--saler", "cli_pages", "--limit", "2", "--page", next, "--json"]);
        expect(page.code, page.stderr).to.equal(0);
        const body = JSON.parse(page.stdout) as { orders: { total_fee?: string; amount: string }[]; next_page_token: string };
        pages.push({ ...page, stdout: body.orders.map((o) => o.amount).join(",") });
        next = body.next_page_token || undefined;
      }
      const firstAmounts = [...first.stdout.matchAll(/cli_pages\s+(\d+)/g)].map((m) => m[1]);
      const amounts = [...firstAmounts, ...pages.slice(1).flatMap((pg) => pg.stdout.split(","))];
      expect(amounts).to.deep.equal(["14", "13", "12", "11", "10"]);
      const shown = await paycli(p, ["pay", "--saler", "cli_pages", "--amount", "1"]);
      expect(shown.stdout).to.match(/^request_time \(Asia\/Shanghai\)\s+\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/m);
    });

    it("exits 3 when a service cannot be reached, naming it", async () => {
      const port = await closedPort();
      const r = await paycli(undefined, ["balances"], { PAYMENT_ADDRESS: `127.0.0.1:${port}` });
      expect(r.code).to.equal(3);
      expect(r.stderr).to.contain(`cannot reach the payment service at 127.0.0.1:${port}`);
    });
  });

  describe("with the merchant system down", () => {
    let p: Platform;
    before(async () => {
      p = await startPlatform({ name: "embedded" });
      await p.merchant.server.close(100);
    });
    after(async () => p?.close());

    it("names the service that is really unreachable: recon answers, its upstream merchant does not (exit 3)", async () => {
      const r = await paycli(p, ["reconcile"]);
      expect(r.code, r.stderr).to.equal(3);
      expect(r.stderr).to.contain(`the recon service at ${p.recon.server.grpcAddress} answered, but cannot reach the merchant service at ${p.merchant.server.grpcAddress}`);
      expect(r.stderr).to.not.contain("cannot reach the recon service");
      // The JSON gateway says the same, as UNAVAILABLE.
      const res = await fetch(`${p.recon.server.httpUrl}/recon.v1.ReconService/Reconcile`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: "{}",
      });
      expect(res.status).to.equal(503);
      const body = (await res.json()) as { code: string; message: string };
      expect(body.code).to.equal("unavailable");
      expect(body.message).to.match(new RegExp(`^upstream merchant service at ${p.merchant.server.grpcAddress.replace(/\./g, "\\.")} is unreachable \\(`));
      expect(body.message).to.not.match(/^No connection established/);
    });
  });

  describe("a clean day", () => {
    let p: Platform;
    before(async () => {
      p = await startPlatform({ name: "embedded" });
    });
    after(async () => p?.close());

    it("simulates with an honest progress bar, then reconciles BALANCED and audits PASS (exit 0)", async () => {
      const sim = await paycli(p, ["simulate", "payments", "--count", "300", "--chunk", "100", "--concurrency", "16", "--accounts", "5", "--seed", "7"]);
      expect(sim.code, sim.stderr).to.equal(0);
      // Not a terminal: a plain line whenever another tenth is done, each after a real chunk.
      const progress = sim.stderr.trim().split("\n");
      expect(progress.map((l) => / (\d+)\/300 /.exec(l)?.[1])).to.deep.equal(["100", "200", "300"]);
      for (const line of progress) expect(line).to.match(/\/s\s+elapsed \S+\s+ETA \S+$/);
      expect(sim.stdout).to.match(/^SUCCESS\s+300$/m);
      expect(sim.stdout).to.match(/^total\s+300$/m);
      expect(sim.stdout).to.contain("sent as 3 Simulate call(s) of up to 100");
      const listed = await p.merchantClient.listOrders({ pageSize: 1000 });
      expect(listed.orders.filter((o) => o.state === "SUCCESS")).to.have.length(300);

      const recon = await paycli(p, ["reconcile"]);
      expect(recon.code, recon.stdout + recon.stderr).to.equal(0);
      expect(recon.stdout).to.contain("BALANCED: every order is F000");
      expect(recon.stdout).to.match(/^payment\s+300\s+300\s+300\s+\d+\s+0\s+0\s+0\s+0\s+0\s+0$/m);
      const audit = await paycli(p, ["audit"]);
      expect(audit.code, audit.stdout + audit.stderr).to.equal(0);
      expect(audit.stdout).to.match(/^SUCCESS\s+5$/m);
      expect(audit.stdout).to.contain("PASS");
    });

    it("simulates refunds of the settled payments with a lost answer; reconciliation finds exactly that refund (exit 1)", async () => {
      expect((await paycli(p, ["settle"])).code).to.equal(0);
      const sim = await paycli(p, ["simulate", "refunds", "--count", "40", "--accounts", "5", "--seed", "8", "--max-amount", "500", "--lost-responses", "1", "--json"]);
      expect(sim.code, sim.stderr).to.equal(0);
      const report = JSON.parse(sim.stdout) as { injected: Injected[]; order_type: string; succeeded: number; unknown: number };
      expect(report.order_type).to.equal("refund");
      expect(report.injected.map((f) => `${f.kind} ${f.expected_diff_type}`)).to.deep.equal(["LOST_RESPONSE F113"]);
      expect(report.succeeded + report.unknown).to.equal(40);
      const listed = await paycli(p, ["orders", "--type", "refunds", "--limit", "100", "--json"]);
      expect(listed.code, listed.stderr).to.equal(0);
      expect(listed.stdout.match(/"order_type":\s*"ORDER_TYPE_REFUND"/g) ?? []).to.have.length(40);

      const recon = await paycli(p, ["reconcile", "--rows", "100", "--json"]);
      expect(recon.code, recon.stderr).to.equal(1);
      const { differences } = JSON.parse(recon.stdout) as { differences: (Diff & { order_type: string })[] };
      expect(differences.map((d) => `${d.order_type} ${d.diff_type} ${d.response_id} p=${d.payment_amount}`)).to.deep.equal(
        report.injected.map((f) => `ORDER_TYPE_REFUND F113 ${f.response_id} p=${f.payment_amount}`),
      );
    });
  });

  describe("a day with injected faults", () => {
    let p: Platform;
    before(async () => {
      p = await startPlatform({ name: "embedded" });
    });
    after(async () => p?.close());

    it("reconciliation reports exactly the rows the simulation injected, of every kind (exit 1)", async () => {
      const sim = await paycli(p, [
        "simulate",
        "--count", "240",
        "--chunk", "80",
        "--accounts", "6",
        "--seed", "2026",
        "--lost-responses", "3",
        "--tampered-amounts", "2",
        "--merchant-only", "2",
        "--json",
      ]);
      expect(sim.code, sim.stderr).to.equal(0);
      const report = JSON.parse(sim.stdout) as { injected: Injected[]; succeeded: number; unknown: number; calls: { requested: number }[] };
      expect(report.calls.map((c) => c.requested)).to.deep.equal([80, 80, 80]);
      const kinds = report.injected.map((f) => f.kind).sort();
      expect(kinds).to.deep.equal(["LOST_RESPONSE", "LOST_RESPONSE", "LOST_RESPONSE", "MERCHANT_ONLY", "MERCHANT_ONLY", "TAMPERED_AMOUNT", "TAMPERED_AMOUNT"]);
      expect(report.unknown).to.equal(3);

      expect((await paycli(p, ["settle"])).code).to.equal(0);
      const recon = await paycli(p, ["reconcile", "--rows", "1000", "--json"]);
      expect(recon.code, recon.stderr).to.equal(1);
      const { run, differences } = JSON.parse(recon.stdout) as { run: { run_id: string; balanced: boolean }; differences: Diff[] };
      expect(run.balanced).to.equal(false);
      const found = differences.map((d) => `${d.diff_type} ${d.response_id} m=${d.merchant_amount} p=${d.payment_amount}`).sort();
      const expected = report.injected.map((f) => `${f.expected_diff_type} ${f.response_id} m=${f.merchant_amount} p=${f.payment_amount}`).sort();
      expect(found).to.deep.equal(expected);

      // The same run as a person reads it: the summary table, NOT BALANCED, and the rows.
      const shown = await paycli(p, ["runs", "show", run.run_id]);
      // An unbalanced run: exit 1, as reconcile itself did.
      expect(shown.code, shown.stderr).to.equal(1);
      expect(shown.stdout).to.match(/^payment\s+237\s+238\s+233\s+\d+\s+3\s+\d+\s+2\s+\d+\s+2\s+\d+$/m);
      expect(shown.stdout).to.contain("NOT BALANCED: 7 difference(s)");
      for (const f of report.injected) expect(shown.stdout).to.match(new RegExp(`^payment\\s+${f.expected_diff_type}\\s+\\d{20}\\s+${f.response_id}\\s`, "m"));

      const audit = await paycli(p, ["audit"]);
      expect(audit.code).to.equal(1);
      expect(audit.stdout).to.match(/^FAIL: \d+ account\(s\) do not match\.$/m);

      const resolved = await paycli(p, ["resolve"]);
      expect(resolved.code, resolved.stderr).to.equal(0);
      expect(resolved.stdout).to.match(/^orders examined\s+0$/m);
      expect(resolved.stdout).to.match(/^skipped\s+3$/m);
      expect(resolved.stdout).to.contain("Skipped 3 order(s) UNKNOWN by an injected lost response");
      for (const f of report.injected.filter((i) => i.kind === "LOST_RESPONSE")) expect(resolved.stdout).to.contain((f as Injected & { request_id: string }).request_id);

      const runs = await paycli(p, ["runs", "list"]);
      expect(runs.code).to.equal(0);
      expect(runs.stdout).to.contain(run.run_id);
      expect(runs.stdout).to.match(/audit\s+\S+ \S+\s+\S+ \S+\s+live\s+FAIL/);
    });

    it("gives the same orders for one seed from paycli simulate and from the Simulate RPC", async () => {
      const plan = { count: 60, accounts: 4, seed: 99 };
      const newest = async () =>
        (await p.merchantClient.listOrders({ pageSize: plan.count })).orders.map((o) => `${o.salerId}:${o.amount}`).sort();
      const cli = await paycli(p, ["simulate", "--count", String(plan.count), "--accounts", String(plan.accounts), "--seed", String(plan.seed), "--prefix", "seeded", "--json"]);
      expect(cli.code, cli.stderr).to.equal(0);
      expect((JSON.parse(cli.stdout) as { calls: unknown[] }).calls).to.have.length(1);
      const fromCli = await newest();
      const rpc = await p.merchantClient.simulate({ count: plan.count, accounts: plan.accounts, seed: BigInt(plan.seed), accountPrefix: "seeded" });
      expect(rpc.requested).to.equal(plan.count);
      const fromRpc = await newest();
      expect(fromCli.every((o) => o.startsWith("seeded"))).to.equal(true);
      expect(fromRpc).to.deep.equal(fromCli);
    });

    it("reconciles files handed in: the seed's example", async () => {
      const dir = mkdtempSync(join(tmpdir(), "paycli-"));
      try {
        writeFileSync(join(dir, "m.csv"), "request_id,response_id,total_fee\nr1,1,10\nr2,2,20\nr3,3,3\n");
        writeFileSync(join(dir, "p.csv"), "request_id,response_id,total_fee\nr1,1,10\nr3,3,4\nr4,4,40\n");
        const r = await paycli(p, ["reconcile", "--merchant-file", join(dir, "m.csv"), "--payment-file", join(dir, "p.csv")]);
        expect(r.code, r.stderr).to.equal(1);
        expect(r.stdout).to.match(/^payment\s+3\s+3\s+1\s+10\s+1\s+40\s+1\s+20\s+1\s+4$/m);
        expect(r.stdout).to.match(/^payment\s+F113\s+r4\s+4\s+0\s+40$/m);
        expect(r.stdout).to.match(/^payment\s+F114\s+r2\s+2\s+20\s+0$/m);
        expect(r.stdout).to.match(/^payment\s+F115\s+r3\s+3\s+3\s+4$/m);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
});
