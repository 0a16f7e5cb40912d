// The files page: every file in the ring with its holders and health; upload with a
// progress bar, download links, delete (the API token is kept in sessionStorage).

import { downloadUrl, remove, token, upload } from "./api.js";
import { bytes, h, setText, short, sync } from "./dom.js";

let app = null;

export function init(state) {
  app = state;
  const field = document.getElementById("token");
  field.value = token.get();
  field.addEventListener("input", () => token.set(field.value));
  document.getElementById("upload-form").addEventListener("submit", submit);
}

export async function refresh() {} // the ring-wide file list is polled by the shell

async function submit(event) {
  event.preventDefault();
  const file = document.getElementById("upload-file").files[0];
  if (!file) return;
  const name = document.getElementById("upload-name").value.trim();
  const overwrite = document.getElementById("upload-overwrite").checked;
  const progress = document.getElementById("upload-progress");
  const button = event.target.querySelector("button");
  progress.value = 0;
  button.disabled = true;
  setText("upload-status", `Uploading ${name || file.name}…`);
  try {
    const stored = await upload({ file, name, overwrite }, (done) => {
      progress.value = Math.round(done * 100);
    });
    progress.value = 100;
    const holders = stored.holders.map((p) => short(p.id, app.ring?.bits)).join(", ");
    setText("upload-status", `Stored ${stored.name} (${bytes(stored.size)}) on ${holders}.`);
    event.target.reset();
    document.getElementById("token").value = token.get(); // reset() cleared the field
    app.refresh();
  } catch (error) {
    setText("upload-status", `Upload failed: ${error.message}`);
  } finally {
    button.disabled = false;
  }
}

async function del(name) {
  if (!window.confirm(`Delete ${name} from the ring?`)) return;
  try {
    await remove(name);
    setText("files-status", `Deleted ${name}.`);
    app.refresh();
  } catch (error) {
    setText("files-status", `Could not delete ${name}: ${error.message}`);
  }
}

function fileRow() {
  const row = h("tr", { tabindex: 0 });
  row.addEventListener("click", (event) => {
    if (event.target.matches("button.delete")) del(row.dataset.key);
  });
  return row;
}

export function render(state) {
  const bits = state.ring.bits;
  sync(document.getElementById("ring-files"), state.files ? state.files.files : [], {
    key: (row) => row.name,
    sig: (row) => JSON.stringify(row),
    create: fileRow,
    fill: (tr, row) => {
      tr.classList.toggle("degraded", row.degraded);
      tr.replaceChildren(
        h("td", { class: "name" },
          h("a", { href: downloadUrl(row.name), download: row.name.split("/").pop() }, row.name)),
        h("td", { class: "num" }, bytes(row.size)),
        h("td", { class: "num" }, String(row.version)),
        h("td", null, h("a", { href: `#/peer/${row.owner.id}` }, short(row.owner.id, bits))),
        h("td", { class: "holders" }, row.holders.map((p) => short(p.id, bits)).join(", ")),
        h("td", { class: row.degraded ? "warn" : "ok" },
          `${row.copies}/${row.wanted} ${row.degraded ? "degraded" : "ok"}`),
        h("td", null, h("button", { type: "button", class: "delete", "aria-label": `Delete ${row.name}` }, "Delete")),
      );
    },
  });
}
