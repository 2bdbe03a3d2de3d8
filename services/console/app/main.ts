/** The console's entry: loads the configuration, then shows the page the location's hash names. */
import { showError } from "./alerts.js";
import { loadApi, operatorToken, setOperatorToken, type Api } from "./api.js";
import { fill, h } from "./dom.js";
import { setTimeZone, zoneLabel } from "./format.js";
import { actionsPage } from "./actions.js";
import { overviewPage, runPage, runsPage } from "./pages.js";

const main = document.getElementById("main")!;
const alerts = document.getElementById("alerts")!;

function showTokenState(): void {
  const el = document.getElementById("token-state")!;
  if (operatorToken()) {
    fill(el, "operator token set ", h("button", { type: "button", class: "secondary", onclick: () => setOperatorToken("") }, "Forget"));
  } else fill(el, "");
}

export interface Route {
  path: string[];
  query: URLSearchParams;
}

function currentRoute(): Route {
  const hash = location.hash.replace(/^#/, "") || "/";
  const [path, query] = hash.split("?");
  return { path: (path ?? "/").split("/").filter(Boolean).map(decodeURIComponent), query: new URLSearchParams(query ?? "") };
}

let generation = 0;

async function render(api: Api): Promise<void> {
  const mine = ++generation;
  const route = currentRoute();
  alerts.replaceChildren();
  for (const a of document.querySelectorAll<HTMLAnchorElement>(".top nav a")) {
    const target = a.getAttribute("href") ?? "";
    const section = route.path[0] ?? "";
    const current = target === `#/${section}` || (section === "" && target === "#/");
    if (current) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const page = h("div", { "aria-busy": "true" });
  fill(main, page);
  const stillShown = () => mine === generation;
  try {
    const [section, id] = route.path;
    if (!section) await overviewPage(api, page, stillShown);
    else if (section === "runs" && id) await runPage(api, page, id, route.query, stillShown);
    else if (section === "runs") await runsPage(api, page, route.query, stillShown);
    else if (section === "actions") await actionsPage(api, page, stillShown);
    else fill(page, h("h1", {}, "Not found"), h("p", {}, "No such page. ", h("a", { href: "#/" }, "Overview")));
    if (stillShown()) document.title = `${main.querySelector("h1")?.textContent ?? "Console"} — payment platform`;
  } catch (err) {
    if (stillShown()) showError(err);
  } finally {
    page.removeAttribute("aria-busy");
  }
}

async function start(): Promise<void> {
  let api: Api;
  try {
    api = await loadApi();
  } catch (err) {
    fill(main, h("h1", {}, "Console"));
    showError(err);
    return;
  }
  setTimeZone(api.config.timeZone);
  fill(document.getElementById("zone")!, `times in ${zoneLabel()}`);
  showTokenState();
  document.addEventListener("operator-token", showTokenState);
  window.addEventListener("hashchange", () => {
    void render(api).then(() => main.focus({ preventScroll: false }));
  });
  await render(api);
}

void start();
