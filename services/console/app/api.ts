/**
 * The services' own contracts, called with the generated Connect clients over the Connect
 * protocol (connect-web). The operator token, once given, goes with every call as a bearer
 * token; a call refused as UNAUTHENTICATED asks for it and is tried again.
 */
import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { MerchantService } from "../../../gen/merchant/v1/merchant_pb.js";
import { PaymentService } from "../../../gen/payment/v1/payment_pb.js";
import { ReconService } from "../../../gen/recon/v1/recon_pb.js";
import { h } from "./dom.js";

export interface ConsoleConfig {
  own: string;
  ownUrl: string;
  services: { name: string; url: string }[];
  timeZone: string;
  /** Only in the reconciliation service's configuration. */
  cutoffLagSeconds?: number;
}

export interface Api {
  config: ConsoleConfig;
  payment: Client<typeof PaymentService>;
  merchant: Client<typeof MerchantService>;
  recon: Client<typeof ReconService>;
  /** Base URL of the reconciliation service (its run files). */
  reconUrl: string;
}

const TOKEN_KEY = "operator-token";

export function operatorToken(): string {
  return sessionStorage.getItem(TOKEN_KEY) ?? "";
}

export function setOperatorToken(token: string): void {
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
  document.dispatchEvent(new CustomEvent("operator-token"));
}

const withToken: Interceptor = (next) => async (req) => {
  const token = operatorToken();
  if (token) req.header.set("authorization", `Bearer ${token}`);
  return next(req);
};

/** Asks for the operator token in a modal dialog; resolves false when cancelled. */
export function askForToken(reason: string): Promise<boolean> {
  return new Promise((resolve) => {
    const input = h("input", { type: "password", autocomplete: "off", required: true, id: "operator-token-input" });
    const dialog = h(
      "dialog",
      { "aria-labelledby": "token-title" },
      h(
        "form",
        { method: "dialog" },
        h("h2", { id: "token-title" }, "Operator token"),
        h("p", {}, "The services require the operator token (OPERATOR_TOKEN) for this action. ", h("span", { class: "muted" }, reason)),
        h("label", {}, "Operator token", input),
        h(
          "div",
          { class: "row dialog-buttons" },
          h("button", { type: "submit", value: "ok" }, "Use token"),
          h("button", { type: "submit", value: "cancel", class: "secondary", formnovalidate: true }, "Cancel"),
        ),
      ),
    );
    dialog.addEventListener("close", () => {
      const ok = dialog.returnValue === "ok" && input.value !== "";
      if (ok) setOperatorToken(input.value);
      dialog.remove();
      resolve(ok);
    });
    document.body.append(dialog);
    dialog.showModal();
    input.focus();
  });
}

/** Runs a call; when the service asks for the operator token, asks for it and tries again. */
export async function withOperator<T>(call: () => Promise<T>): Promise<T> {
  for (;;) {
    try {
      return await call();
    } catch (err) {
      const e = ConnectError.from(err);
      // No token, or one the services do not accept (it is forgotten): ask for it.
      const wrongToken = e.code === Code.PermissionDenied && operatorToken() !== "";
      if (e.code !== Code.Unauthenticated && !wrongToken) throw e;
      if (wrongToken) setOperatorToken("");
      if (!(await askForToken(e.rawMessage))) throw e;
    }
  }
}

export async function loadApi(): Promise<Api> {
  const res = await fetch("/console/config.json", { cache: "no-cache" });
  if (!res.ok) throw new Error(`could not load /console/config.json: HTTP ${res.status}`);
  const config = (await res.json()) as ConsoleConfig;
  // Services on this host are reached by the host name the page was opened with (localhost or
  // 127.0.0.1 alike), as the Swagger UI page does.
  const ownHost = config.ownUrl ? new URL(config.ownUrl).hostname : location.hostname;
  const urlOf = (name: string): string | undefined => {
    const spec = config.services.find((s) => s.name === name);
    if (!spec) return undefined;
    const u = new URL(spec.url);
    if (u.hostname === ownHost) u.hostname = location.hostname;
    return u.origin;
  };
  const transport = (name: string) => {
    const baseUrl = urlOf(name);
    if (!baseUrl) throw new Error(`this service's console does not know the ${name} service (start the platform with npm start)`);
    return createConnectTransport({ baseUrl, useBinaryFormat: true, interceptors: [withToken] });
  };
  const lazy = <T>(make: () => T): T => {
    let made: T | undefined;
    return new Proxy({} as object, { get: (_, prop) => ((made ??= make()) as Record<string | symbol, unknown>)[prop] }) as T;
  };
  return {
    config,
    payment: lazy(() => createClient(PaymentService, transport("payment"))),
    merchant: lazy(() => createClient(MerchantService, transport("merchant"))),
    recon: lazy(() => createClient(ReconService, transport("recon"))),
    reconUrl: urlOf("recon") ?? "",
  };
}

/** The message to show for a failed call: the service's own message, with its code. */
export function errorMessage(err: unknown): string {
  if (err instanceof ConnectError) return `${Code[err.code] ?? err.code}: ${err.rawMessage}`;
  return err instanceof Error ? err.message : String(err);
}

/** The reconciliation service's cut-off lag (RECON_CUTOFF_LAG_SECONDS), from its own configuration. */
export async function reconCutoffLagSeconds(api: Api): Promise<number> {
  const res = await fetch(`${api.reconUrl}/console/config.json`, { cache: "no-cache" });
  if (!res.ok) throw new Error(`could not read the reconciliation service's configuration: HTTP ${res.status}`);
  const lag = ((await res.json()) as ConsoleConfig).cutoffLagSeconds;
  return typeof lag === "number" && lag >= 0 ? lag : 5;
}
