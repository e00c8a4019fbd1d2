// The session page: one agent session, driven through the capability API
// under this page's own path ("<page>/api/..."). Plain JavaScript, no
// dependencies; the Go side inlines util.js, render.js and app.js in that
// order into one script.
"use strict";

// ---- DOM helpers ----
const $ = (id) => document.getElementById(id);

// el makes an element: el("div", "cls", "text") or el("div", {class, ...attrs}, child...).
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  if (typeof attrs === "string") e.className = attrs;
  else if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? "" : v);
    }
  }
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    e.append(typeof c === "string" ? document.createTextNode(c) : c);
  }
  return e;
}

let uid = 0;
const nextId = (p) => `${p}-${++uid}`;

function fmtCost(c) {
  const n = Number(c) || 0;
  return "$" + (n >= 1 ? n.toFixed(2) : n >= 0.01 ? n.toFixed(3) : n.toFixed(4));
}

function fmtInt(n) { return (Number(n) || 0).toLocaleString("en-US"); }

function fmtSize(n) {
  if (n < 1024) return n + " B";
  if (n < 1024 * 1024) return (n / 1024).toFixed(1) + " KB";
  return (n / 1024 / 1024).toFixed(1) + " MB";
}

// ---- the capability API ----
// The page lives at .../a/{agentId}/session/{sessionId}?cap=...; its API is
// the same path plus /api/, so the page works behind any prefix.
const pagePath = location.pathname.replace(/\/+$/, "");
const apiBase = pagePath + "/api/";
const capability = new URLSearchParams(location.search).get("cap") || "";

// APIError is a failed call: the status and the server's message.
class APIError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// api calls the capability API and returns the decoded JSON answer.
async function api(path, opts = {}) {
  const headers = { "X-Session-Capability": capability };
  let body = opts.body;
  if (body !== undefined && !(body instanceof FormData)) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(apiBase + path, { method: opts.method || "GET", headers, body, cache: "no-store", credentials: "omit" });
  } catch (e) {
    throw new APIError(0, "the server cannot be reached");
  }
  let data = null;
  try { data = await resp.json(); } catch (e) { /* not JSON */ }
  if (!resp.ok) {
    throw new APIError(resp.status, (data && data.error) || `${resp.status} ${resp.statusText}`);
  }
  return data || {};
}

// EventStream reads the session's events (Server-Sent Events), numbered by
// the server. When the connection drops it reconnects with the last id it
// saw (?lastEventId=, which EventSource cannot send as a header on a new
// connection), so no event is lost; retries back off to 10 s.
class EventStream {
  constructor(handlers, onState) {
    this.handlers = handlers; // event type -> fn(data, id)
    this.onState = onState;   // fn("open" | "retrying" | "failed", detail)
    this.lastId = "";
    this.retry = 0;
    this.es = null;
    this.timer = null;
  }

  connect() {
    clearTimeout(this.timer);
    if (this.es) this.es.close();
    let url = apiBase + "events?cap=" + encodeURIComponent(capability);
    if (this.lastId) url += "&lastEventId=" + encodeURIComponent(this.lastId);
    const es = new EventSource(url);
    this.es = es;
    es.onopen = () => {
      this.retry = 0;
      this.onState("open");
    };
    es.onerror = () => {
      if (this.es !== es) return;
      es.close();
      this.es = null;
      this.retry = Math.min(this.retry + 1, 6);
      const wait = Math.min(250 * 2 ** this.retry, 10000);
      this.onState("retrying", wait);
      this.timer = setTimeout(() => this.connect(), wait);
    };
    for (const type of Object.keys(this.handlers)) {
      es.addEventListener(type, (ev) => {
        if (this.es !== es) return;
        if (ev.lastEventId) this.lastId = ev.lastEventId;
        let data = null;
        try { data = JSON.parse(ev.data); } catch (e) { return; }
        this.handlers[type](data, ev.lastEventId);
      });
    }
  }

  // reconnectNow retries at once (the browser came back online).
  reconnectNow() {
    if (!this.es) this.connect();
  }

  close() {
    clearTimeout(this.timer);
    if (this.es) this.es.close();
    this.es = null;
  }
}
