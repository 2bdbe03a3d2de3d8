/**
 * Swagger UI in a real browser: headless Chromium (Debian's package, driven by playwright-core)
 * opens /docs on the merchant's port, picks the payment service, and executes the seed's payment
 * through "Try it out". Without /usr/bin/chromium (or CHROMIUM_PATH) the test is skipped, unless REQUIRE_BROWSER=1
 * (CI), where that is a failure; scripts/install-chromium.sh installs it.
 */
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import { chromium, type BrowserContext } from "playwright-core";
import { linkApiCatalogs } from "../../services/shared/rpc/apiDocs.js";
import { startPlatform, type Platform } from "../harness.js";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const SEED_PAY = { request_time: "2019-08-29 17:15:20", request_id: "20190829171520123456", saler_id: "saler2", total_fee: "100" };

describe("Swagger UI in headless Chromium [embedded]", function () {
  let p: Platform | undefined;
  let browser: BrowserContext | undefined;
  let profile: string | undefined;

  before(async function () {
    if (!existsSync(CHROMIUM)) {
      if (process.env.REQUIRE_BROWSER === "1") throw new Error(`REQUIRE_BROWSER=1 but ${CHROMIUM} is missing; run scripts/install-chromium.sh`);
      console.log(`      skipped: ${CHROMIUM} is not installed (scripts/install-chromium.sh installs it; REQUIRE_BROWSER=1 makes this a failure)`);
      this.skip();
    }
    p = await startPlatform({ name: "embedded" });
    linkApiCatalogs([p.payment.docs, p.merchant.docs, p.recon.docs]);
    profile = mkdtempSync(join(tmpdir(), "chromium-profile-"));
    browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
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
  });

  after(async () => {
    await browser?.close();
    if (profile) rmSync(profile, { recursive: true, force: true });
    await p?.close();
  });

  it("executes the seed's payment through Try it out and shows SUCCESS", async () => {
    const page = await browser!.newPage();
    page.setDefaultTimeout(30_000);
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    try {
      await page.goto(`${p!.merchant.server.httpUrl}/docs`);
      await page.locator(".opblock-summary-path[data-path='/merchant.v1.MerchantService/Pay']").waitFor();

      // Another service's document, loaded from its own port.
      await page.locator(".topbar select").selectOption({ label: "payment" });
      const summary = page.locator(".opblock-summary-path[data-path='/payment.v1.PaymentService/Pay']");
      await summary.waitFor();
      await summary.click();
      const op = page.locator(".opblock", { has: summary });
      await op.locator("button.try-out__btn").click();
      const body = op.locator("textarea.body-param__text");
      // The form starts from the documented example, which is the seed's request.
      expect(JSON.parse(await body.inputValue())).to.deep.equal(SEED_PAY);
      await body.fill(JSON.stringify(SEED_PAY, null, 2));
      await op.locator("button.execute").click();

      const live = op.locator(".live-responses-table");
      await live.locator(".response-col_status", { hasText: "200" }).waitFor();
      const shown = await live.locator(".response-col_description .microlight").first().textContent();
      const answer = JSON.parse(shown ?? "{}");
      expect(answer).to.include({ request_id: SEED_PAY.request_id, saler_id: "saler2", total_fee: "100", response_code: "SUCCESS" });
      expect(answer.response_id).to.match(/^\d{20}$/);

      // It was a real call: the payment system has the order.
      const stored = await p!.paymentClient.queryOrder({ requestId: SEED_PAY.request_id });
      expect(stored.found).to.equal(true);
      expect(stored.order.case === "payment" && stored.order.value.responseId).to.equal(answer.response_id);
      expect(errors).to.deep.equal([]);
    } catch (err) {
      const shot = join(tmpdir(), "swagger-ui-failure.png");
      await page.screenshot({ path: shot, fullPage: true }).catch(() => undefined);
      throw new Error(`${(err as Error).message} (screenshot: ${shot})`);
    } finally {
      await page.close();
    }
  });
});
