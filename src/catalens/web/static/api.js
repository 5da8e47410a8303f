// Thin client for the catalens REST API: JSON calls, uploads with progress, the stored key.

const KEY = "catalens.key";

export function getKey() {
  return localStorage.getItem(KEY) || "";
}

export function setKey(value) {
  if (value) localStorage.setItem(KEY, value);
  else localStorage.removeItem(KEY);
}

function headers(extra = {}) {
  const h = { ...extra };
  const key = getKey();
  if (key) h.Authorization = `Bearer ${key}`;
  return h;
}

export class ApiError extends Error {
  constructor(status, body) {
    const err = (body && body.error) || {};
    super(err.message || `HTTP ${status}`);
    this.status = status;
    this.code = err.code || "error";
  }
}

async function handle(res) {
  const type = res.headers.get("content-type") || "";
  const body = type.includes("json") ? await res.json() : null;
  if (!res.ok) throw new ApiError(res.status, body);
  return body;
}

export async function get(path, params) {
  const qs = params ? "?" + new URLSearchParams(Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== "")) : "";
  return handle(await fetch(`/api/v1${path}${qs}`, { headers: headers() }));
}

export async function send(method, path, json) {
  return handle(await fetch(`/api/v1${path}`, {
    method,
    headers: headers({ "Content-Type": "application/json" }),
    body: json === undefined ? undefined : JSON.stringify(json),
  }));
}

export async function postForm(path, form) {
  return handle(await fetch(`/api/v1${path}`, { method: "POST", headers: headers(), body: form }));
}

// multipart POST with upload progress (fetch has no upload progress events)
export function upload(path, form, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `/api/v1${path}`);
    for (const [k, v] of Object.entries(headers())) xhr.setRequestHeader(k, v);
    xhr.upload.onprogress = (e) => e.lengthComputable && onProgress && onProgress(e.loaded / e.total);
    xhr.onload = () => {
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch { /* not JSON */ }
      if (xhr.status >= 200 && xhr.status < 300) resolve(body);
      else reject(new ApiError(xhr.status, body));
    };
    xhr.onerror = () => reject(new ApiError(0, { error: { message: "network error" } }));
    xhr.send(form);
  });
}

export const thumb = (sha, size = 256) => `/api/v1/images/${sha}/thumb?size=${size}`;
export const file = (sha) => `/api/v1/images/${sha}/file`;
