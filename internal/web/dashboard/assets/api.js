// The dashboard's shared pieces: DOM helpers, messages to the user, and
// the /api/v1 client with the token from sessionStorage. Plain JavaScript,
// no dependencies; the scripts share one global scope, loaded in order.
"use strict";

const $ = (id) => document.getElementById(id);

// el makes an element: el("div", "cls", "text") or el("div", {attrs}, child...).
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
    e.append(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
  }
  return e;
}

let uid = 0;
const nextId = (p) => `${p}-${++uid}`;

function fmtDate(s) {
  if (!s) return "never";
  const d = new Date(s);
  return isNaN(d) ? String(s) : d.toLocaleString();
}

function fmtCost(c) {
  const n = Number(c) || 0;
  return "$" + (n >= 1 ? n.toFixed(2) : n >= 0.01 ? n.toFixed(3) : n.toFixed(4));
}

const fmtInt = (n) => (Number(n) || 0).toLocaleString("en-US");

// flash tells the user something went well (polite live region).
function flash(text) {
  const f = $("flash");
  f.textContent = text;
  clearTimeout(flash.t);
  flash.t = setTimeout(() => { f.textContent = ""; }, 6000);
}

// showError shows a failure (assertive live region).
function showError(text) {
  const e = $("error");
  e.textContent = text;
  e.hidden = !text;
  clearTimeout(showError.t);
  if (text) showError.t = setTimeout(() => { e.hidden = true; }, 10000);
}

// confirmButton makes a button that asks "Sure?" on the first press and
// acts on the second (no modal dialog).
function confirmButton(label, question, action, cls) {
  const b = el("button", { type: "button", class: cls || "" }, label);
  let armed = false;
  let timer = null;
  b.addEventListener("click", async () => {
    if (!armed) {
      armed = true;
      b.textContent = question;
      b.classList.add("armed");
      timer = setTimeout(() => { armed = false; b.textContent = label; b.classList.remove("armed"); }, 5000);
      return;
    }
    clearTimeout(timer);
    armed = false;
    b.disabled = true;
    try {
      await action();
    } finally {
      b.disabled = false;
      b.textContent = label;
      b.classList.remove("armed");
    }
  });
  return b;
}

// ---- API client ----
const TOKEN_KEY = "agenthost.token";

// APIError is a failed call: the status and the server's message.
class APIError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

const auth = {
  get token() { return sessionStorage.getItem(TOKEN_KEY) || ""; },
  set token(t) {
    if (t) sessionStorage.setItem(TOKEN_KEY, t);
    else sessionStorage.removeItem(TOKEN_KEY);
  },
  onSignedOut: () => {},
};

// api calls /api/v1 + path and returns the decoded JSON answer. A 401 signs
// the user out.
async function api(path, opts = {}) {
  const headers = { Authorization: "Bearer " + auth.token };
  let body = opts.body;
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch("api/v1" + path, { method: opts.method || "GET", headers, body, cache: "no-store", credentials: "omit" });
  } catch (e) {
    throw new APIError(0, "the server cannot be reached");
  }
  let data = null;
  try { data = await resp.json(); } catch (e) { /* not JSON */ }
  if (resp.status === 401 && !opts.noSignOut) {
    auth.token = "";
    auth.onSignedOut((data && data.error) || "your token was refused");
  }
  if (!resp.ok) throw new APIError(resp.status, (data && data.error) || `${resp.status} ${resp.statusText}`);
  return data || {};
}

// run awaits fn and shows its error, if any; it returns fn's value or null.
async function run(fn, what) {
  try {
    return await fn();
  } catch (e) {
    if (e.status !== 401) showError((what ? what + ": " : "") + e.message);
    return null;
  }
}
