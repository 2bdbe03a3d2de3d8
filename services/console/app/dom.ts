/**
 * Building the page: elements are created with their text as text nodes, never parsed as HTML,
 * so whatever a row holds (a stranger's saler_id, say) is shown as it is and never runs.
 */
export type Child = Node | string | number | bigint | null | undefined | false | Child[];

export interface Attrs {
  [name: string]: string | number | boolean | undefined | ((ev: Event) => void) | Record<string, string>;
}

function append(parent: Node, child: Child): void {
  if (child === null || child === undefined || child === false) return;
  if (Array.isArray(child)) {
    for (const c of child) append(parent, c);
    return;
  }
  parent.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
}

/** An element with attributes (on* as listeners, booleans as present/absent) and children. */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === false) continue;
    if (typeof value === "function") el.addEventListener(name.slice(2).toLowerCase(), value);
    else if (name === "dataset" && typeof value === "object") Object.assign(el.dataset, value);
    else if (value === true) el.setAttribute(name, "");
    else el.setAttribute(name, String(value));
  }
  append(el, children);
  return el;
}

const SVG = "http://www.w3.org/2000/svg";

export function svg(tag: string, attrs: Record<string, string | number> = {}, ...children: Child[]): SVGElement {
  const el = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) el.setAttribute(name, String(value));
  append(el, children);
  return el;
}

/** Replaces an element's content. */
export function fill(el: Element, ...children: Child[]): void {
  el.replaceChildren();
  append(el, children);
}

let ids = 0;
export function uid(prefix: string): string {
  return `${prefix}-${++ids}`;
}

/** A labelled field: the label wraps the control, so it is named for screen readers too. */
export function field(label: string, control: HTMLElement, hint?: string): HTMLLabelElement {
  if (hint) {
    const id = uid("hint");
    control.setAttribute("aria-describedby", id);
    return h("label", {}, label, control, h("span", { id, class: "muted" }, hint));
  }
  return h("label", {}, label, control);
}

export function checkbox(label: string, checked: boolean, attrs: Attrs = {}): { label: HTMLLabelElement; input: HTMLInputElement } {
  const input = h("input", { type: "checkbox", ...attrs });
  input.checked = checked;
  return { label: h("label", { class: "check" }, input, label), input };
}

/** A table with header cells; columns marked numeric are right-aligned. */
export function table(caption: string | undefined, columns: { label: string; num?: boolean }[], rows: Child[][], foot?: Child[], attrs: Attrs = {}): HTMLElement {
  return h(
    "div",
    { class: "scroll" },
    h(
      "table",
      attrs,
      caption ? h("caption", {}, caption) : null,
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col", class: c.num ? "num" : undefined }, c.label)))),
      h(
        "tbody",
        {},
        rows.map((r) => h("tr", {}, r.map((cell, i) => (cell instanceof HTMLTableCellElement ? cell : h("td", { class: columns[i]?.num ? "num" : undefined }, cell))))),
      ),
      foot ? h("tfoot", {}, h("tr", {}, foot.map((cell, i) => (cell instanceof HTMLTableCellElement ? cell : h("td", { class: columns[i]?.num ? "num" : undefined }, cell))))) : null,
    ),
  );
}

/** A table cell with a class (id, text, num, fail, ok). */
export function td(cls: string, ...children: Child[]): HTMLTableCellElement {
  return h("td", { class: cls }, ...children);
}
