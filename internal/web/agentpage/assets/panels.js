// ---- The agent page's panels: status, sessions, pending permissions and
// questions, files, usage. Each draws into its own section and is redrawn
// only when what it shows changed, so polling never moves the focus. ----

const page = {
  id: "",          // the agent's id, from the path
  agent: null,     // the last GET /agents/{id}
  cwd: "",         // the folder the files panel shows
};

const STATUS_CLASS = { RUNNING: "ok", PROVISIONING: "warn", STOPPED: "muted", ERROR: "bad" };

const agentPath = (rest) => `/agents/${encodeURIComponent(page.id)}${rest || ""}`;
const isRunning = () => page.agent && page.agent.status === "RUNNING";

function notRunning(what) {
  const s = page.agent ? page.agent.status : "unknown";
  return el("p", "muted", `The agent is not running (status ${s}): start it to see ${what}.`);
}

// ---- status ----
function drawAgent(a) {
  $("agent-name").textContent = a.name;
  document.title = a.name + " · agenthost";
  const st = $("agent-status");
  st.textContent = a.status;
  st.className = "pill " + (STATUS_CLASS[a.status] || "");
  $("agent-busy").hidden = !a.busy || a.status !== "RUNNING";
  const bits = [a.model || "default model", "created " + fmtDate(a.createdAt), a.agentId];
  $("agent-meta").textContent = bits.join(" · ");
  const err = $("agent-error");
  err.textContent = a.errorMsg ? "Runtime: " + a.errorMsg : "";
  err.hidden = !a.errorMsg;
  const le = $("agent-last-error");
  le.textContent = a.lastError ? `Last failed turn (${fmtDate(a.lastError.at)}): ${a.lastError.message}` : "";
  le.hidden = !a.lastError;
  $("act-start").hidden = a.status !== "STOPPED";
  $("act-stop").hidden = a.status !== "RUNNING";
  $("act-restart").hidden = a.status !== "RUNNING" && a.status !== "STOPPED";
  $("new-session").hidden = a.status !== "RUNNING";
  drawSessions(a.sessions || []);
  $("agent-live").textContent = "Updated " + new Date().toLocaleTimeString();
}

function lifecycle(button, path, done) {
  $(button).addEventListener("click", async (e) => {
    const b = e.currentTarget;
    const label = b.textContent;
    b.disabled = true;
    b.textContent = label + "…";
    const r = await run(() => api(agentPath("/" + path), { method: "POST" }), label);
    b.disabled = false;
    b.textContent = label;
    if (r) flash(`${page.agent.name}: ${done}`);
    await refreshAll();
  });
}

// ---- sessions ----
let sessionsKey = "";

function drawSessions(list) {
  const key = JSON.stringify(list.map((s) => [s.id, s.title, s.url]));
  $("sessions-empty").hidden = list.length > 0;
  if (key === sessionsKey) return;
  sessionsKey = key;
  $("sessions").replaceChildren(...list.map((s) => el("li", { "data-id": s.id },
    el("a", { href: s.url, target: "_blank", rel: "noopener noreferrer" },
      s.title || "Untitled session", el("span", "sr-only", " (opens the session page in a new tab)")),
    " ", el("span", "muted small mono", s.id))));
}

$("new-session").addEventListener("submit", async (e) => {
  e.preventDefault();
  const input = $("ns-message");
  const text = input.value.trim();
  if (!text) { input.focus(); return; }
  const r = await run(() => api(agentPath("/messages"), { method: "POST", body: { message: text } }), "Start session");
  if (!r) return;
  input.value = "";
  flash(`Session ${r.sessionId} started`);
  await refreshAgent();
  refreshPending();
});

// ---- pending permissions and questions ----
let pendingKey = "";

function sessionLabel(id) {
  const s = ((page.agent && page.agent.sessions) || []).find((x) => x.id === id);
  return s && s.title ? `${s.title} (${id})` : id;
}

function permissionCard(p) {
  const hid = nextId("perm");
  const reply = (how) => async (e) => {
    const card = e.currentTarget.closest(".card");
    card.querySelectorAll("button").forEach((b) => { b.disabled = true; });
    const r = await run(() => api(agentPath(`/permissions/${encodeURIComponent(p.id)}/reply`), { method: "POST", body: { reply: how } }), "Reply");
    if (r) flash(`Permission ${p.permission}: ${how === "reject" ? "rejected" : "allowed"}`);
    else card.querySelectorAll("button").forEach((b) => { b.disabled = false; });
    refreshPending();
  };
  const md = p.metadata || {};
  return el("article", { class: "card permission", "data-id": p.id, "aria-labelledby": hid },
    el("h3", { id: hid }, `Allow ${p.permission}?`),
    el("p", "muted small", "Session ", el("span", "mono", sessionLabel(p.sessionID))),
    (p.patterns || []).length ? el("pre", "patterns", (p.patterns || []).join("\n")) : null,
    md.organization ? el("p", "small", "It reaches another session's files: only the organization can answer it.") : null,
    el("div", "actions",
      el("button", { type: "button", class: "primary", onclick: reply("once") }, "Allow once"),
      el("button", { type: "button", onclick: reply("always") }, "Always allow"),
      el("button", { type: "button", class: "danger", onclick: reply("reject") }, "Reject")));
}

function questionCard(q) {
  const hid = nextId("q");
  const form = el("form", { class: "card question", "data-id": q.id, "aria-labelledby": hid });
  form.append(el("h3", { id: hid }, "Question"), el("p", "muted small", "Session ", el("span", "mono", sessionLabel(q.sessionID))));
  const groups = (q.questions || []).map((item, i) => {
    const name = nextId("qopt");
    const fs = el("fieldset", null, el("legend", null, item.header ? `${item.header}: ${item.question}` : item.question));
    for (const o of item.options || []) {
      const id = nextId("o");
      fs.append(el("div", "option",
        el("input", { type: item.multiSelect ? "checkbox" : "radio", name, id, value: o.label }),
        el("label", { for: id }, o.label, o.description ? el("span", "muted small", " — " + o.description) : null)));
    }
    form.append(fs);
    return name;
  });
  const submit = el("button", { type: "submit", class: "primary" }, "Submit answer");
  form.append(el("div", "actions", submit));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const answers = groups.map((name) => [...form.querySelectorAll(`input[name="${name}"]:checked`)].map((i) => i.value));
    submit.disabled = true;
    const r = await run(() => api(agentPath(`/questions/${encodeURIComponent(q.id)}/reply`), { method: "POST", body: { answers } }), "Answer");
    submit.disabled = false;
    if (r) flash("Answer sent");
    refreshPending();
  });
  return form;
}

async function refreshPending() {
  if (!isRunning()) {
    pendingKey = "";
    $("permissions").replaceChildren();
    $("questions").replaceChildren();
    $("pending-empty").hidden = false;
    return;
  }
  let ps, qs;
  try {
    [ps, qs] = await Promise.all([api(agentPath("/permissions")), api(agentPath("/questions"))]);
  } catch (e) {
    return; // the next round tries again
  }
  const perms = ps.permissions || [];
  const quests = qs.questions || [];
  const key = JSON.stringify([perms.map((p) => p.id), quests.map((q) => q.id)]);
  $("pending-empty").hidden = perms.length + quests.length > 0;
  if (key === pendingKey) return;
  pendingKey = key;
  $("permissions").replaceChildren(...perms.map(permissionCard));
  $("questions").replaceChildren(...quests.map(questionCard));
}

// ---- files ----
async function showFolder(dir) {
  const box = $("files");
  const crumbs = $("files-crumbs");
  if (!isRunning()) {
    crumbs.replaceChildren();
    box.replaceChildren(notRunning("its files"));
    return;
  }
  box.setAttribute("aria-busy", "true");
  const r = await run(() => api(agentPath("/files?path=" + encodeURIComponent(dir))), "Files");
  box.setAttribute("aria-busy", "false");
  if (!r) return;
  page.cwd = r.path || "";
  const parts = page.cwd ? page.cwd.split("/") : [];
  const trail = [el("button", { type: "button", class: "link", onclick: () => showFolder("") }, "workspace")];
  parts.forEach((p, i) => {
    const to = parts.slice(0, i + 1).join("/");
    trail.push(el("span", { "aria-hidden": "true" }, " / "));
    trail.push(i === parts.length - 1
      ? el("span", { "aria-current": "location", class: "mono" }, p)
      : el("button", { type: "button", class: "link mono", onclick: () => showFolder(to) }, p));
  });
  crumbs.replaceChildren(...trail);
  const entries = r.entries || [];
  if (!entries.length) {
    box.replaceChildren(el("p", "muted", page.cwd ? "This folder is empty." : "The workspace is empty."));
    return;
  }
  const rows = entries.map((f) => {
    let name;
    let action = null;
    if (f.type === "dir") {
      name = el("button", { type: "button", class: "link mono", onclick: () => showFolder(f.path) }, f.name + "/");
    } else {
      name = el("span", "mono", f.name);
    }
    if (f.type === "file" || f.type === "symlink") {
      action = el("button", { type: "button", "aria-label": "Download " + f.name, onclick: async (e) => {
        const b = e.currentTarget;
        b.disabled = true;
        const ok = await run(() => download(agentPath("/files/content?path=" + encodeURIComponent(f.path)), f.name), "Download " + f.name);
        b.disabled = false;
        if (ok !== null) flash(`Downloaded ${f.name}`);
      } }, "Download");
    }
    return el("tr", { "data-path": f.path, "data-type": f.type },
      el("td", { "data-label": "Name" }, name),
      el("td", { "data-label": "Type" }, f.type === "dir" ? "folder" : f.type === "symlink" ? "link" : f.type),
      el("td", { "data-label": "Size" }, f.type === "file" ? fmtSize(f.size) : ""),
      el("td", { "data-label": "Modified" }, f.modified ? fmtDate(f.modified) : ""),
      el("td", { "data-label": "Actions", class: "actions" }, action));
  });
  const table = el("table", "data",
    el("caption", "sr-only", "Files in " + (page.cwd || "the workspace")),
    el("thead", null, el("tr", null, ...["Name", "Type", "Size", "Modified", "Actions"].map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", null, ...rows));
  box.replaceChildren(table);
  if (r.truncated) box.append(el("p", "muted small", "Only the first entries are shown."));
}

// ---- usage ----
async function refreshUsage() {
  const box = $("usage");
  if (!isRunning()) {
    box.replaceChildren(notRunning("its usage"));
    return;
  }
  const u = await run(() => api(agentPath("/usage")), "Usage");
  if (!u) return;
  const t = u.totalTokens || {};
  const totals = el("dl", { class: "totals", id: "usage-total" },
    el("dt", null, "Cost"), el("dd", null, fmtCost(u.totalCost)),
    el("dt", null, "Tokens"), el("dd", null, `${fmtInt(t.total)} (input ${fmtInt(t.input)}, output ${fmtInt(t.output)})`));
  const sessions = u.sessions || [];
  const table = sessions.length ? el("table", { class: "data", id: "usage-sessions" },
    el("caption", "sr-only", "Usage per session"),
    el("thead", null, el("tr", null, ...["Session", "Cost", "Tokens"].map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", null, ...sessions.map((s) => el("tr", null,
      el("td", { "data-label": "Session" }, s.title || "Untitled session", " ", el("span", "muted small mono", s.sessionId)),
      el("td", { "data-label": "Cost" }, fmtCost(s.cost)),
      el("td", { "data-label": "Tokens" }, fmtInt((s.tokens || {}).total)))))) : el("p", "muted", "No sessions yet.");
  box.replaceChildren(totals, table);
}
