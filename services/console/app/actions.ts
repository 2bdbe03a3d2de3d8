/**
 * Actions: reconcile, audit, settle, resolve UNKNOWN orders, and simulations with faults (sent
 * as consecutive Simulate calls so that the progress bar is real), whose injected faults a
 * "reconcile now" run must find exactly.
 */
import { type InjectedFault, type SimulateResponse } from "../../../gen/merchant/v1/merchant_pb.js";
import { type Run } from "../../../gen/recon/v1/recon_pb.js";
import { errorMessage, reconCutoffLagSeconds, withOperator, type Api } from "./api.js";
import { checkbox, field, fill, h, table, td, type Child } from "./dom.js";
import { businessTime, count, milliseconds, timeZone, yuan } from "./format.js";
import { OrderType, OrderKey } from "../../../gen/order/v1/order_pb.js";

/** A card with a form whose submit runs `act` and shows its result or the service's error. */
function actionCard(title: string, description: string, controls: Child[], button: string, act: (out: HTMLElement) => Promise<void>): HTMLElement {
  const id = `act-${title.toLowerCase().replace(/[^a-z]+/g, "-")}`;
  const out = h("div", { "aria-live": "polite", "data-testid": `${id}-result` });
  const submit = h("button", { type: "submit" }, button);
  const form = h("form", { class: "inline", "aria-labelledby": id }, controls, submit);
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    submit.disabled = true;
    fill(out, h("p", { class: "muted" }, "Working…"));
    act(out)
      .catch((err) => fill(out, h("div", { class: "alert", role: "alert" }, h("span", { class: "message" }, errorMessage(err)))))
      .finally(() => {
        submit.disabled = false;
      });
  });
  return h("section", { class: "card" }, h("h2", { id }, title), h("p", { class: "muted" }, description), form, out);
}

function wholeNumber(name: string, text: string, min: number, max: number): number {
  const t = text.trim();
  if (!/^\d+$/.test(t) || Number(t) < min || Number(t) > max) throw new Error(`${name}: must be a whole number from ${count(min)} to ${count(max)}, got "${text}"`);
  return Number(t);
}

function fenAmount(name: string, text: string): bigint {
  const t = text.trim();
  if (!/^\d{1,13}$/.test(t)) throw new Error(`${name}: must be a whole number of fen, got "${text}"`);
  return BigInt(t);
}

function cutoffField(): { label: HTMLLabelElement; input: HTMLInputElement } {
  const input = h("input", { type: "text", name: "cutoff_time", placeholder: "yyyy-MM-dd HH:mm:ss", autocomplete: "off", size: 20 });
  return { label: field(`Cut-off (${timeZone()})`, input, "empty: a few seconds ago"), input };
}

function runResult(run: Run): HTMLElement {
  const diffs = run.diffs.reduce((a, d) => a + d.f113Count + d.f114Count + d.f115Count, 0n);
  const text =
    run.audit && run.diffs.length === 0
      ? `${count(run.audit.success)} accounts pass, ${count(run.audit.fail)} fail`
      : run.balanced
        ? "balanced: every order on both sides with the same amount"
        : `not balanced: ${count(diffs)} differing orders`;
  return h("p", {}, h("span", { class: run.balanced ? "ok" : "fail" }, text), " — ", h("a", { href: `#/runs/${encodeURIComponent(run.runId)}` }, `open run ${run.runId}`));
}

function faultsTable(faults: InjectedFault[]): HTMLElement {
  return table(
    `Injected faults (${faults.length}): the differences a reconciliation run should report, and no others`,
    [{ label: "kind" }, { label: "request_id" }, { label: "response_id" }, { label: "saler_id" }, { label: "merchant amount", num: true }, { label: "payment amount", num: true }, { label: "expected" }],
    faults.map((f) => [f.kind, td("id", f.requestId), td("id", f.responseId || "—"), td("text", f.salerId), yuan(f.merchantAmount), yuan(f.paymentAmount), f.expectedDiffType]),
    undefined,
    { "data-testid": "injected" },
  );
}

/** Reads every differing row (F113/F114/F115) of a run's order type, page by page. */
async function differingRows(api: Api, run: Run, orderType: OrderType) {
  const rows = [];
  let pageToken = "";
  do {
    const res = await api.recon.listDiffRows({ runId: run.runId, orderType, diffTypes: ["F113", "F114", "F115"], pageSize: 1000, pageToken });
    rows.push(...res.rows);
    pageToken = res.nextPageToken;
  } while (pageToken !== "");
  return rows;
}

function simulationCard(api: Api): HTMLElement {
  const num = (name: string, value: string, attrs: Record<string, string | number> = {}) => h("input", { type: "number", name, value, min: 0, step: 1, inputmode: "numeric", ...attrs });
  const kind = h(
    "select",
    { name: "order_type" },
    h("option", { value: "payment" }, "payments"),
    h("option", { value: "withdrawal" }, "withdrawals"),
    h("option", { value: "refund" }, "refunds of successful payments"),
  );
  const countIn = num("count", "2000", { min: 1 });
  const concurrency = num("concurrency", "32", { min: 1 });
  const accounts = num("accounts", "5", { min: 1 });
  const minAmount = num("min_amount", "1", { min: 1 });
  const maxAmount = num("max_amount", "10000", { min: 1 });
  const seed = num("seed", "42");
  const lost = num("lost_responses", "0");
  const tampered = num("tampered_amounts", "0");
  const merchantOnly = num("merchant_only", "0");
  const controls = [
    field("Order type", kind),
    field("Requests", countIn),
    field("Concurrency", concurrency),
    field("Accounts", accounts),
    field("Smallest amount (fen)", minAmount),
    field("Largest amount (fen)", maxAmount),
    field("Seed", seed),
    h(
      "fieldset",
      {},
      h("legend", {}, "Faults to inject"),
      h("div", { class: "row" }, field("Lost responses (F113)", lost), field("Tampered amounts (F115)", tampered), field("Merchant-only successes (F114)", merchantOnly)),
    ),
  ];
  return actionCard(
    "Simulation",
    "Sends many requests through the merchant at once, optionally with deliberate faults. The same seed sends the same orders.",
    controls,
    "Run simulation",
    async (out) => {
      const orderType = kind.value === "payment" ? OrderType.PAYMENT : kind.value === "refund" ? OrderType.REFUND : OrderType.WITHDRAWAL;
      const total = wholeNumber("count", countIn.value, 1, 1_000_000);
      const conc = wholeNumber("concurrency", concurrency.value, 1, 1024);
      const faults = {
        lostResponses: wholeNumber("lost_responses", lost.value, 0, 1_000_000),
        tamperedAmounts: wholeNumber("tampered_amounts", tampered.value, 0, 1_000_000),
        merchantOnly: wholeNumber("merchant_only", merchantOnly.value, 0, 1_000_000),
      };
      const request = {
        orderType,
        concurrency: conc,
        accounts: wholeNumber("accounts", accounts.value, 1, 100_000),
        minAmount: fenAmount("min_amount", minAmount.value),
        maxAmount: fenAmount("max_amount", maxAmount.value),
      };
      const seedValue = BigInt(wholeNumber("seed", seed.value, 0, Number.MAX_SAFE_INTEGER));
      if (faults.lostResponses + faults.tamperedAmounts + faults.merchantOnly > total) throw new Error("faults: more faults than requests");
      const chunks = planChunks(total, Math.min(total, Math.max(conc * 8, Math.ceil(total / 50))), faults);
      const bar = h("progress", { max: total, value: 0, "aria-label": "Simulation progress" });
      const label = h("span", { "data-testid": "sim-progress" }, `0 of ${count(total)}`);
      fill(out, h("div", { class: "row" }, bar, label));
      const started = performance.now();
      const reports: SimulateResponse[] = [];
      let done = 0;
      for (const [i, chunk] of chunks.entries()) {
        const report = await withOperator(() => api.merchant.simulate({ ...request, count: chunk.count, seed: seedValue + BigInt(i), faults: chunk.faults }));
        reports.push(report);
        done += chunk.count;
        bar.value = done;
        const rate = (done * 1000) / Math.max(1, performance.now() - started);
        fill(label, `${count(done)} of ${count(total)} · ${count(Math.round(rate))} requests/s`);
      }
      const simulationEnded = Date.now();
      const sum = (f: (r: SimulateResponse) => number) => reports.reduce((a, r) => a + f(r), 0);
      const injected = reports.flatMap((r) => r.injected);
      const check = h("div", { "aria-live": "polite", "data-testid": "reconcile-now-result" });
      const reconcileNow = h("button", { type: "button" }, "Reconcile now");
      reconcileNow.addEventListener("click", () => {
        reconcileNow.disabled = true;
        fill(check, h("p", { class: "muted" }, "Reconciling…"));
        void (async () => {
          // A run without a cut-off compares the orders answered at least the service's lag ago:
          // once that long (and a second more) has passed since the simulation ended, every
          // order it sent is compared.
          const lag = await reconCutoffLagSeconds(api);
          const wait = simulationEnded + (lag + 1) * 1000 - Date.now();
          if (wait > 0) {
            fill(check, h("p", { class: "muted" }, `Waiting ${Math.ceil(wait / 1000)} s (RECON_CUTOFF_LAG_SECONDS is ${lag}) so that every order of the simulation is compared…`));
            await new Promise((resolve) => setTimeout(resolve, wait));
          }
          fill(check, h("p", { class: "muted" }, "Reconciling…"));
          const { run } = await withOperator(() => api.recon.reconcile({}));
          const rows = await differingRows(api, run!, orderType);
          const found = new Set(rows.map((r) => `${r.requestId}|${r.diffType}`));
          const expected = new Set(injected.map((f) => `${f.requestId}|${f.expectedDiffType}`));
          const missing = injected.filter((f) => !found.has(`${f.requestId}|${f.expectedDiffType}`));
          const extra = rows.filter((r) => !expected.has(`${r.requestId}|${r.diffType}`));
          fill(
            check,
            runResult(run!),
            missing.length === 0 && extra.length === 0
              ? h("p", { class: "ok" }, `The run found exactly the ${injected.length} injected faults, and no other difference.`)
              : h(
                  "p",
                  { class: "fail" },
                  `The run does not match the injected faults: ${missing.length} not found, ${extra.length} other differences` +
                    (extra.length > 0 ? " (orders from before this simulation, or still in flight)" : "") +
                    ".",
                ),
          );
        })()
          .catch((err) => fill(check, h("div", { class: "alert", role: "alert" }, h("span", { class: "message" }, errorMessage(err)))))
          .finally(() => {
            reconcileNow.disabled = false;
          });
      });
      fill(
        out,
        h("div", { class: "row" }, bar, label),
        table(
          `Simulated ${count(total)} ${kind.value}s in ${reports.length} Simulate call(s), ${milliseconds(Math.round(performance.now() - started))}`,
          [{ label: "outcome" }, { label: "orders", num: true }],
          [
            [td("ok", "SUCCESS"), count(sum((r) => r.succeeded))],
            ["FAIL", count(sum((r) => r.failed))],
            ["UNKNOWN", count(sum((r) => r.unknown))],
          ],
          ["amount succeeded (yuan)", yuan(reports.reduce((a, r) => a + r.amountSucceeded, 0n))],
          { "data-testid": "sim-outcome" },
        ),
        injected.length > 0 ? [faultsTable(injected), h("div", { class: "row" }, reconcileNow), check] : null,
      );
    },
  );
}

interface FaultCounts {
  lostResponses: number;
  tamperedAmounts: number;
  merchantOnly: number;
}

/** Splits a run into consecutive calls, spreading the faults over them (as paycli does). */
export function planChunks(total: number, chunkSize: number, faults: FaultCounts): { count: number; faults: FaultCounts }[] {
  const chunks: { count: number; faults: FaultCounts }[] = [];
  for (let left = total; left > 0; left -= chunkSize) chunks.push({ count: Math.min(chunkSize, left), faults: { lostResponses: 0, tamperedAmounts: 0, merchantOnly: 0 } });
  const room = chunks.map((c) => c.count);
  let next = 0;
  for (const k of ["lostResponses", "tamperedAmounts", "merchantOnly"] as const) {
    for (let n = faults[k]; n > 0; n--) {
      while (room[next % chunks.length] === 0) next++;
      const i = next % chunks.length;
      chunks[i]!.faults[k]++;
      room[i]!--;
      next++;
    }
  }
  return chunks;
}

export async function actionsPage(api: Api, page: HTMLElement, _shown: () => boolean): Promise<void> {
  const rc = cutoffField();
  const key = h("select", { name: "key" }, h("option", { value: String(OrderKey.RESPONSE_ID) }, "response_id"), h("option", { value: String(OrderKey.REQUEST_ID) }, "request_id"));
  const rcResolve = checkbox("Resolve UNKNOWN orders first", false, { name: "resolve_unknown" });
  const au = cutoffField();
  const auResolve = checkbox("Resolve UNKNOWN orders first", false, { name: "resolve_unknown" });
  const sweep = checkbox("Full sweep of the database", false, { name: "full_sweep" });
  const initAge = h("input", { type: "number", name: "init_older_than_seconds", value: "0", min: 0, step: 1 });
  fill(
    page,
    h("h1", {}, "Actions"),
    simulationCard(api),
    h(
      "div",
      { class: "grid" },
      actionCard("Settle", "Moves the buffered credits into the accounts' balances (the job also runs on its schedule).", [sweep.label], "Settle now", async (out) => {
        const r = await withOperator(() => api.payment.settle({ fullSweep: sweep.input.checked }));
        fill(
          out,
          r.ran
            ? h("p", {}, `Settled ${count(r.creditsApplied)} payments, ${yuan(r.amountSettled)} yuan, into ${count(r.accountsSettled)} accounts in ${milliseconds(r.durationMs)}.`)
            : h("p", { class: "muted" }, "Another settler held the lease; nothing done this time."),
        );
      }),
      actionCard(
        "Resolve UNKNOWN orders",
        "Asks the payment system what it recorded for the merchant's UNKNOWN (and old INIT) orders.",
        [field("Also INIT orders older than (seconds)", initAge, "0: the configured age")],
        "Resolve",
        async (out) => {
          const r = await withOperator(() => api.merchant.resolveUnknownOrders({ initOlderThanSeconds: wholeNumber("init_older_than_seconds", initAge.value, 0, 2_147_483_647) }));
          fill(out, h("p", {}, `Examined ${count(r.examined)}: ${count(r.succeeded)} now SUCCESS, ${count(r.failed)} now FAIL, ${count(r.stillUnknown)} still UNKNOWN.`));
        },
      ),
      actionCard("Reconcile", "Compares both sides' successful orders up to the cut-off, order by order.", [rc.label, field("Match on", key), rcResolve.label], "Reconcile", async (out) => {
        const { run } = await withOperator(() => api.recon.reconcile({ cutoffTime: rc.input.value.trim(), key: Number(key.value) as OrderKey, resolveUnknown: rcResolve.input.checked }));
        fill(out, runResult(run!), h("p", { class: "muted" }, `Cut-off ${businessTime(run!.cutoffTime)}`));
      }),
      actionCard("Audit", "Compares every account's balance with the merchant's payments minus withdrawals and refunds, as of the cut-off.", [au.label, auResolve.label], "Audit", async (out) => {
        const { run } = await withOperator(() => api.recon.audit({ cutoffTime: au.input.value.trim(), resolveUnknown: auResolve.input.checked }));
        fill(out, runResult(run!), h("p", { class: "muted" }, `Cut-off ${businessTime(run!.cutoffTime)}`));
      }),
    ),
  );
}
