/** Overview, run history and the run page. */
import { ConnectError } from "@connectrpc/connect";
import { RunKind, type AuditRow, type DiffRow, type DiffSummary, type Run } from "../../../gen/recon/v1/recon_pb.js";
import type { Account } from "../../../gen/payment/v1/payment_pb.js";
import { errorMessage, type Api } from "./api.js";
import { checkbox, field, fill, h, svg, table, td, type Child } from "./dom.js";
import { businessTime, count, milliseconds, signedYuan, yuan } from "./format.js";
import { OrderType, OrderKey } from "../../../gen/order/v1/order_pb.js";

const DIFF_MEANING: Record<string, string> = {
  F000: "same on both sides",
  F113: "only in the payment system",
  F114: "only in the merchant system",
  F115: "amounts differ",
};

export function orderTypeName(t: OrderType): string {
  return t === OrderType.WITHDRAWAL ? "withdrawal" : t === OrderType.PAYMENT ? "payment" : t === OrderType.REFUND ? "refund" : "unspecified";
}

function runLink(run: Run): HTMLAnchorElement {
  return h("a", { href: `#/runs/${encodeURIComponent(run.runId)}` }, run.runId);
}

function differences(run: Run): bigint {
  return run.diffs.reduce((a, d) => a + d.f113Count + d.f114Count + d.f115Count, 0n);
}

function outcome(run: Run): HTMLElement {
  if (run.kind === RunKind.AUDIT) {
    const a = run.audit;
    if (!a) return h("span", {}, "");
    return h("span", { class: a.fail > 0n ? "fail" : "ok" }, `${count(a.success)} pass, ${count(a.fail)} fail`);
  }
  if (run.balanced) return h("span", { class: "ok" }, "balanced");
  const parts = run.diffs.flatMap((d) =>
    [
      ["F113", d.f113Count],
      ["F114", d.f114Count],
      ["F115", d.f115Count],
    ]
      .filter(([, n]) => (n as bigint) > 0n)
      .map(([t, n]) => `${t} ${count(n as bigint)}`),
  );
  return h("span", { class: "fail" }, `not balanced: ${count(differences(run))} differences (${parts.join(", ")})`);
}

function kindName(kind: RunKind): string {
  return kind === RunKind.AUDIT ? "audit" : "reconciliation";
}

export function runsTable(runs: Run[], caption?: string): HTMLElement {
  return table(
    caption,
    [{ label: "run" }, { label: "kind" }, { label: "started" }, { label: "cut-off" }, { label: "source" }, { label: "outcome" }, { label: "took", num: true }],
    runs.map((r) => [
      td("id", runLink(r)),
      kindName(r.kind),
      businessTime(r.createdTime),
      r.cutoffTime ? businessTime(r.cutoffTime) : h("span", { class: "muted" }, "files handed in"),
      r.source,
      outcome(r),
      milliseconds(r.durationMs),
    ]),
    undefined,
    { "data-testid": "runs" },
  );
}

/** A section that loads on its own: a failure shows the service's message inside it. */
async function section(parent: HTMLElement, title: string, load: (body: HTMLElement) => Promise<void>): Promise<void> {
  const body = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  const id = `sec-${title.toLowerCase().replace(/[^a-z]+/g, "-")}`;
  parent.append(h("section", { class: "card", "aria-labelledby": id }, h("h2", { id }, title), body));
  try {
    await load(body);
  } catch (err) {
    fill(body, h("div", { class: "alert", role: "alert" }, h("span", { class: "message" }, errorMessage(err))));
  }
}

const MAX_ACCOUNTS = 10_000;
const SHOWN_ACCOUNTS = 500;

export async function overviewPage(api: Api, page: HTMLElement, _shown: () => boolean): Promise<void> {
  fill(page, h("h1", {}, "Overview"));
  const grid = h("div", { class: "grid" });
  page.append(grid);
  await Promise.all([
    section(grid, "Accounts", async (body) => {
      const accounts: Account[] = [];
      let token = "";
      do {
        const res = await api.payment.listAccounts({ pageSize: 1000, pageToken: token });
        accounts.push(...res.accounts);
        token = res.nextPageToken;
      } while (token && accounts.length < MAX_ACCOUNTS);
      const sum = (f: (a: Account) => bigint) => accounts.reduce((s, a) => s + f(a), 0n);
      fill(
        body,
        accounts.length === 0 ? h("p", { class: "muted" }, "No accounts yet: payments create them.") : null,
        table(
          `Settled balance and credit not yet settled, in yuan${token ? ` (the first ${count(accounts.length)} accounts)` : ""}`,
          [{ label: "saler_id" }, { label: "settled balance", num: true }, { label: "pending credit", num: true }, { label: "pending payments", num: true }],
          accounts.slice(0, SHOWN_ACCOUNTS).map((a) => [td("text", a.salerId), yuan(a.balance), yuan(a.pending), count(a.pendingCount)]),
          [`total (${count(accounts.length)} accounts)`, yuan(sum((a) => a.balance)), yuan(sum((a) => a.pending)), count(sum((a) => a.pendingCount))],
          { "data-testid": "accounts" },
        ),
        accounts.length > SHOWN_ACCOUNTS ? h("p", { class: "muted" }, `Showing ${count(SHOWN_ACCOUNTS)} of ${count(accounts.length)} accounts; the totals cover all of them.`) : null,
      );
    }),
    section(grid, "Merchant orders by state", async (body) => {
      const { counts } = await api.merchant.countOrders({});
      const states = ["INIT", "UNKNOWN", "SUCCESS", "FAIL"];
      const of = (t: OrderType, s: string) => counts.find((c) => c.orderType === t && c.state === s);
      const TYPES = [OrderType.PAYMENT, OrderType.WITHDRAWAL, OrderType.REFUND];
      const total = (t: OrderType, f: "count" | "amount") => counts.filter((c) => c.orderType === t).reduce((a, c) => a + c[f], 0n);
      fill(
        body,
        table(
          "Orders the merchant stored, and their amounts in yuan",
          [
            { label: "state" },
            { label: "payments", num: true },
            { label: "payment amount", num: true },
            { label: "withdrawals", num: true },
            { label: "withdrawal amount", num: true },
            { label: "refunds", num: true },
            { label: "refund amount", num: true },
          ],
          states.map((s) => [
            td(s === "UNKNOWN" && TYPES.reduce((n, t) => n + (of(t, s)?.count ?? 0n), 0n) > 0n ? "fail" : "", s),
            ...TYPES.flatMap((t) => [count(of(t, s)?.count ?? 0n), yuan(of(t, s)?.amount ?? 0n)]),
          ]),
          ["total", ...TYPES.flatMap((t) => [count(total(t, "count")), yuan(total(t, "amount"))])],
          { "data-testid": "order-states" },
        ),
        h("p", {}, h("a", { href: "#/actions" }, "Resolve UNKNOWN orders, settle, reconcile, audit or simulate")),
      );
    }),
  ]);
  await section(page, "Latest runs", async (body) => {
    const { runs } = await api.recon.listRuns({ pageSize: 5 });
    fill(body, runs.length === 0 ? h("p", { class: "muted" }, "No runs yet.") : runsTable(runs), h("p", {}, h("a", { href: "#/runs" }, "All runs")));
  });
}

export async function runsPage(api: Api, page: HTMLElement, _query: URLSearchParams, _shown: () => boolean): Promise<void> {
  const kind = h("select", { name: "kind" }, h("option", { value: "0" }, "all"), h("option", { value: "1" }, "reconciliation"), h("option", { value: "2" }, "audit"));
  const body = h("div");
  const status = h("span", { class: "muted", "aria-live": "polite" });
  const prev = h("button", { type: "button", class: "secondary" }, "Previous page");
  const next = h("button", { type: "button", class: "secondary" }, "Next page");
  fill(page, h("h1", {}, "Runs"), h("form", { class: "inline", onsubmit: (e: Event) => e.preventDefault() }, field("Kind", kind)), body, h("div", { class: "pager" }, prev, next, status));
  const tokens: string[] = [""];
  let nextToken = "";
  const PAGE = 20;
  const load = async () => {
    const res = await api.recon.listRuns({ kind: Number(kind.value) as RunKind, pageSize: PAGE, pageToken: tokens[tokens.length - 1]! });
    nextToken = res.nextPageToken;
    fill(body, res.runs.length === 0 ? h("p", { class: "muted" }, "No runs.") : runsTable(res.runs));
    prev.disabled = tokens.length === 1;
    next.disabled = nextToken === "";
    fill(status, `page ${count(tokens.length)}`);
  };
  const guarded = (f: () => Promise<void>) => () => void f().catch((err) => fill(body, h("div", { class: "alert", role: "alert" }, h("span", { class: "message" }, errorMessage(err)))));
  kind.addEventListener(
    "change",
    guarded(async () => {
      tokens.splice(1);
      await load();
    }),
  );
  prev.addEventListener(
    "click",
    guarded(async () => {
      tokens.pop();
      await load();
    }),
  );
  next.addEventListener(
    "click",
    guarded(async () => {
      tokens.push(nextToken);
      await load();
    }),
  );
  await load();
}

function diffChart(d: DiffSummary): SVGElement {
  const bars: [string, bigint, bigint][] = [
    ["F113", d.f113Count, d.f113Amount],
    ["F114", d.f114Count, d.f114Amount],
    ["F115", d.f115Count, d.f115Amount],
  ];
  const max = bars.reduce((m, [, , a]) => (a > m ? a : m), 0n);
  const width = 420;
  const barMax = 200;
  const rowH = 26;
  const label = bars.map(([t, n, a]) => `${t}: ${count(n)} orders, ${yuan(a)} yuan`).join("; ");
  return svg(
    "svg",
    { class: "chart", viewBox: `0 0 ${width} ${rowH * bars.length + 6}`, width, role: "img", "aria-label": `Differing amounts by diff type: ${label}` },
    bars.map(([t, n, a], i) => {
      // Bar lengths from integer fen: the ratio is taken in bigint, per mille.
      const len = max === 0n ? 0 : Number((a * 1000n) / max) / 1000;
      const y = i * rowH + 4;
      return svg(
        "g",
        {},
        svg("text", { x: 0, y: y + 15 }, t),
        svg("rect", { x: 44, y, width: Math.max(len * barMax, a > 0n ? 2 : 0), height: rowH - 8, fill: "#c0392b", rx: 2 }),
        svg("text", { x: 44 + barMax + 10, y: y + 15 }, `${count(n)} · ${yuan(a)}`),
      );
    }),
  );
}

function summaryTable(d: DiffSummary): HTMLElement {
  const rows: [string, bigint, bigint][] = [
    ["F000", d.f000Count, d.f000Amount],
    ["F113", d.f113Count, d.f113Amount],
    ["F114", d.f114Count, d.f114Amount],
    ["F115", d.f115Count, d.f115Amount],
  ];
  return table(
    `${orderTypeName(d.orderType)}s: ${count(d.merchantRows)} merchant rows, ${count(d.paymentRows)} payment rows`,
    [{ label: "diff type" }, { label: "meaning" }, { label: "orders", num: true }, { label: "amount (yuan)", num: true }],
    rows.map(([t, n, a]) => [td(t !== "F000" && n > 0n ? "fail" : "", t), DIFF_MEANING[t], count(n), yuan(a)]),
    ["all", "", count(d.f000Count + d.f113Count + d.f114Count + d.f115Count), yuan(d.f000Amount + d.f113Amount + d.f114Amount + d.f115Amount)],
    { "data-testid": `summary-${orderTypeName(d.orderType)}` },
  );
}

function filesTable(api: Api, run: Run): HTMLElement {
  const link = (name: string, xlsx: boolean) =>
    h(
      "a",
      {
        href: `${api.reconUrl}/console/runs/${encodeURIComponent(run.runId)}/files/${encodeURIComponent(name)}${xlsx ? "?format=xlsx" : ""}`,
        download: "",
        "data-file": name,
        "data-format": xlsx ? "xlsx" : "csv",
      },
      xlsx ? "Excel (.xlsx)" : "CSV as stored",
    );
  return table(
    "Files of this run. CSV as stored: RFC 4180, UTF-8 with a byte order mark. Excel: every id and text is a text cell (all 20 digits kept, nothing evaluated as a formula), amounts in fen are numbers.",
    [{ label: "file" }, { label: "rows", num: true }, { label: "download" }],
    run.files.map((f) => [td("id", f.name), count(f.rows), h("span", { class: "row" }, link(f.name, false), link(f.name, true))]),
    undefined,
    { "data-testid": "files" },
  );
}

function diffRowsView(api: Api, run: Run): HTMLElement {
  const types = run.diffs.map((d) => d.orderType);
  const orderType = h("select", { name: "order_type" }, types.map((t) => h("option", { value: String(t) }, `${orderTypeName(t)}s`)));
  const checks = ["F000", "F113", "F114", "F115"].map((t) => ({ type: t, ...checkbox(`${t} (${DIFF_MEANING[t]})`, t !== "F000", { name: "diff_type", value: t }) }));
  const saler = h("input", { type: "text", name: "saler_id", autocomplete: "off", spellcheck: "false" });
  const size = h("select", { name: "page_size" }, [50, 200, 1000].map((n) => h("option", { value: String(n) }, String(n))));
  const form = h(
    "form",
    { class: "inline", "aria-label": "Filter the orders" },
    field("Order type", orderType),
    h("fieldset", {}, h("legend", {}, "Diff types"), h("div", { class: "row" }, checks.map((c) => c.label))),
    field("saler_id (exact)", saler),
    field("Rows per page", size),
    h("button", { type: "submit" }, "Show"),
  );
  const body = h("div", { "data-testid": "diff-rows" });
  const status = h("span", { "aria-live": "polite", "data-testid": "diff-status" });
  const first = h("button", { type: "button", class: "secondary" }, "First page");
  const prev = h("button", { type: "button", class: "secondary" }, "Previous page");
  const next = h("button", { type: "button", class: "secondary" }, "Next page");
  const tokens: string[] = [""];
  let nextToken = "";

  const load = async () => {
    const diffTypes = checks.filter((c) => c.input.checked).map((c) => c.type);
    const t = Number(orderType.value) as OrderType;
    const res = await api.recon.listDiffRows({ runId: run.runId, orderType: t, diffTypes, salerId: saler.value, pageSize: Number(size.value), pageToken: tokens[tokens.length - 1]! });
    nextToken = res.nextPageToken;
    const summary = run.diffs.find((d) => d.orderType === t);
    const per: Record<string, bigint> = summary ? { F000: summary.f000Count, F113: summary.f113Count, F114: summary.f114Count, F115: summary.f115Count } : {};
    const total = (diffTypes.length === 0 ? ["F000", "F113", "F114", "F115"] : diffTypes).reduce((a, d) => a + (per[d] ?? 0n), 0n);
    const from = res.rowOffset + 1n;
    const to = res.rowOffset + BigInt(res.rows.length);
    fill(
      status,
      res.rows.length === 0 ? "No rows match." : `Rows ${count(from)}–${count(to)}${saler.value === "" ? ` of ${count(total)}` : ""}${nextToken === "" ? " (last page)" : ""}`,
    );
    fill(
      body,
      table(
        undefined,
        [
          { label: "#", num: true },
          { label: "diff type" },
          { label: "request_id" },
          { label: "response_id" },
          { label: "saler_id" },
          { label: "merchant amount", num: true },
          { label: "payment amount", num: true },
          { label: "difference", num: true },
          { label: "request time" },
          { label: "response time" },
        ],
        res.rows.map((r: DiffRow, i) => [
          count(res.rowOffset + BigInt(i) + 1n),
          td(r.diffType === "F000" ? "" : "fail", r.diffType),
          td("id", r.requestId),
          td("id", r.responseId),
          td("text", r.salerId),
          r.diffType === "F113" ? h("span", { class: "muted" }, "—") : yuan(r.merchantAmount),
          r.diffType === "F114" ? h("span", { class: "muted" }, "—") : yuan(r.paymentAmount),
          signedYuan(r.paymentAmount - r.merchantAmount),
          r.requestTime,
          r.responseTime,
        ]),
      ),
    );
    first.disabled = prev.disabled = tokens.length === 1;
    next.disabled = nextToken === "";
  };
  const guarded = (f: () => Promise<void>) => () =>
    void f().catch((err) => {
      fill(body, h("div", { class: "alert", role: "alert" }, h("span", { class: "message" }, errorMessage(err))));
      fill(status, "");
    });
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    tokens.splice(1);
    guarded(load)();
  });
  first.addEventListener("click", guarded(async () => (tokens.splice(1), load())));
  prev.addEventListener("click", guarded(async () => (tokens.pop(), load())));
  next.addEventListener("click", guarded(async () => (tokens.push(nextToken), load())));
  guarded(load)();
  return h(
    "section",
    { class: "card", "aria-labelledby": "orders-title" },
    h("h2", { id: "orders-title" }, "Differing orders"),
    h("p", { class: "muted" }, "Read page by page from the run's diff file on the server. Difference = payment amount − merchant amount."),
    form,
    h("div", { class: "pager" }, first, prev, next, status),
    body,
  );
}

const AUDIT_SHOWN = 1000;

async function auditRowsView(api: Api, run: Run): Promise<HTMLElement> {
  const rows: AuditRow[] = [];
  let more = false;
  for (const result of ["FAIL", "SUCCESS"]) {
    for await (const m of api.recon.streamAuditRows({ runId: run.runId, result })) {
      rows.push(...m.rows);
      if (rows.length >= AUDIT_SHOWN) {
        more = true;
        break;
      }
    }
    if (more) break;
  }
  return h(
    "section",
    { class: "card", "aria-labelledby": "audit-title" },
    h("h2", { id: "audit-title" }, "Accounts"),
    h("p", { class: "muted" }, "FAIL first. Difference = balance − audit amount (the merchant's successful payments minus withdrawals and refunds), in yuan."),
    table(
      undefined,
      [
        { label: "saler_id" },
        { label: "result" },
        { label: "balance", num: true },
        { label: "audit amount", num: true },
        { label: "difference", num: true },
        { label: "at merchant" },
        { label: "at payment" },
      ],
      rows.slice(0, AUDIT_SHOWN).map((r) => [
        td("text", r.salerId),
        td(r.result === "FAIL" ? "fail" : "ok", r.result),
        yuan(r.balance),
        yuan(r.auditAmount),
        td(r.balance === r.auditAmount ? "num" : "num fail", signedYuan(r.balance - r.auditAmount)),
        r.inMerchant ? "yes" : "no",
        r.inPayment ? "yes" : "no",
      ]),
      undefined,
      { "data-testid": "audit-rows" },
    ),
    more ? h("p", { class: "muted" }, `Showing the first ${count(AUDIT_SHOWN)} accounts; the audit file below has all of them.`) : null,
  );
}

export async function runPage(api: Api, page: HTMLElement, runId: string, _query: URLSearchParams, _shown: () => boolean): Promise<void> {
  let run: Run;
  try {
    run = (await api.recon.getRun({ runId })).run!;
  } catch (err) {
    fill(page, h("h1", {}, `Run ${runId}`), h("p", {}, h("a", { href: "#/runs" }, "All runs")));
    throw ConnectError.from(err);
  }
  const facts: [string, Child][] = [
    ["kind", kindName(run.kind)],
    ["outcome", outcome(run)],
    ["started", businessTime(run.createdTime)],
    ["cut-off", run.cutoffTime ? businessTime(run.cutoffTime) : "none (files handed in)"],
    ["source", run.source],
    ["took", milliseconds(run.durationMs)],
  ];
  if (run.kind === RunKind.RECONCILIATION) facts.splice(5, 0, ["matched on", run.key === OrderKey.REQUEST_ID ? "request_id" : "response_id"]);
  fill(
    page,
    h("p", {}, h("a", { href: "#/runs" }, "← All runs")),
    h("h1", {}, `${run.kind === RunKind.AUDIT ? "Audit" : "Reconciliation"} ${run.runId}`),
    h("section", { class: "card" }, h("dl", { class: "facts" }, facts.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]))),
  );
  if (run.kind === RunKind.RECONCILIATION) {
    page.append(
      h(
        "section",
        { class: "card", "aria-labelledby": "summary-title" },
        h("h2", { id: "summary-title" }, "Summary"),
        h(
          "div",
          { class: "grid" },
          run.diffs.map((d) =>
            h(
              "div",
              {},
              summaryTable(d),
              d.f113Count + d.f114Count + d.f115Count > 0n ? [h("h3", {}, `Differing ${orderTypeName(d.orderType)} amounts (yuan)`), diffChart(d)] : null,
            ),
          ),
        ),
      ),
    );
    if (run.diffs.length > 0) page.append(diffRowsView(api, run));
  } else {
    const a = run.audit;
    if (a) {
      page.append(
        h(
          "section",
          { class: "card", "aria-labelledby": "audit-summary" },
          h("h2", { id: "audit-summary" }, "Summary"),
          table(
            undefined,
            [{ label: "accounts", num: true }, { label: "pass", num: true }, { label: "fail", num: true }, { label: "only at merchant", num: true }, { label: "only at payment", num: true }],
            [[count(a.accounts), td("num ok", count(a.success)), td(a.fail > 0n ? "num fail" : "num", count(a.fail)), count(a.merchantOnly), count(a.paymentOnly)]],
          ),
        ),
      );
    }
    page.append(await auditRowsView(api, run));
  }
  page.append(h("section", { class: "card", "aria-labelledby": "files-title" }, h("h2", { id: "files-title" }, "Files"), filesTable(api, run)));
}
