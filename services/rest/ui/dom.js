// DOM helpers. Text always goes in through text nodes or attributes, never innerHTML,
// so file names and anything else a peer reports cannot inject markup.

const SVG_NS = "http://www.w3.org/2000/svg";

function build(el, attrs, children) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    el.setAttribute(name, value === true ? "" : String(value));
  }
  el.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return el;
}

/** An HTML element: h("td", {class: "x"}, "text", child…). */
export const h = (tag, attrs, ...children) => build(document.createElement(tag), attrs, children);

/** An SVG element, same call shape. */
export const s = (tag, attrs, ...children) =>
  build(document.createElementNS(SVG_NS, tag), attrs, children);

/**
 * Keyed update in place: reuse the child whose data-key matches, refill it only when its
 * signature changed, keep the order of ``items``, drop children no longer listed. Elements
 * that stay keep keyboard focus across refreshes.
 */
export function sync(parent, items, { key, sig = (item) => JSON.stringify(item), create, fill }) {
  const old = new Map([...parent.children].map((el) => [el.dataset.key, el]));
  let previous = null;
  for (const item of items) {
    const k = key(item);
    let el = old.get(k);
    if (el) old.delete(k);
    else {
      el = create(item);
      el.dataset.key = k;
    }
    const signature = sig(item);
    if (el.dataset.sig !== signature) {
      fill(el, item);
      el.dataset.sig = signature;
    }
    const wanted = previous ? previous.nextSibling : parent.firstChild;
    if (el !== wanted) parent.insertBefore(el, wanted);
    previous = el;
  }
  for (const el of old.values()) el.remove();
}

/** Replace an element's children, only when what they show changed (keeps focus). */
export function replaceIfChanged(el, signature, children) {
  if (el.dataset.sig === signature) return;
  el.replaceChildren(...children.filter((c) => c !== null && c !== undefined && c !== false && c !== ""));
  el.dataset.sig = signature;
}

/** Name/value rows of a <dl>; a value may be text or an element. */
export function pairs(dl, entries) {
  const children = entries.flatMap(([name, value]) => [h("dt", null, name), h("dd", null, value)]);
  replaceIfChanged(dl, JSON.stringify(entries.map(([n, v]) => [n, typeof v === "string" ? v : v.textContent])), children);
}

/** Replace an element's content with plain text. */
export function setText(id, text) {
  const el = document.getElementById(id);
  if (el.textContent !== text) el.textContent = text;
  return el;
}

export function bytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i += 1;
  }
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`;
}

/** Up to 8 leading hex digits of an ID at the ring's width (as the CLI prints it). */
export function short(id, bits = 160) {
  const width = Math.ceil(bits / 4);
  return id.slice(id.length - width).slice(0, 8);
}

/** Where an ID sits on the ring, as a fraction of a turn: ID / 2^bits. */
export function turn(id, bits = 160) {
  const scaled = (BigInt(`0x${id}`) << 32n) >> BigInt(bits);
  return Number(scaled) / 2 ** 32;
}

/** A point at ``fraction`` of a turn clockwise from the top, ``radius`` from the centre. */
export function point(fraction, radius) {
  const angle = 2 * Math.PI * fraction;
  return [radius * Math.sin(angle), -radius * Math.cos(angle)];
}
