// ---- the page: state, events, composer ----

const state = {
  busy: false,
  loaded: false,  // the history is in
  backlog: [],    // events that came before the history
  agentStatus: "",
  // The organization lets this page answer permission requests.
  sessionPermissions: true,
};

function setBusy(on) {
  state.busy = !!on;
  $("busy").hidden = !state.busy;
  $("abort").hidden = !state.busy;
  log.setAttribute("aria-busy", state.busy || !state.loaded ? "true" : "false");
  if (!state.busy) {
    endStream();
    log.querySelectorAll(".msg.user.queued").forEach((b) => b.classList.remove("queued"));
  }
}

function setConn(text, cls) {
  const c = $("conn");
  c.textContent = text;
  c.className = "pill " + (cls || "");
}

function setTitle(t) {
  const title = t || "Agent session";
  $("title").textContent = title;
  document.title = title;
}

const replyPermission = (id, reply, message) =>
  api("permissions/" + encodeURIComponent(id), { method: "POST", body: message && reply === "reject" ? { reply, message } : { reply } });

const replyQuestion = (id, answers) =>
  api("questions/" + encodeURIComponent(id), { method: "POST", body: { answers } });

function addPermission(p) {
  showPending("permission", p, () => permissionCard(p, replyPermission, !state.sessionPermissions));
}

function addQuestion(q) {
  showPending("question", q, () => questionCard(q, replyQuestion));
}

// ---- events ----
// Every handler is safe to run twice for the same event: messages are
// replaced by id, cards are keyed by id.
const handlers = {
  status(d) {
    if (d.agentStatus) state.agentStatus = d.agentStatus;
    setBusy(d.busy);
    if (!d.busy) {
      if (d.result === "aborted" || d.result === "interrupted") note("Stopped.");
      else if (d.result === "rejected") note("The agent stopped: an action was rejected.");
      else if (d.error) note("The turn failed: " + d.error, "error");
      refreshUsage();
    }
  },
  session(d) {
    if ("title" in d) setTitle(d.title);
  },
  message(d) {
    const m = d.message || d;
    if (m.info && m.info.role === "assistant") endStream();
    if (m.info && m.info.role === "user") dropQueued(m);
    upsertMessage(m);
  },
  "message.delta"(d) {
    appendDelta(d.text || d.delta || "");
  },
  permission(d) {
    const p = d.permission || d;
    if (!p || !p.id) return;
    if (!d.state || d.state === "pending") addPermission(p);
    else dropPending("permission", p.id);
  },
  question(d) {
    const q = d.question || d;
    if (!q || !q.id) return;
    if (!d.state || d.state === "pending") addQuestion(q);
    else dropPending("question", q.id);
  },
};

// Events wait until the history is in, then run in order.
const queued = {};
for (const [type, fn] of Object.entries(handlers)) {
  queued[type] = (data, id) => {
    if (!state.loaded) state.backlog.push([fn, data, id]);
    else fn(data, id);
  };
}

// dropQueued removes the optimistic bubble of a message the server now shows.
function dropQueued(m) {
  const text = (m.info.parts || []).filter((p) => p.type === "text").map((p) => p.text).join("\n");
  for (const b of log.querySelectorAll(".msg.user.local")) {
    if (b.dataset.id === m.id || b.dataset.text === text) { b.remove(); return; }
  }
}

const stream = new EventStream(queued, (st, wait) => {
  if (st === "open") {
    setConn("Live", "ok");
    if (!state.loaded) loadAll();
    else refreshPending();
  } else if (st === "retrying") {
    setConn(`Reconnecting in ${Math.round(wait / 100) / 10} s…`, "bad");
    probe();
  }
});

// probe asks why the event stream failed: without access there is no
// point in retrying.
async function probe() {
  try {
    await api("status");
  } catch (e) {
    if (e.status === 401 || e.status === 404) {
      stream.close();
      setConn("No access", "bad");
      loadFailed(e.message);
      showAlert("This session link does not work (" + e.message + "). Ask for a new one.");
    } else if (e.status) {
      showAlert(e.message);
    }
  }
}

// ---- loading ----
// Until the history is in, the log says "Loading…" (never "No messages
// yet", which would be false for a session with history); then the
// history, or the empty text; on failure, why.
function loaded() {
  $("loading").hidden = true;
  $("empty").hidden = !!log.querySelector(".msg, .note:not(#loading)");
  log.setAttribute("aria-busy", state.busy ? "true" : "false");
}

function loadFailed(message) {
  const l = $("loading");
  l.hidden = false;
  l.className = "note error";
  l.textContent = "Could not load the messages: " + message;
}

async function loadAll() {
  try {
    const [hist, perms, qs, st] = await Promise.all([
      api("messages"), api("permissions"), api("questions"), api("status").catch(() => null),
    ]);
    if (st) {
      setTitle(st.title);
      setBusy(st.busy);
      state.agentStatus = st.status || "";
      state.sessionPermissions = st.sessionPermissions !== false;
    }
    for (const m of hist.messages || []) upsertMessage(m);
    if (hist.usage) renderUsage({ totalCost: hist.usage.cost, totalTokens: hist.usage.tokens });
    for (const p of perms.permissions || []) addPermission(p);
    for (const q of qs.questions || []) addQuestion(q);
    state.loaded = true;
    loaded();
    const backlog = state.backlog;
    state.backlog = [];
    for (const [fn, data, id] of backlog) fn(data, id);
    scrollDown(true);
  } catch (e) {
    showAlert("Could not load the session: " + e.message);
    loadFailed(e.message);
    if (e.status === 401 || e.status === 404) {
      setConn("No access", "bad");
      stream.close();
      return;
    }
    setTimeout(loadAll, 2000);
  }
}

// refreshPending re-reads what may have changed while disconnected and is
// not an event the server replays (status of the agent, pending lists).
async function refreshPending() {
  try {
    const [perms, qs, st] = await Promise.all([api("permissions"), api("questions"), api("status").catch(() => null)]);
    const pIDs = new Set((perms.permissions || []).map((p) => p.id));
    const qIDs = new Set((qs.questions || []).map((q) => q.id));
    $("pending").querySelectorAll(".card.permission").forEach((c) => { if (!pIDs.has(c.dataset.id)) c.remove(); });
    $("pending").querySelectorAll(".card.question").forEach((c) => { if (!qIDs.has(c.dataset.id)) c.remove(); });
    for (const p of perms.permissions || []) addPermission(p);
    for (const q of qs.questions || []) addQuestion(q);
    if (st) {
      setBusy(st.busy);
      state.sessionPermissions = st.sessionPermissions !== false;
    }
  } catch (e) { /* the next reconnect tries again */ }
}

async function refreshUsage() {
  try {
    renderUsage(await api("usage"));
  } catch (e) { /* usage is informative only */ }
}

// ---- composer ----
async function sendMessage(text) {
  $("empty").hidden = true;
  const bubble = el("div", { class: "msg user local queued", "data-text": text }, el("span", "visually-hidden", "You: "), text);
  log.append(bubble);
  scrollDown(true);
  const wasBusy = state.busy;
  setBusy(true);
  try {
    const r = await api("messages", { method: "POST", body: { message: text } });
    if (r.messageId && bubble.isConnected) bubble.dataset.id = r.messageId;
  } catch (e) {
    if (!wasBusy) setBusy(false);
    bubble.remove();
    $("prompt").value = text;
    showAlert("Not sent: " + e.message);
  }
}

$("composer").addEventListener("submit", (e) => {
  e.preventDefault();
  const text = $("prompt").value.trim();
  if (!text) return;
  $("prompt").value = "";
  sendMessage(text);
});

$("prompt").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    $("composer").requestSubmit();
  }
});

$("abort").addEventListener("click", async () => {
  $("abort").disabled = true;
  try {
    await api("abort", { method: "POST", body: {} });
  } catch (e) {
    showAlert("Stop failed: " + e.message);
  } finally {
    $("abort").disabled = false;
  }
});

$("file").addEventListener("change", async (e) => {
  const files = [...e.target.files];
  e.target.value = "";
  for (const f of files) {
    const item = el("li", null, `Uploading ${f.name}…`);
    $("uploads").append(item);
    const form = new FormData();
    form.append("file", f, f.name);
    try {
      const r = await api("files", { method: "POST", body: form });
      item.textContent = `${r.name || f.name} → ${r.path} (${fmtSize(r.size || f.size)})`;
      note(`Uploaded ${r.name || f.name} to ${r.path}`);
    } catch (err) {
      item.remove();
      showAlert(`Upload of ${f.name} failed: ${err.message}`);
    }
  }
});

window.addEventListener("online", () => stream.reconnectNow());

// ---- start ----
if (!capability) {
  setConn("No access", "bad");
  loadFailed("this page needs its capability");
  showAlert("This page needs its capability: open the session URL with ?cap=… as the platform gives it.");
} else {
  stream.connect();
  refreshUsage();
}
