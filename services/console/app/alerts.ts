import { errorMessage } from "./api.js";
import { h } from "./dom.js";

/** Shows an error (the service's own message) until dismissed or the next page. */
export function showError(err: unknown): void {
  const alerts = document.getElementById("alerts")!;
  const close = h("button", { type: "button", class: "secondary", "aria-label": "Dismiss error" }, "Dismiss");
  const box = h("div", { class: "alert" }, h("span", { class: "message" }, errorMessage(err)), close);
  close.addEventListener("click", () => box.remove());
  alerts.append(box);
}
