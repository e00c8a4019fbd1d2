// The /docs page: talks to the hosted agent over /ws and renders the API
// reference from /openapi.json. Plain JavaScript, no dependencies.
"use strict";

const $ = (id) => document.getElementById(id);
const el = (tag, cls, text) => {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
};

// ---- layout: on a phone the conversation fills the screen under the
// header (style.css), whose height depends on the agent's name and address.
const header = document.querySelector("header");
new ResizeObserver(() => document.documentElement.style.setProperty("--header-h", header.offsetHeight + "px")).observe(header);

// ---- tabs ----
function showTab(name) {
  document.querySelectorAll(".tab").forEach((t) => {
    const on = t.dataset.tab === name;
    t.classList.toggle("active", on);
    if (on) t.setAttribute("aria-current", "page"); else t.removeAttribute("aria-current");
  });
  $("chat").hidden = name !== "chat";
  $("reference").hidden = name !== "reference";
}
document.querySelectorAll(".tab").forEach((t) => t.addEventListener("click", () => showTab(t.dataset.tab)));
if (location.hash === "#reference") showTab("reference");

// ---- /info ----
let info = null;
async function loadInfo() {
  try {
    info = await (await fetch("/info")).json();
  } catch (e) {
    return;
  }
  document.title = info.name + " · agenthost";
  $("agent-name").textContent = info.name;
  $("agent-model").textContent = info.model;
  $("agent-address").textContent = info.address;
  $("agent-summary").textContent = info.summary || "No summary configured.";
  $("info-json").textContent = JSON.stringify(info, null, 2);
  const ex = $("examples");
  ex.replaceChildren();
  (info.examples.length ? info.examples : ["Hello!", "use add on 2 and 3"]).forEach((p) => {
    const li = el("li");
    const b = el("button", "", p);
    b.type = "button";
    b.title = "Put this in the prompt box";
    b.addEventListener("click", () => { $("prompt").value = p; $("prompt").focus(); });
    li.append(b);
    ex.append(li);
  });
  $("tools").replaceChildren(...(info.tools.length ? info.tools : ["(none)"]).map((t) => el("li", "", t)));
  const f = info.accepted_inputs.files;
  $("accepts").textContent = "text" + (info.accepted_inputs.images ? ", images" : "") +
    `, files up to ${f.max_file_size_mb} MB, ${f.max_files_per_request} per request`;
}

// ---- chat over /ws ----
const state = {
  ws: null,
  sessionId: localStorage.getItem("agenthost.session") || "",
  lastId: "",
  running: false,
  current: null, // the agent bubble being streamed
  tools: {},     // tool_id -> card
  attachments: [],
  retry: 0,
};

function setConn(text, cls) {
  const s = $("conn-state");
  s.textContent = text;
  s.className = "pill " + (cls || "");
}

function setRunning(on) {
  state.running = on;
  $("stop").hidden = !on;
  $("send").disabled = on;
}

function scroll() { const m = $("messages"); m.scrollTop = m.scrollHeight; }

function addMessage(kind, text) {
  const m = el("div", "msg " + kind, text);
  $("messages").append(m);
  scroll();
  return m;
}

function toolCard(id, name, args) {
  const card = el("div", "tool");
  card.append(el("span", "name", name), el("span", "state", "running…"));
  const pre = el("pre", "", typeof args === "string" ? args : JSON.stringify(args, null, 1));
  card.append(pre);
  $("messages").append(card);
  state.tools[id] = card;
  scroll();
  return card;
}

function toolResult(id, name, status, result, ms) {
  const card = state.tools[id] || toolCard(id, name, "");
  const st = card.querySelector(".state");
  st.textContent = status + (ms !== undefined ? ` in ${ms} ms` : "");
  st.className = "state " + status;
  const out = el("pre", "", result);
  card.append(out);
  state.current = null;
  scroll();
}

function renderHistory(items) {
  $("messages").replaceChildren();
  state.tools = {};
  for (const it of items || []) {
    if (it.type === "user") addMessage("user", it.content + (it.images ? `\n[${it.images} image(s)]` : ""));
    else if (it.type === "agent") addMessage("agent", it.content);
    else if (it.type === "tool_call") toolCard(it.tool_id, it.name, it.args);
    else if (it.type === "tool_result") toolResult(it.tool_id, it.name, it.status, it.content);
  }
}

function send(frame) {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify(frame));
}

function connect() {
  const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws";
  const ws = new WebSocket(url);
  state.ws = ws;
  setConn("connecting…");
  ws.onopen = () => {
    state.retry = 0;
    setConn("connected", "ok");
    const frame = { type: "CONNECT" };
    if (state.sessionId) frame.session_id = state.sessionId;
    if (state.sessionId && state.lastId) frame.last_msg_id = state.lastId;
    send(frame);
  };
  ws.onmessage = (ev) => handle(JSON.parse(ev.data));
  ws.onclose = () => {
    setConn("disconnected, retrying…", "bad");
    state.retry = Math.min(state.retry + 1, 5);
    setTimeout(connect, 500 * 2 ** state.retry);
  };
}

function handle(m) {
  if (m.id) state.lastId = m.id;
  switch (m.type) {
    case "CONNECTED":
      state.sessionId = m.session_id;
      localStorage.setItem("agenthost.session", m.session_id);
      $("session-label").textContent = "session " + m.session_id;
      if (m.chat_items && !state.lastId) renderHistory(m.chat_items);
      setRunning(m.status === "running");
      break;
    case "STREAM":
      if (!state.current) state.current = addMessage("agent streaming", "");
      state.current.textContent += m.chunk;
      scroll();
      break;
    case "tool_call":
      if (state.current) { state.current.classList.remove("streaming"); state.current = null; }
      toolCard(m.tool_id, m.name, m.args);
      break;
    case "tool_result":
      toolResult(m.tool_id, m.name, m.status, m.result, m.timing_ms);
      break;
    case "approval_needed":
      approvalCard(m);
      break;
    case "ask_user":
      askCard(m);
      break;
    case "session_sync":
      break;
    case "OUTPUT":
      if (state.current) {
        state.current.classList.remove("streaming");
        if (!state.current.textContent) state.current.textContent = m.result;
      } else if (m.result) addMessage("agent", m.result);
      if (m.status === "interrupted") addMessage("error", "Stopped.");
      state.current = null;
      state.sessionId = m.session_id;
      localStorage.setItem("agenthost.session", m.session_id);
      $("session-label").textContent = "session " + m.session_id;
      setRunning(false);
      break;
    case "ERROR":
      addMessage("error", m.message + (m.code ? ` (${m.code})` : ""));
      if (m.code !== "not_waiting") setRunning(false);
      state.current = null;
      break;
    case "PING":
      send({ type: "PONG" });
      break;
  }
}

// promptCard shows a question the agent waits on: title, details, extra
// controls, and buttons; answering disables the whole card.
function promptCard(kind, title, desc, detail, controls, buttons) {
  const card = el("div", "prompt-card " + kind);
  card.setAttribute("role", "group");
  const h = el("strong", "", title);
  h.id = "pc" + Math.random().toString(36).slice(2);
  card.setAttribute("aria-labelledby", h.id);
  card.append(h);
  if (desc) card.append(el("div", "muted", desc));
  if (detail) card.append(el("pre", "", detail));
  controls.forEach((c) => card.append(c));
  const row = el("div", "buttons");
  for (const [label, fn] of buttons) {
    const b = el("button", "", label);
    b.type = "button";
    b.addEventListener("click", () => {
      if (fn() === false) return;
      card.querySelectorAll("button, input").forEach((x) => (x.disabled = true));
      b.classList.add("chosen");
    });
    row.append(b);
  }
  card.append(row);
  $("messages").append(card);
  scroll();
  row.querySelector("button").focus({ preventScroll: true });
  return card;
}

function approvalCard(m) {
  const why = el("input");
  why.type = "text";
  why.placeholder = "Reason (optional, shown to the agent)";
  why.setAttribute("aria-label", "Reason for denying (optional)");
  const row = el("div", "buttons");
  row.append(why);
  promptCard("approval", `Allow ${m.tool}?`, m.description || "", JSON.stringify(m.arguments, null, 1), [row], [
    ["Allow once", () => send({ type: "APPROVAL_RESPONSE", approved: true, scope: "once" })],
    ["Allow for this session", () => send({ type: "APPROVAL_RESPONSE", approved: true, scope: "session" })],
    ["Deny", () => send({ type: "APPROVAL_RESPONSE", approved: false, feedback: why.value.trim() })],
  ]);
}

function askCard(m) {
  const opts = m.options || [];
  const other = el("input");
  other.type = "text";
  other.placeholder = "Or type an answer";
  other.setAttribute("aria-label", "Your own answer");
  if (m.multi_select && opts.length) {
    const fs = el("fieldset");
    fs.append(el("legend", "visually-hidden", "Choose one or more"));
    for (const o of opts) {
      const lab = el("label");
      const cb = el("input");
      cb.type = "checkbox";
      cb.value = o;
      lab.append(cb, " " + o);
      fs.append(lab);
    }
    promptCard("ask", m.text, "", "", [fs, other], [["Submit", () => {
      const picked = [...fs.querySelectorAll("input:checked")].map((x) => x.value);
      if (other.value.trim()) picked.push(other.value.trim());
      if (!picked.length) return false;
      send({ type: "ASK_USER_RESPONSE", answer: picked });
    }]]);
    return;
  }
  const buttons = opts.map((o) => [o, () => send({ type: "ASK_USER_RESPONSE", answer: o })]);
  buttons.push(["Send answer", () => {
    if (!other.value.trim()) { other.focus(); return false; }
    send({ type: "ASK_USER_RESPONSE", answer: other.value.trim() });
  }]);
  promptCard("ask", m.text, "", "", [other], buttons);
}

// ---- composer ----
function readAsDataURL(file) {
  return new Promise((res, rej) => {
    const r = new FileReader();
    r.onload = () => res(r.result);
    r.onerror = () => rej(r.error);
    r.readAsDataURL(file);
  });
}

$("file-input").addEventListener("change", async (e) => {
  for (const f of e.target.files) {
    state.attachments.push({ name: f.name, image: f.type.startsWith("image/"), data: await readAsDataURL(f) });
  }
  e.target.value = "";
  renderAttachments();
});

function renderAttachments() {
  const box = $("attachments");
  box.replaceChildren();
  state.attachments.forEach((a, i) => {
    const chip = el("li", "chip", (a.image ? "🖼 " : "📄 ") + a.name);
    const x = el("button");
    x.type = "button";
    x.title = "Remove";
    const sign = el("span", "", "×");
    sign.setAttribute("aria-hidden", "true");
    x.append(sign, el("span", "visually-hidden", "Remove " + a.name));
    x.addEventListener("click", () => { state.attachments.splice(i, 1); renderAttachments(); });
    chip.append(x);
    box.append(chip);
  });
}

$("composer").addEventListener("submit", (e) => {
  e.preventDefault();
  const prompt = $("prompt").value.trim();
  if (!prompt || state.running) return;
  const frame = { type: "INPUT", prompt };
  const images = state.attachments.filter((a) => a.image).map((a) => a.data);
  const files = state.attachments.filter((a) => !a.image).map((a) => ({ name: a.name, data: a.data }));
  if (images.length) frame.images = images;
  if (files.length) frame.files = files;
  const names = state.attachments.map((a) => a.name);
  addMessage("user", prompt + (names.length ? "\n[" + names.join(", ") + "]" : ""));
  state.attachments = [];
  renderAttachments();
  $("prompt").value = "";
  state.current = null;
  setRunning(true);
  send(frame);
});

$("prompt").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); $("composer").requestSubmit(); }
});
$("stop").addEventListener("click", () => send({ type: "INTERRUPT" }));
$("new-chat").addEventListener("click", () => {
  localStorage.removeItem("agenthost.session");
  state.sessionId = "";
  state.lastId = "";
  $("messages").replaceChildren();
  $("session-label").textContent = "";
  send({ type: "CONNECT" });
});

// ---- API reference from /openapi.json ----
// prose renders text with `code` spans, safely (no HTML from the spec).
function prose(tag, cls, text) {
  const e = el(tag, cls);
  text.split("`").forEach((part, i) => e.append(i % 2 ? el("code", "", part) : document.createTextNode(part)));
  return e;
}

function schemaTable(schema, spec) {
  schema = resolve(schema, spec);
  if (!schema || !schema.properties) return null;
  const t = el("table");
  const head = el("tr");
  head.append(el("th", "", "field"), el("th", "", "type"), el("th", "", "description"));
  t.append(head);
  const req = new Set(schema.required || []);
  for (const [name, p0] of Object.entries(schema.properties)) {
    const p = resolve(p0, spec);
    const tr = el("tr");
    tr.append(el("td", "mono", name + (req.has(name) ? " *" : "")), el("td", "mono", typeOf(p0, spec)), prose("td", "", p.description || ""));
    t.append(tr);
  }
  return t;
}

function resolve(s, spec) {
  while (s && s.$ref) s = s.$ref.replace("#/", "").split("/").reduce((o, k) => o && o[k], spec);
  return s;
}

function typeOf(s, spec) {
  if (s.$ref) return s.$ref.split("/").pop();
  if (s.type === "array") return typeOf(s.items || {}, spec) + "[]";
  if (s.oneOf) return s.oneOf.map((x) => typeOf(x, spec)).join(" | ");
  if (s.enum) return s.enum.map((v) => JSON.stringify(v)).join(" | ");
  return Array.isArray(s.type) ? s.type.join(" | ") : s.type || "any";
}

async function loadReference() {
  let spec;
  try {
    spec = await (await fetch("/openapi.json")).json();
  } catch (e) {
    $("endpoints").textContent = "Could not load /openapi.json.";
    return;
  }
  const box = $("endpoints");
  for (const [path, ops] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      const card = el("div", "endpoint");
      const h = el("h3");
      h.append(el("span", "method " + method, method.toUpperCase()), el("span", "mono", " " + path));
      card.append(h);
      if (op.summary) card.append(el("div", "", op.summary));
      if (op.description) card.append(prose("p", "muted", op.description));
      const body = op.requestBody && op.requestBody.content && op.requestBody.content["application/json"];
      if (body) {
        card.append(el("strong", "", "Request body"));
        const t = schemaTable(body.schema, spec);
        if (t) card.append(t);
      }
      const rt = el("table");
      for (const [code, r] of Object.entries(op.responses || {})) {
        const tr = el("tr");
        tr.append(el("td", "mono", code), el("td", "", r.description || ""));
        rt.append(tr);
      }
      card.append(el("strong", "", "Responses"), rt);
      box.append(card);
    }
  }
  const frames = spec["x-websocket"] || {};
  const fbox = $("frames");
  for (const dir of ["client_to_server", "server_to_client"]) {
    fbox.append(el("h3", "", dir === "client_to_server" ? "Client → server" : "Server → client"));
    for (const [name, schema] of Object.entries(frames[dir] || {})) {
      const card = el("div", "endpoint");
      card.append(el("h3", "mono", name));
      const s = resolve(schema, spec);
      if (s.description) card.append(prose("p", "muted", s.description));
      const t = schemaTable(s, spec);
      if (t) card.append(t);
      fbox.append(card);
    }
  }
}

loadInfo();
loadReference();
connect();
