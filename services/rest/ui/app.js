// The dashboard shell: hash routing, the polling loop (with backoff), the summary bar.
// Each page module exports refresh(state) (its extra requests) and render(state).

import { getJSON } from "./api.js";
import { setText } from "./dom.js";
import * as files from "./files.js";
import * as peer from "./peer.js";
import * as ring from "./ring.js";

const pages = { ring, peer, files };
const params = new URLSearchParams(location.search);
const INTERVAL_MS = Number(params.get("poll")) || 1500; // ?poll=ms for a faster view
const MAX_BACKOFF_MS = 15000;

const state = {
  page: "ring",
  arg: null, // the peer ID in #/peer/<id>
  ring: null, // GET /ring
  files: null, // GET /show_files?scope=ring
  self: null, // the peer serving this page (the walk starts there)
  refresh: () => poll(), // pages call this after a change they made
};

let timer = null;
let running = false;
let again = false;
let failures = 0;

function route(focus) {
  const [, page, arg] = location.hash.split("/");
  state.page = pages[page] ? page : "ring";
  state.arg = arg ? decodeURIComponent(arg) : null;
  for (const name of Object.keys(pages)) {
    document.getElementById(`page-${name}`).hidden = name !== state.page;
  }
  for (const link of document.querySelectorAll("nav a[data-page]")) {
    if (link.dataset.page === state.page) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  render();
  if (focus) document.getElementById(`${state.page}-title`).focus();
  poll();
}

function render() {
  if (!state.ring) return;
  const reachable = state.ring.peers.filter((p) => p.reachable).length;
  const down = state.ring.count - reachable;
  setText("peer-count", down ? `${reachable} (+${down} down)` : String(reachable));
  if (state.files) {
    setText("file-count", String(state.files.files.length));
    const degraded = setText("degraded-count", String(state.files.degraded));
    degraded.classList.toggle("warn", state.files.degraded > 0);
  }
  pages[state.page].render(state);
}

/** One round: the ring walk and file list, then the page's own requests. Never overlaps. */
async function poll() {
  clearTimeout(timer);
  if (running) {
    again = true;
    return;
  }
  running = true;
  let delay = INTERVAL_MS;
  try {
    const [walk, listing] = await Promise.all([
      getJSON("", "/ring"),
      getJSON("", "/show_files?scope=ring"),
    ]);
    state.ring = walk;
    state.files = listing;
    state.self = walk.peers[0];
    await pages[state.page].refresh(state);
    failures = 0;
    render();
    setText("live", `Live · updated ${new Date().toLocaleTimeString()}`).classList.remove("warn");
  } catch (error) {
    failures += 1;
    delay = Math.min(INTERVAL_MS * 2 ** failures, MAX_BACKOFF_MS);
    const text = `Not updating (${error.message}); retrying in ${Math.round(delay / 1000)} s`;
    setText("live", text).classList.add("warn");
  } finally {
    running = false;
  }
  if (again) {
    again = false;
    delay = 0;
  }
  timer = setTimeout(poll, delay);
}

for (const page of Object.values(pages)) page.init?.(state);
window.addEventListener("hashchange", () => route(true));
route(false);
