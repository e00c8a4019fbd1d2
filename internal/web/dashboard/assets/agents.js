// ---- Agents: list with live status, create, start/stop/restart/delete,
// sessions with their pages ----

const agents = {
  cards: new Map(),   // agentId -> card (with .update(agent))
  scopes: [],         // for names and the create form
  timer: null,
  polling: false,
};

const STATUS_CLASS = { RUNNING: "ok", PROVISIONING: "warn", STOPPED: "muted", ERROR: "bad" };

function scopeName(id) {
  const s = agents.scopes.find((x) => x.id === id);
  return s ? s.name : "";
}

// agentCard builds one agent's card; update(agent) patches it in place so
// polling never moves the keyboard focus.
function agentCard(id) {
  const hid = nextId("agent");
  const status = el("span", "pill");
  const busy = el("span", "pill warn busy-pill", "busy");
  const name = el("h2", { id: hid, tabindex: "-1" });
  const meta = el("p", "muted small");
  const err = el("p", "error-text");
  const sessions = el("ul", "sessions");
  const sessionsHead = el("h3", "small", "Sessions");
  const act = (label, path, doneText) => el("button", { type: "button", onclick: async (e) => {
    const b = e.currentTarget;
    b.disabled = true;
    const label0 = b.textContent;
    b.textContent = label + "…";
    const r = await run(() => api(`/agents/${encodeURIComponent(id)}/${path}`, { method: "POST" }), label);
    b.disabled = false;
    b.textContent = label0;
    if (r) flash(`${card.agent.name}: ${doneText}`);
    refreshAgents();
  } }, label);
  const start = act("Start", "start", "started");
  const stop = act("Stop", "stop", "stopped");
  const restart = act("Restart", "restart", "restarted");
  const del = confirmButton("Delete", "Really delete?", async () => {
    const r = await run(() => api(`/agents/${encodeURIComponent(id)}`, { method: "DELETE" }), "Delete");
    if (r) {
      flash(`Agent ${card.agent.name} deleted`);
      card.remove();
      agents.cards.delete(id);
      refreshAgents();
    }
  }, "danger");
  const msgInput = el("input", { type: "text", "aria-label": "First message of a new session", placeholder: "Message to start a new session" });
  const newSession = el("form", { class: "inline-form new-session" }, msgInput, el("button", { type: "submit" }, "Start session"));
  newSession.addEventListener("submit", async (e) => {
    e.preventDefault();
    const text = msgInput.value.trim();
    if (!text) { msgInput.focus(); return; }
    const r = await run(() => api(`/agents/${encodeURIComponent(id)}/messages`, { method: "POST", body: { message: text } }), "Send");
    if (r) {
      msgInput.value = "";
      flash(`Session ${r.sessionId} started`);
      pollAgent(id);
    }
  });
  const page = el("a", { class: "agent-page", href: "/a/" + encodeURIComponent(id) }, "Open agent page");
  const card = el("article", { class: "card agent", "data-id": id, "aria-labelledby": hid },
    el("div", "head-row", name, status, busy, page),
    meta, err,
    el("div", "actions", start, stop, restart, del),
    sessionsHead, sessions, newSession);
  let lastSessions = "";
  card.update = (a) => {
    card.agent = Object.assign(card.agent || {}, a);
    a = card.agent;
    name.textContent = a.name;
    status.textContent = a.status;
    status.className = "pill " + (STATUS_CLASS[a.status] || "");
    busy.hidden = !a.busy || a.status !== "RUNNING";
    const bits = [a.model || "default model"];
    if (a.scopeId) bits.push("scope " + (scopeName(a.scopeId) || a.scopeId));
    bits.push("created " + fmtDate(a.createdAt));
    meta.textContent = bits.join(" · ");
    err.textContent = a.errorMsg || "";
    err.hidden = !a.errorMsg;
    start.hidden = a.status !== "STOPPED";
    stop.hidden = a.status !== "RUNNING";
    restart.hidden = a.status !== "RUNNING" && a.status !== "STOPPED";
    newSession.hidden = a.status !== "RUNNING";
    const list = a.sessions || [];
    const key = JSON.stringify(list.map((s) => [s.id, s.title]));
    sessionsHead.hidden = sessions.hidden = list.length === 0;
    if (key !== lastSessions) {
      lastSessions = key;
      sessions.replaceChildren(...list.map((s) => el("li", null,
        el("a", { href: s.url, target: "_blank", rel: "noopener noreferrer" }, s.title || "Untitled session", el("span", "sr-only", " (opens the session page in a new tab)")),
        " ", el("span", "muted small mono", s.id))));
    }
  };
  return card;
}

// refreshAgents reads the list, then each live agent's busy state and
// sessions.
async function refreshAgents() {
  const list = $("agents-list");
  const r = await run(() => api("/agents"), "Agents");
  list.setAttribute("aria-busy", "false");
  if (!r) return;
  const seen = new Set();
  for (const a of r.agents || []) {
    seen.add(a.agentId);
    let card = agents.cards.get(a.agentId);
    if (!card) {
      card = agentCard(a.agentId);
      agents.cards.set(a.agentId, card);
      list.append(card);
    }
    card.update(a);
  }
  for (const [id, card] of agents.cards) {
    if (!seen.has(id)) { card.remove(); agents.cards.delete(id); }
  }
  if (!agents.cards.size) list.replaceChildren(el("p", { class: "muted", id: "no-agents" }, "No agents yet. Create one above."));
  else { const n = $("no-agents"); if (n) n.remove(); }
  await Promise.all((r.agents || []).filter((a) => a.status === "RUNNING").map((a) => pollAgent(a.agentId)));
  $("agents-live").textContent = "Updated " + new Date().toLocaleTimeString();
}

// pollAgent reads one agent's status, busy state and sessions.
async function pollAgent(id) {
  try {
    const a = await api(`/agents/${encodeURIComponent(id)}`);
    const card = agents.cards.get(id);
    if (card) card.update(a);
  } catch (e) { /* the next round tries again */ }
}

async function loadScopesForAgents() {
  const r = await run(() => api("/scopes"), "Scopes");
  agents.scopes = (r && r.scopes) || [];
  const sel = $("ca-scope");
  const v = sel.value;
  sel.replaceChildren(el("option", { value: "" }, "Organization level (no scope)"),
    ...agents.scopes.map((s) => el("option", { value: s.id }, s.name)));
  sel.value = v;
}

// startAgentPolling refreshes every 3 s while the agents view is shown and
// the tab is visible.
function startAgentPolling() {
  stopAgentPolling();
  const tick = async () => {
    if (!document.hidden && !agents.polling) {
      agents.polling = true;
      try { await refreshAgents(); } finally { agents.polling = false; }
    }
    agents.timer = setTimeout(tick, 3000);
  };
  tick();
}

function stopAgentPolling() {
  clearTimeout(agents.timer);
  agents.timer = null;
}

$("create-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const f = e.target;
  const body = {};
  for (const k of ["name", "model", "scopeId", "initialPrompt", "hiddenPrompt"]) {
    const v = f.elements[k].value.trim();
    if (v) body[k] = v;
  }
  const btn = $("ca-submit");
  btn.disabled = true;
  btn.textContent = "Creating… (up to a minute)";
  const r = await run(() => api("/agents", { method: "POST", body }), "Create");
  btn.disabled = false;
  btn.textContent = "Create agent";
  if (!r) return;
  f.reset();
  flash(`Agent ${body.name} created`);
  await refreshAgents();
  const card = agents.cards.get(r.agentId);
  if (card) {
    if (r.sessions) card.update({ sessions: r.sessions });
    card.querySelector("h2").focus();
  }
});
