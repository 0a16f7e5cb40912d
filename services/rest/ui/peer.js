// The peer page: one peer's addresses, neighbours, finger table, files, storage and
// metrics, read from that peer's own API (#/peer/<id>; no ID: the peer serving the page).

import { baseOf, getJSON, getText, parseMetrics } from "./api.js";
import { bytes, h, pairs, replaceIfChanged, short, sync } from "./dom.js";

let detail = null; // what the chosen peer said last, or {id, error}

function chosen(state) {
  const id = state.arg || state.self.id;
  return state.ring.peers.find((p) => p.id === id) || { id, api: null, reachable: false };
}

export async function refresh(state) {
  const peer = chosen(state);
  if (!peer.api) {
    detail = { id: peer.id, error: "This peer is not in the ring (any more)." };
    return;
  }
  const base = baseOf(peer, state.self);
  const paths = ["/status", "/get_successor", "/get_predecessor", "/finger_table", "/show_files"];
  try {
    const [status, successor, predecessor, table, listing, metrics] = await Promise.all([
      ...paths.map((path) => getJSON(base, path)),
      getText(base, "/metrics"),
    ]);
    detail = { id: peer.id, status, successor, predecessor, table, listing, metrics: parseMetrics(metrics) };
  } catch (error) {
    detail = { id: peer.id, error: `Peer ${peer.address || peer.id} does not answer: ${error.message}` };
  }
}

const ref = (node, bits) =>
  node ? h("a", { href: `#/peer/${node.id}` }, `${short(node.id, bits)} (${node.address})`) : "none";

function duration(seconds) {
  const s = Math.floor(seconds);
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.floor(s / 60)} min`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

/** Consecutive fingers pointing at the same node, as one row each. */
function fingerRuns(fingers) {
  const runs = [];
  for (const f of fingers) {
    const last = runs[runs.length - 1];
    if (last && last.node?.id === f.node?.id) last.to = f.index;
    else runs.push({ from: f.index, to: f.index, start: f.start, node: f.node });
  }
  return runs;
}

function renderPicker(state, id) {
  const bits = state.ring.bits;
  sync(document.getElementById("peer-picker"), state.ring.peers, {
    key: (p) => p.id,
    sig: (p) => JSON.stringify([p.reachable, p.id === id]),
    create: () => h("li", null, h("a")),
    fill: (li, p) => {
      const link = li.firstChild;
      link.setAttribute("href", `#/peer/${p.id}`);
      link.textContent = `${short(p.id, bits)}${p.reachable ? "" : " (down)"}`;
      if (p.id === id) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    },
  });
}

function renderFiles(state, listing) {
  const bits = state.ring.bits;
  const ring = new Map((state.files?.files || []).map((row) => [row.name, row]));
  const rows = listing.files.map((f) => ({ f, ringRow: ring.get(f.name) || null }));
  sync(document.getElementById("peer-files"), rows, {
    key: (row) => row.f.name,
    create: () => h("tr", { tabindex: 0 }),
    fill: (tr, { f, ringRow }) => {
      const holders = ringRow ? ringRow.holders.map((p) => short(p.id, bits)).join(", ") : "–";
      let health = "ok";
      if (f.damaged) health = "damaged here";
      else if (ringRow?.degraded) health = `degraded (${ringRow.copies} of ${ringRow.wanted})`;
      tr.replaceChildren(
        h("td", { class: "name" }, f.name),
        h("td", null, f.role),
        h("td", { class: "num" }, bytes(f.size)),
        h("td", { class: "num" }, String(f.version)),
        h("td", { class: "holders" }, holders),
        h("td", { class: health === "ok" ? "ok" : "warn" }, health),
      );
    },
  });
}

export function render(state) {
  const peer = chosen(state);
  const bits = state.ring.bits;
  renderPicker(state, peer.id);
  const self = peer.id === state.self.id ? " (serving this page)" : "";
  document.getElementById("peer-title").textContent = `Peer ${short(peer.id, bits)}${self}`;
  const error = document.getElementById("peer-error");
  const d = detail && detail.id === peer.id ? detail : null;
  error.hidden = !d?.error;
  error.textContent = d?.error || "";
  if (!d || d.error) return;
  const { status, successor, predecessor, table, listing, metrics } = d;
  pairs(document.getElementById("peer-addresses"), [
    ["ID", peer.id],
    ["gRPC", status.node.address],
    ["REST", status.node.api],
    ["Joined", status.joined ? "yes" : "no"],
    ["Up for", duration(status.uptime_s)],
    ["Copies kept (k)", String(status.replicas)],
    ["Version", status.version],
  ]);
  pairs(document.getElementById("peer-neighbours"), [
    ["Predecessor", ref(predecessor.predecessor, bits)],
    ["Successors", h("ol", null, successor.successors.map((n) => h("li", null, ref(n, bits))))],
  ]);
  const { used_bytes: used, quota_bytes: quota } = status.storage;
  replaceIfChanged(document.getElementById("peer-storage"), JSON.stringify(status.storage), [
    h("p", null, quota ? `${bytes(used)} of ${bytes(quota)} used` : `${bytes(used)} used, no quota`),
    quota && h("meter", { min: 0, max: quota, value: used, "aria-label": "Storage used" }),
  ]);
  const hops = metrics.get("chord_lookup_hops_count")
    ? (metrics.get("chord_lookup_hops_sum") / metrics.get("chord_lookup_hops_count")).toFixed(2)
    : "–";
  const count = (name) => String(metrics.get(name) ?? 0);
  pairs(document.getElementById("peer-metrics"), [
    ["Files", `${status.files.primary} primary, ${status.files.replica} replica`],
    ["Degraded (own range)", String(status.degraded)],
    ["RPCs served", count("chord_rpcs_total")],
    ["Lookups started", count("chord_lookups_total")],
    ["Mean hops", hops],
    ["Bytes in / out", `${bytes(metrics.get("chord_bytes_in_total") || 0)} / ${bytes(metrics.get("chord_bytes_out_total") || 0)}`],
    ["Active transfers", String(status.active_transfers)],
  ]);
  renderFiles(state, listing);
  sync(document.getElementById("peer-fingers"), fingerRuns(table.fingers), {
    key: (run) => String(run.from),
    create: () => h("tr"),
    fill: (tr, run) =>
      tr.replaceChildren(
        h("td", null, run.from === run.to ? String(run.from) : `${run.from}–${run.to}`),
        h("td", { class: "mono" }, short(run.start, bits)),
        h("td", null, ref(run.node, bits)),
      ),
  });
}
