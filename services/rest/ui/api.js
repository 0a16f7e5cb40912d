// The REST API as the dashboard uses it (docs/rest-api.md). The page's own peer is
// reached with relative URLs; another peer through its advertised REST address.

const TIMEOUT_MS = 5000;
const TOKEN_KEY = "chord-api-token";

export class ApiError extends Error {
  constructor(status, body) {
    super(body && body.detail ? body.detail : `HTTP ${status}`);
    this.status = status;
    this.code = body && body.error;
  }
}

/** '' for the peer serving this page, else http://<its REST address>. */
export function baseOf(peer, self) {
  return !peer || (self && peer.id === self.id) ? "" : `http://${peer.api}`;
}

async function get(base, path) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), TIMEOUT_MS);
  try {
    const response = await fetch(base + path, { signal: controller.signal, cache: "no-store" });
    if (!response.ok) throw new ApiError(response.status, await response.json().catch(() => null));
    return response;
  } finally {
    clearTimeout(timer);
  }
}

export const getJSON = async (base, path) => (await get(base, path)).json();
export const getText = async (base, path) => (await get(base, path)).text();

export const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY) || "",
  set: (value) =>
    value ? sessionStorage.setItem(TOKEN_KEY, value) : sessionStorage.removeItem(TOKEN_KEY),
};

function authHeaders() {
  const value = token.get();
  return value ? { Authorization: `Bearer ${value}` } : {};
}

export const downloadUrl = (name) => `/download_file?name=${encodeURIComponent(name)}`;

/** POST /upload_file with XMLHttpRequest, for its upload progress events. */
export function upload({ file, name, overwrite }, onProgress) {
  const form = new FormData(); // text fields first: the API wants them before the file
  if (name) form.append("name", name);
  if (overwrite) form.append("overwrite", "true");
  form.append("file", file);
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/upload_file");
    for (const [header, value] of Object.entries(authHeaders())) xhr.setRequestHeader(header, value);
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    });
    xhr.addEventListener("load", () => {
      let body = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        /* not JSON: reported by status below */
      }
      if (xhr.status === 201) resolve(body);
      else reject(new ApiError(xhr.status, body));
    });
    xhr.addEventListener("error", () => reject(new Error("the peer did not answer")));
    xhr.send(form);
  });
}

export async function remove(name) {
  const response = await fetch(`/delete_file?name=${encodeURIComponent(name)}`, {
    method: "DELETE",
    headers: authHeaders(),
  });
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

/** Sum each metric over its labels from the Prometheus text format. */
export function parseMetrics(text) {
  const sums = new Map();
  for (const line of text.split("\n")) {
    const match = /^([A-Za-z_:][\w:]*)(?:\{[^}]*\})?\s+(\S+)/.exec(line);
    if (match) sums.set(match[1], (sums.get(match[1]) || 0) + Number(match[2]));
  }
  return sums;
}
