// The ring page: peers on a circle at ID / 2^m, the selected peer's fingers as chords,
// files as ticks at their keys (warning colour when degraded), holders lit on hover/focus.

import { baseOf, getJSON } from "./api.js";
import { h, point, replaceIfChanged, s, short, sync, turn } from "./dom.js";

const R = 200; // the circle; peers sit on it
const TICK = [166, 184]; // file ticks inside it, clear of the peer marks
const LABEL = 224; // peer labels just outside

let app = null;
let selected = null; // peer ID whose fingers are drawn
let fingers = null; // {id, nodes: [peer IDs]} of the selected peer, or null
let hovered = null; // name of the file under the pointer / focus

export function init(state) {
  app = state;
}

function selectedPeer(state) {
  const peers = state.ring.peers;
  return peers.find((p) => p.id === selected) || peers[0];
}

export async function refresh(state) {
  const peer = selectedPeer(state);
  selected = peer.id;
  try {
    const table = await getJSON(baseOf(peer, state.self), "/finger_table");
    fingers = { id: peer.id, nodes: [...new Set(table.fingers.map((f) => f.node.id))] };
  } catch {
    fingers = { id: peer.id, nodes: null }; // that peer does not answer (or is not reachable)
  }
}

function select(id) {
  selected = id;
  render(app);
  app.refresh();
}

function peerMark() {
  const mark = s("g", { tabindex: 0, role: "button" }, s("circle", { r: 9 }), s("text"), s("title"));
  mark.addEventListener("click", () => select(mark.dataset.id));
  mark.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      select(mark.dataset.id);
    }
  });
  return mark;
}

function fillPeer(mark, { peer, bits, isSelected }) {
  const [x, y] = point(turn(peer.id, bits), R);
  const [lx, ly] = point(turn(peer.id, bits), LABEL);
  const label = short(peer.id, bits);
  const state = peer.reachable
    ? `${peer.files.primary} primary and ${peer.files.replica} replica files`
    : "not answering";
  mark.dataset.id = peer.id;
  mark.setAttribute("class", `peer${peer.reachable ? "" : " unreachable"}`);
  mark.setAttribute("aria-pressed", String(isSelected));
  mark.setAttribute("aria-label", `Peer ${label} at ${peer.address}, ${state}`);
  const [circle, text, title] = mark.children;
  circle.setAttribute("cx", x.toFixed(2));
  circle.setAttribute("cy", y.toFixed(2));
  text.setAttribute("x", lx.toFixed(2));
  text.setAttribute("y", ly.toFixed(2));
  text.setAttribute("text-anchor", lx > 8 ? "start" : lx < -8 ? "end" : "middle");
  text.textContent = label;
  title.textContent = `${peer.id}\n${peer.address}`;
}

function fileTick() {
  const tick = s("g", { tabindex: 0, role: "img" }, s("line", { class: "hit" }), s("line"), s("title"));
  const show = () => hover(tick.dataset.key); // the key is the file name
  tick.addEventListener("mouseenter", show);
  tick.addEventListener("focus", show);
  tick.addEventListener("mouseleave", () => hover(null));
  tick.addEventListener("blur", () => hover(null));
  return tick;
}

function fillTick(tick, { row, bits }) {
  const [x1, y1] = point(turn(row.key, bits), TICK[0]);
  const [x2, y2] = point(turn(row.key, bits), TICK[1]);
  for (const line of [...tick.querySelectorAll("line")]) {
    line.setAttribute("x1", x1.toFixed(2));
    line.setAttribute("y1", y1.toFixed(2));
    line.setAttribute("x2", x2.toFixed(2));
    line.setAttribute("y2", y2.toFixed(2));
  }
  const health = `${row.copies} of ${row.wanted} copies${row.degraded ? ", degraded" : ""}`;
  tick.setAttribute("class", `file${row.degraded ? " degraded" : ""}`);
  tick.setAttribute("aria-label", `File ${row.name}, ${health}`);
  tick.querySelector("title").textContent = `${row.name}\n${health}`;
}

function hover(name) {
  hovered = name;
  highlight(app);
}

/** Light up the holders of the hovered file and describe it in the side panel. */
function highlight(state) {
  const row = hovered && state.files?.files.find((f) => f.name === hovered);
  const holders = new Set(row ? row.holders.map((p) => p.id) : []);
  for (const mark of document.querySelectorAll("#ring-peers .peer")) {
    mark.classList.toggle("holder", holders.has(mark.dataset.id));
  }
  const panel = document.getElementById("ring-file");
  const bits = state.ring?.bits;
  const content = row
    ? [
        h("p", null, h("strong", null, row.name)),
        h("p", null, `Key ${short(row.key, bits)} · owner ${short(row.owner.id, bits)}`),
        h("p", null, `Holders: ${row.holders.map((p) => short(p.id, bits)).join(", ") || "none"}`),
        h("p", { class: row.degraded ? "warn" : "ok" },
          `${row.copies} of ${row.wanted} copies${row.degraded ? " — degraded" : ""}`),
      ]
    : [h("p", { class: "hint" }, "Hover or focus a file tick to see its holders.")];
  replaceIfChanged(panel, JSON.stringify(row || null), content);
}

function renderSelected(state, peer) {
  const bits = state.ring.bits;
  const targets = fingers && fingers.id === peer.id ? fingers.nodes : undefined;
  let fingerText = "Reading its finger table…";
  if (targets === null) fingerText = "Its finger table could not be read.";
  else if (targets) {
    const names = targets.map((id) => short(id, bits)).join(", ");
    fingerText = `Fingers point to ${targets.length} distinct peers: ${names}.`;
  }
  const files = peer.files ? `${peer.files.primary} primary, ${peer.files.replica} replica files` : "";
  replaceIfChanged(document.getElementById("ring-selected"), JSON.stringify([peer, targets]), [
    h("p", null, h("strong", null, short(peer.id, bits)), peer.reachable ? "" : " (not answering)"),
    h("p", null, `gRPC ${peer.address} · REST ${peer.api}`),
    files && h("p", null, files),
    h("p", null, fingerText),
    h("p", null, h("a", { href: `#/peer/${peer.id}` }, "Open its peer page")),
  ]);
}

export function render(state) {
  const { bits, peers } = state.ring;
  const peer = selectedPeer(state);
  sync(document.getElementById("ring-peers"),
    peers.map((p) => ({ peer: p, bits, isSelected: p.id === peer.id })),
    { key: (item) => item.peer.id, create: peerMark, fill: fillPeer });
  sync(document.getElementById("ring-ticks"),
    (state.files ? state.files.files : []).map((row) => ({ row, bits })),
    { key: (item) => item.row.name, create: fileTick, fill: fillTick });
  const targets = fingers && fingers.id === peer.id && fingers.nodes ? fingers.nodes : [];
  const at = new Map(peers.map((p) => [p.id, point(turn(p.id, bits), R)]));
  const [x1, y1] = at.get(peer.id);
  sync(document.getElementById("ring-chords"),
    targets.filter((id) => id !== peer.id && at.has(id)),
    { key: (id) => id, sig: (id) => `${peer.id}>${id}`,
      create: () => s("line", { class: "chord" }),
      fill: (line, id) => {
        const [x2, y2] = at.get(id);
        for (const [k, v] of Object.entries({ x1, y1, x2, y2 })) line.setAttribute(k, v.toFixed(2));
      } });
  renderSelected(state, peer);
  highlight(state);
}
