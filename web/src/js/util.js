// Small DOM and formatting helpers shared by the views.

export const $ = (selector, root = document) => root.querySelector(selector);

// Build an element: el("td", {class: "up"}, "50000.00")
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "class") node.className = v;
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) node.append(c instanceof Node ? c : document.createTextNode(c ?? ""));
  return node;
}

export function row(cells, attrs = {}) {
  return el("tr", attrs, cells.map((c) => (c instanceof Node && c.tagName === "TD" ? c : el("td", {}, c))));
}

// Replace `parent`'s children with render(data) only when `data` differs from
// what it shows now: a periodic refresh then leaves the rows (and a button
// under the user's pointer) alone while nothing changed.
const shown = new WeakMap();
export function show(parent, data, render) {
  const key = JSON.stringify(data);
  if (shown.get(parent) === key) return;
  shown.set(parent, key);
  parent.replaceChildren(...render(data));
}

export function short(hex, n = 10) {
  return hex ? String(hex).slice(0, n) : "–";
}

export function time(ms) {
  if (!ms) return "–";
  return new Date(ms).toISOString().slice(11, 19);
}

export function dateTime(ms) {
  if (!ms) return "–";
  return new Date(ms).toISOString().replace("T", " ").slice(0, 19);
}

// Decimal strings from the API are shown as they come; numbers here are for
// sorting and drawing only, never for amounts sent back.
export const num = (s) => Number(s);

// A decimal string shown with `places` decimals (for display only: the quote
// asset's 8 decimals say nothing a 2-decimal tick does not).
export function fixed(s, places) {
  return places === undefined ? s : Number(s).toFixed(places);
}

export function throttle(fn, ms) {
  let timer = null;
  let again = false;
  return function run() {
    if (timer) { again = true; return; }
    fn();
    timer = setTimeout(() => { timer = null; if (again) { again = false; run(); } }, ms);
  };
}

let toastTimer = null;
export function toast(text, kind = "error") {
  const t = $("#toast");
  t.textContent = text;
  t.className = `msg ${kind}`;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.textContent = ""; }, 6000);
}
