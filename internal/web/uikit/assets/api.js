// The pieces the dashboard and the agent page share: DOM helpers, messages
// to the user, the /api/v1 client with the token from sessionStorage (one
// key, so a tab signed in on one page is signed in on the other) and the
// sign-in form. Plain JavaScript, no dependencies, and no markup built
// from strings; the pages' scripts share one global scope, loaded after
// this one.
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
  const d = typeof s === "number" ? new Date(s * 1000) : new Date(s);
  return isNaN(d) ? String(s) : d.toLocaleString();
}

function fmtCost(c) {
  const n = Number(c) || 0;
  return "$" + (n >= 1 ? n.toFixed(2) : n >= 0.01 ? n.toFixed(3) : n.toFixed(4));
}

const fmtInt = (n) => (Number(n) || 0).toLocaleString("en-US");

function fmtSize(n) {
  n = Number(n) || 0;
  if (n < 1024) return n + " B";
  if (n < 1 << 20) return (n / 1024).toFixed(1) + " KB";
  return (n / (1 << 20)).toFixed(1) + " MB";
}

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
// API is /api/v1 of the server this script came from (it is served at
// /ui/kit/api.js), so the pages work under any path prefix.
const API = new URL("../../api/v1", document.currentScript.src).href;

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

// request calls /api/v1 + path with the token in the Authorization header
// and returns the Response; a 401 signs the user out.
async function request(path, opts = {}) {
  const headers = { Authorization: "Bearer " + auth.token };
  let body = opts.body;
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(API + path, { method: opts.method || "GET", headers, body, cache: "no-store", credentials: "omit", referrerPolicy: "no-referrer" });
  } catch (e) {
    throw new APIError(0, "the server cannot be reached");
  }
  if (resp.ok) return resp;
  let data = null;
  try { data = await resp.json(); } catch (e) { /* not JSON */ }
  if (resp.status === 401 && !opts.noSignOut) {
    auth.token = "";
    auth.onSignedOut((data && data.error) || "your token was refused");
  }
  throw new APIError(resp.status, (data && data.error) || `${resp.status} ${resp.statusText}`);
}

// api calls /api/v1 + path and returns the decoded JSON answer.
async function api(path, opts = {}) {
  const resp = await request(path, opts);
  try { return (await resp.json()) || {}; } catch (e) { return {}; }
}

// download fetches path (with the token in a header, never in the URL)
// and saves it as name: the browser gets the bytes as a Blob of type
// application/octet-stream, so nothing of it is ever rendered.
async function download(path, name) {
  const resp = await request(path);
  const blob = new Blob([await resp.arrayBuffer()], { type: "application/octet-stream" });
  const url = URL.createObjectURL(blob);
  const a = el("a", { href: url, download: name, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
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

// onSignIn makes the sign-in form (#signin-form, #signin-token) keep the
// token typed only if the server takes it (a call to /agents), say why
// not otherwise, and then run signedIn.
function onSignIn(signedIn) {
  $("signin-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const token = $("signin-token").value.trim();
    if (!token) return;
    auth.token = token;
    try {
      await api("/agents", { noSignOut: true });
    } catch (err) {
      auth.token = "";
      showError(err.status === 401 ? "That token was refused: " + err.message : "Sign-in failed: " + err.message);
      $("signin-token").select();
      return;
    }
    $("signin-token").value = "";
    showError("");
    flash("Signed in");
    await signedIn();
  });
}
