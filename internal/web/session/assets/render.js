// ---- rendering: messages, tool calls, permission and question cards ----

const log = $("log");

function scrollDown(force) {
  const near = log.scrollHeight - log.scrollTop - log.clientHeight < 120;
  if (force || near) log.scrollTop = log.scrollHeight;
}

function note(text, cls) {
  $("empty").hidden = true;
  const n = el("p", "note " + (cls || ""), text);
  log.append(n);
  scrollDown(true);
  return n;
}

function showAlert(text) {
  const a = $("alert");
  a.textContent = text;
  a.hidden = !text;
  clearTimeout(showAlert.timer);
  if (text) showAlert.timer = setTimeout(() => { a.hidden = true; }, 8000);
}

function pretty(v) {
  if (v === undefined || v === null || v === "") return "";
  if (typeof v === "string") {
    try { return JSON.stringify(JSON.parse(v), null, 1); } catch (e) { return v; }
  }
  return JSON.stringify(v, null, 1);
}

// toolCard renders a tool part: name and state in the summary, the input
// and the output or error inside; open unless the reader closes it.
function toolCard(p) {
  const st = (p.state && p.state.status) || "pending";
  const label = { pending: "waiting…", running: "running…", completed: "done", error: "failed" }[st] || st;
  const d = el("details", { class: "tool", "data-call": p.callID || "" });
  d.open = true;
  d.append(el("summary", null, el("span", "name", p.tool || "tool"), el("span", "state " + st, label)));
  const input = pretty(p.state && p.state.input);
  if (input) d.append(el("div", "meta", "Input"), el("pre", "input", input));
  if (p.state && p.state.output) d.append(el("div", "meta", "Result"), el("pre", "output", p.state.output));
  if (p.state && p.state.error) d.append(el("div", "meta", "Error"), el("pre", "output error", p.state.error));
  return d;
}

// messageNode renders one message of the platform's shape {id, info: {role, parts}}.
function messageNode(m) {
  const info = m.info || {};
  const role = info.role === "user" ? "user" : "assistant";
  const parts = info.parts || [];
  if (role === "user") {
    const text = parts.filter((p) => p.type === "text").map((p) => p.text).join("\n");
    const files = parts.filter((p) => p.type === "file");
    const b = el("div", { class: "msg user", "data-id": m.id }, el("span", "visually-hidden", "You: "), text);
    for (const f of files) b.append(el("div", "file-part", "📎 " + (f.url || f.mime || "file")));
    return b;
  }
  const turn = el("div", { class: "turn", "data-id": m.id });
  for (const p of parts) {
    if (p.type === "text" && p.text) turn.append(el("div", "msg assistant", el("span", "visually-hidden", "Agent: "), p.text));
    else if (p.type === "reasoning" && p.text) {
      const r = el("details", "reasoning", el("summary", null, "Thinking"), el("pre", null, p.text));
      turn.append(r);
    } else if (p.type === "tool") turn.append(toolCard(p));
    else if (p.type === "file") turn.append(el("div", "file-part", "📎 " + (p.url || p.mime || "file")));
  }
  if (info.error) {
    // The model call of this turn failed: the provider's words.
    turn.append(el("div", { class: "msg assistant failed", role: "alert" },
      el("span", "visually-hidden", "Agent: "), "The model call failed: " + (info.error.message || "unknown error")));
    turn.classList.add("failed");
  }
  if (info.cost !== undefined || info.tokens) {
    const bits = [];
    if (info.tokens) bits.push(fmtInt(info.tokens.total) + " tokens");
    if (info.cost !== undefined) bits.push(fmtCost(info.cost));
    turn.append(el("div", "meta", bits.join(" · ")));
  }
  return turn;
}

// upsertMessage adds a message or replaces the one with its id, keeping
// the order of first appearance.
function upsertMessage(m) {
  if (!m || !m.id) return;
  $("empty").hidden = true;
  const node = messageNode(m);
  const old = log.querySelector(`[data-id="${CSS.escape(m.id)}"]`);
  if (old) {
    // Keep the tool cards the reader closed closed.
    const closed = new Set([...old.querySelectorAll("details.tool:not([open])")].map((d) => d.dataset.call));
    node.querySelectorAll("details.tool").forEach((d) => { if (closed.has(d.dataset.call)) d.open = false; });
    old.replaceWith(node);
  } else {
    log.append(node);
  }
  scrollDown(m.info && m.info.role === "user");
}

// ---- streaming text ----
let streamNode = null;

function appendDelta(text) {
  if (!text) return;
  $("empty").hidden = true;
  if (!streamNode || !streamNode.isConnected) {
    streamNode = el("div", "msg assistant streaming", el("span", "visually-hidden", "Agent: "));
    streamNode.setAttribute("aria-busy", "true");
    log.append(streamNode);
  }
  streamNode.append(text);
  scrollDown();
}

function endStream() {
  if (streamNode) streamNode.remove();
  streamNode = null;
}

// ---- permission requests ----
// waitsForOrg says the page may not answer p: the organization turned the
// session pages' permission replies off, or p reaches beyond the session.
function permissionCard(p, reply, waitsForOrg) {
  const hid = nextId("perm");
  const card = el("section", { class: "card permission", "data-id": p.id, "aria-labelledby": hid });
  const md = p.metadata || {};
  const orgOnly = waitsForOrg || md.organization === true;
  card.append(el("h2", { id: hid }, orgOnly ? `Waiting for the organization to allow ${p.permission || "this action"}` : `Allow ${p.permission || "this action"}?`));
  const patterns = p.patterns || [];
  if (patterns.length) card.append(el("ul", "patterns", ...patterns.map((x) => el("li", null, el("code", null, x)))));
  const extra = md.description || md.diff || md.command || "";
  if (extra) card.append(el("pre", null, typeof extra === "string" ? extra : pretty(extra)));
  if (orgOnly) {
    card.classList.add("org-only");
    card.append(el("p", "meta", "Only the organization that runs this agent can answer this request; the agent waits until they do."));
    return card;
  }
  const why = el("input", { type: "text", "aria-label": "Message for the agent (optional, with Reject)", placeholder: "Reason (optional, shown to the agent)" });
  const send = (kind) => async () => {
    setDisabled(card, true);
    try {
      await reply(p.id, kind, why.value.trim());
      card.remove();
    } catch (e) {
      setDisabled(card, false);
      if (e.status === 404 || e.status === 409) card.remove();
      showAlert("Reply failed: " + e.message);
    }
  };
  card.append(el("div", "buttons",
    el("button", { type: "button", class: "primary", onclick: send("once") }, "Allow once"),
    el("button", { type: "button", onclick: send("always"), title: "Allow it from now on, in this session" }, "Always allow here"),
    el("button", { type: "button", class: "danger", onclick: send("reject") }, "Reject"),
    why));
  return card;
}

// ---- questions ----
// questionCard renders one pending request with one fieldset per question:
// radio buttons, or checkboxes when multiSelect, and an optional typed
// answer. Submit sends one list of labels per question.
function questionCard(q, reply) {
  const hid = nextId("q");
  const card = el("section", { class: "card question", "data-id": q.id, "aria-labelledby": hid });
  const qs = q.questions || [];
  card.append(el("h2", { id: hid }, qs.length === 1 ? (qs[0].header || "The agent asks") : "The agent asks"));
  const sets = qs.map((x) => {
    const name = nextId("qo");
    const multi = !!x.multiSelect;
    const fs = el("fieldset", { "data-multi": multi ? "true" : "false" });
    fs.append(el("legend", null, x.question + (multi ? " (choose any)" : "")));
    for (const o of x.options || []) {
      const id = nextId("opt");
      const input = el("input", { type: multi ? "checkbox" : "radio", name, id, value: o.label });
      fs.append(el("div", "option", input, el("label", { for: id }, o.label, o.description ? el("span", "desc", o.description) : null)));
    }
    const other = el("input", { type: "text", class: "other", "aria-label": `Other answer to: ${x.question}`, placeholder: "Other answer (optional)" });
    fs.append(other);
    return fs;
  });
  card.append(...sets);
  const submit = el("button", { type: "button", class: "primary" }, "Submit answer");
  submit.addEventListener("click", async () => {
    const answers = sets.map((fs) => {
      const picked = [...fs.querySelectorAll("input:checked")].map((x) => x.value);
      const other = fs.querySelector("input.other").value.trim();
      if (other) picked.push(other);
      return picked;
    });
    const missing = answers.findIndex((a) => a.length === 0);
    if (missing >= 0) {
      showAlert("Choose an answer to: " + qs[missing].question);
      const first = sets[missing].querySelector("input");
      if (first) first.focus();
      return;
    }
    setDisabled(card, true);
    try {
      await reply(q.id, answers);
      card.remove();
    } catch (e) {
      setDisabled(card, false);
      if (e.status === 404 || e.status === 409) card.remove();
      showAlert("Answer failed: " + e.message);
    }
  });
  card.append(el("div", "buttons", submit));
  return card;
}

function setDisabled(root, on) {
  root.querySelectorAll("button, input").forEach((x) => { x.disabled = on; });
}

// showPending adds a permission or question card unless it is shown, and
// moves focus to it when the person is not typing.
function showPending(kind, item, make) {
  const box = $("pending");
  if (box.querySelector(`.card.${kind}[data-id="${CSS.escape(item.id)}"]`)) return;
  const card = make();
  box.append(card);
  const typing = document.activeElement && document.activeElement.id === "prompt" && $("prompt").value.trim();
  if (!typing) {
    const first = card.querySelector("input[type=radio], input[type=checkbox], button");
    if (first) first.focus({ preventScroll: true });
  }
  card.scrollIntoView({ block: "nearest" });
}

function dropPending(kind, id) {
  const c = $("pending").querySelector(`.card.${kind}[data-id="${CSS.escape(id)}"]`);
  if (c) c.remove();
}

// ---- usage ----
function renderUsage(u) {
  const t = u.totalTokens || {};
  $("usage-summary").textContent = `${fmtCost(u.totalCost)} · ${fmtInt(t.total)} tokens`;
  const rows = [
    ["Cost", fmtCost(u.totalCost)], ["Total tokens", fmtInt(t.total)], ["Input", fmtInt(t.input)], ["Output", fmtInt(t.output)],
    ["Reasoning", fmtInt(t.reasoning)], ["Cache read", fmtInt(t.cache && t.cache.read)], ["Cache write", fmtInt(t.cache && t.cache.write)],
  ];
  $("usage-detail").replaceChildren(...rows.flatMap(([k, v]) => [el("dt", null, k), el("dd", null, v)]));
}
